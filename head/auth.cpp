#include "head/auth.hpp"

#include <zmq.h>

#include <chrono>
#include <vector>

#include "common/curve.hpp"
#include "common/log.hpp"

namespace zgrid::head {

namespace {
constexpr const char* kLog = "auth";
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
}  // namespace

Status KeyStore::load(std::string* summary) {
  std::vector<std::string> problems;
  auto clients = curve::read_dir(clients_dir_, &problems);
  if (!clients.ok()) return clients.status();
  auto nodes = curve::read_dir(nodes_dir_, &problems);
  if (!nodes.ok()) return nodes.status();
  std::map<std::string, std::string> admins;
  if (!admins_dir_.empty()) {
    auto a = curve::read_dir(admins_dir_, &problems);
    if (!a.ok()) return a.status();
    admins = std::move(a).value();
  }
  if (summary) {
    *summary = std::to_string(clients->size()) + " client keys, " + std::to_string(nodes->size()) +
               " node keys, " + std::to_string(admins.size()) + " admin keys";
    for (const auto& p : problems) *summary += "; skipped: " + p;
  }
  MutexLock lock(mu_);
  clients_ = std::move(clients).value();
  nodes_ = std::move(nodes).value();
  admins_ = std::move(admins);
  return Status::OK();
}

std::string KeyStore::admit(const std::string& domain, const std::string& key) const {
  MutexLock lock(mu_);
  if (domain == kNodesDomain) {
    auto it = nodes_.find(key);
    return it == nodes_.end() ? std::string() : it->second;
  }
  if (domain == kClientsDomain) {
    if (auto it = clients_.find(key); it != clients_.end()) return it->second;
    if (auto it = admins_.find(key); it != admins_.end()) return it->second;
  }
  return {};
}

bool KeyStore::is_admin(const std::string& key) const {
  MutexLock lock(mu_);
  return admins_.count(key) > 0;
}

std::string KeyStore::name_of(const std::string& key) const {
  MutexLock lock(mu_);
  for (const auto* m : {&clients_, &admins_, &nodes_})
    if (auto it = m->find(key); it != m->end()) return it->second;
  return key.substr(0, 8) + "…";
}

Status ZapHandler::start() {
  zmq::socket_t sock(ctx_, zmq::socket_type::rep);
  sock.set(zmq::sockopt::linger, 0);
  try {
    sock.bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    return Status::Internal(std::string("cannot start the ZAP handler: ") + e.what());
  }
  alive_.store(true);
  thread_ = std::thread([this, s = std::move(sock)]() mutable {
    run(std::move(s));
    if (!stop_.load()) ZG_LOG(kError, kLog, "the ZAP handler stopped unexpectedly");
    alive_.store(stop_.load());
  });
  return Status::OK();
}

void ZapHandler::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void ZapHandler::run(zmq::socket_t sock) {
  // Denials are logged, but at most a few per second: a peer retrying a
  // refused key every 100 ms must not fill the disk.
  auto window = std::chrono::steady_clock::now();
  int logged = 0, suppressed = 0;
  while (!stop_.load()) {
    zmq::pollitem_t item{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0};
    try {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) == 0) continue;
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      break;  // context terminated
    }
    std::vector<zmq::message_t> f;
    try {
      do {
        f.emplace_back();
        if (!sock.recv(f.back(), zmq::recv_flags::none)) break;
      } while (f.back().more() && f.size() < 16);
      for (bool more = f.back().more(); more;) {  // drain a malformed, over-long request
        zmq::message_t junk;
        if (!sock.recv(junk, zmq::recv_flags::none)) break;
        more = junk.more();
      }
    } catch (const zmq::error_t&) {
      break;
    }
    std::string request_id = f.size() > 1 ? f[1].to_string() : std::string();
    std::string domain = f.size() > 2 ? f[2].to_string() : std::string();
    std::string address = f.size() > 3 ? f[3].to_string() : std::string();
    std::string key;
    if (f.size() >= 7 && f[0].to_string() == "1.0" && f[5].to_string() == "CURVE" &&
        f[6].size() == 32) {
      char z85[41];
      if (zmq_z85_encode(z85, static_cast<const std::uint8_t*>(f[6].data()), 32) != nullptr)
        key = z85;
    }
    std::string name;
    bool probe = false;
    {
      MutexLock lock(probe_mu_);
      probe = !key.empty() && key == probe_key_;
    }
    if (!key.empty() && !probe) name = keys_.admit(domain, key);
    bool ok = !name.empty();
    std::vector<std::string> reply{
        "1.0", request_id, ok ? "200" : "400", ok ? "OK" : "key not authorized", ok ? key : "", ""};
    try {
      for (std::size_t i = 0; i < reply.size(); ++i)
        sock.send(zmq::buffer(reply[i]),
                  i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      break;
    }
    ++answered_;
    if (ok) continue;
    ++refused_;
    if (probe) {
      probe_refused_.store(true);
      continue;
    }
    ++(domain == kNodesDomain ? refused_nodes_ : refused_clients_);
    auto now = std::chrono::steady_clock::now();
    if (now - window > std::chrono::seconds(1)) {
      if (suppressed > 0)
        ZG_LOG(kWarn, kLog, std::to_string(suppressed) + " more refusals not logged");
      window = now;
      logged = suppressed = 0;
    }
    if (++logged <= 5)
      ZG_LOG(kWarn, kLog,
             "refused " + (domain == kNodesDomain ? std::string("node") : std::string("client")) +
                 " key " + (key.empty() ? std::string("(malformed request)") : key) + " from " +
                 address + ": not in the authorized " +
                 (domain == kNodesDomain ? "nodes" : "clients") + " directory");
    else
      ++suppressed;
  }
}

}  // namespace zgrid::head
