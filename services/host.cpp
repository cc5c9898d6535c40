#include "services/host.hpp"

#include <algorithm>
#include <cstdint>
#include <exception>

#include "common/log.hpp"
#include "common/protocol.hpp"
#include "common/service_spec.hpp"

namespace zgrid::svc {

namespace {

constexpr const char* kLog = "host";

// "<session id>.<instance number>" split; false when the key has no number.
bool split_key(std::string_view key, std::string_view* session, std::uint64_t* number) {
  auto dot = key.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == key.size()) return false;
  std::uint64_t n = 0;
  for (char c : key.substr(dot + 1)) {
    if (c < '0' || c > '9' || n > (UINT64_MAX - 9) / 10) return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  *session = key.substr(0, dot);
  *number = n;
  return true;
}

}  // namespace

// One stateful session's instance. The Host's table and the lease of the
// task running on it share it; the last to let go closes it (close_session,
// then the service is destroyed).
struct Host::SessionInstance {
  SessionInstance(Host& host_, Hosted& hosted_, std::string_view key_)
      : host(host_), hosted(hosted_), key(key_) {}
  SessionInstance(const SessionInstance&) = delete;
  SessionInstance& operator=(const SessionInstance&) = delete;
  ~SessionInstance() {
    host.forget(this);  // cancel_all no longer reaches it
    if (opened) {
      ZG_LOG(kDebug, kLog, "session instance " + key + " of " + hosted.advertised + " closed");
      try {
        service->close_session();
      } catch (const std::exception& e) {
        ZG_LOG(kWarn, kLog,
               "closing session instance " + key + " of " + hosted.advertised + ": " + e.what());
      } catch (...) {
        ZG_LOG(kWarn, kLog,
               "closing session instance " + key + " of " + hosted.advertised + ": exception");
      }
    }
    service.reset();
  }

  // Makes the service and opens its session; called once, holding run_mu.
  void open() {
    std::string why;
    try {
      auto made = hosted.info.make();
      if (!made.ok()) {
        why = made.status().message();
      } else {
        service = std::move(made).value();
        cancel_target.store(service.get());
        if (host.stopping_.load()) service->cancel();
        Status st = service->open_session(key);
        if (st.ok()) {
          opened = true;
          ZG_LOG(kDebug, kLog, "session instance " + key + " of " + hosted.advertised + " opened");
        } else {
          why = st.message();
        }
      }
    } catch (const std::exception& e) {
      why = e.what();
    } catch (...) {
      why = "unknown exception";
    }
    if (!opened) {
      if (why.empty()) why = "no reason given";
      // Unavailable: the task faults `retryable`, and the head starts a
      // fresh instance (a new key) and charges the request a try.
      failed = Status::Unavailable("cannot open a stateful session of service " +
                                   hosted.advertised + ": " + why);
      ZG_LOG(kWarn, kLog, "session instance " + key + ": " + failed.message());
    }
  }

  Host& host;
  Hosted& hosted;
  const std::string key;
  std::mutex run_mu;  // held while opening and while a task runs on it
  // Guarded by run_mu (and read in the destructor, when no one else can).
  std::unique_ptr<Service> service;
  bool tried = false;   // open() ran
  bool opened = false;  // open_session succeeded: close_session is owed
  Status failed;        // make or open failed: every task of this key faults
  // The service, for cancel_all (set once it exists; read under Host::mu_).
  std::atomic<Service*> cancel_target{nullptr};
};

Service* Host::SessionLease::get() const {
  return inst_ ? inst_->service.get() : nullptr;
}

Host::Lease::~Lease() {
  {
    std::lock_guard<std::mutex> lock(h_->mu);
    h_->idle.push_back(s_);
  }
  h_->cv.notify_one();
}

Result<std::unique_ptr<Host>> Host::start(const Registry& registry,
                                          const std::vector<std::string>& filter, int workers) {
  std::unique_ptr<Host> host(new Host());
  std::vector<bool> used(filter.size(), false);
  std::vector<spec::ServiceSpec> wanted;
  for (const auto& f : filter) {
    ZG_ASSIGN_OR_RETURN(spec::ServiceSpec s, spec::parse(f));
    wanted.push_back(s);
  }
  for (const ServiceInfo& info : registry.services()) {
    std::string adv = spec::advertised(info.name, info.version);
    bool keep = filter.empty();
    for (std::size_t i = 0; i < wanted.size(); ++i)
      if (spec::matches(wanted[i], adv)) keep = used[i] = true;
    if (!keep) continue;
    auto h = std::make_unique<Hosted>();
    h->info = info;
    h->advertised = adv;
    int n = info.concurrency > 0 ? std::min(info.concurrency, workers) : workers;
    for (int i = 0; i < std::max(1, n); ++i) {
      auto inst = info.make();
      if (!inst.ok())
        return Status::InvalidArgument("service " + adv + " (" + info.source +
                                       ") cannot start: " + inst.status().message());
      h->idle.push_back(inst->get());
      h->instances.push_back(std::move(inst).value());
    }
    host->services_.push_back(std::move(h));
  }
  Host* raw = host.get();
  host->closer_ = std::thread([raw] { raw->close_loop(); });
  for (std::size_t i = 0; i < filter.size(); ++i)
    if (!used[i]) {
      std::string have;
      for (const auto& n : registry.names()) have += (have.empty() ? "" : ", ") + n;
      return Status::InvalidArgument("unknown service '" + filter[i] + "' (this node has: " + have +
                                     ")");
    }
  return host;
}

Host::~Host() {
  // Session instances are closed first (every worker has stopped: the table
  // and the closer hold the last references), then the pools (plug-in
  // shutdown, exec workers stopped), then the ServiceInfo factories holding
  // the last references to plug-in libraries.
  end_all_sessions();
  {
    MutexLock lock(mu_);
    closer_stop_ = true;
  }
  closer_cv_.notify_all();
  if (closer_.joinable()) closer_.join();
  for (auto& h : services_) h->instances.clear();
}

std::vector<std::string> Host::advertised() const {
  std::vector<std::string> out;
  for (const auto& h : services_) out.push_back(h->advertised);
  return out;
}

Host::Resolved Host::resolve(std::string_view text) const {
  Resolved r;
  auto s = spec::parse(text);
  if (!s.ok()) {
    r.fault_code = "invalid_argument";
    r.message = s.status().message();
    return r;
  }
  for (const auto& h : services_) {
    if (!spec::matches(*s, h->advertised)) continue;
    if (r.service == nullptr ||
        spec::compare_versions(h->info.version, r.service->info.version) > 0)
      r.service = h.get();
  }
  if (r.service == nullptr) {
    r.fault_code = proto::fault::kUnknownService;
    r.message = "this node does not run " + std::string(text);
    return r;
  }
  const auto& ops = r.service->info.operations;
  if (s->operation.empty()) {
    if (!ops.empty()) r.operation = ops.front();
  } else if (ops.empty() || std::find(ops.begin(), ops.end(), s->operation) != ops.end()) {
    r.operation = std::string(s->operation);
  } else {
    std::string list;
    for (const auto& o : ops) list += (list.empty() ? "" : ", ") + o;
    r.fault_code = "invalid_argument";
    r.message = "service " + r.service->advertised + " has no operation '" +
                std::string(s->operation) + "' (it has: " + list + ")";
    r.service = nullptr;
  }
  return r;
}

Host::Lease Host::lease(Hosted& h) {
  std::unique_lock<std::mutex> lock(h.mu);
  h.cv.wait(lock, [&] { return !h.idle.empty(); });
  Service* s = h.idle.back();
  h.idle.pop_back();
  return Lease(h, s);
}

Service* Host::try_take(Hosted& h) {
  std::lock_guard<std::mutex> lock(h.mu);
  if (h.idle.empty()) return nullptr;
  Service* s = h.idle.back();
  h.idle.pop_back();
  return s;
}

void Host::cancel_all() {
  stopping_.store(true);
  for (auto& h : services_)
    for (auto& inst : h->instances) inst->cancel();
  MutexLock lock(mu_);
  for (SessionInstance* inst : live_)
    if (Service* s = inst->cancel_target.load()) s->cancel();
}

Result<Host::SessionLease> Host::session(Hosted& h, std::string_view key,
                                         std::uint64_t generation) {
  if (!h.info.sessions)
    return Status::FailedPrecondition("service " + h.advertised +
                                      " does not support stateful sessions");
  if (stopping_.load()) return Status::Unavailable("node stopping");
  std::shared_ptr<SessionInstance> inst;
  {
    MutexLock lock(mu_);
    if (generation < min_generation_)
      return Status::Unavailable("the node registered again since this task came");
    auto it = sessions_.find(key);
    std::string_view sid;
    std::uint64_t number = 0;
    if (it == sessions_.end() && split_key(key, &sid, &number)) {
      auto e = ended_upto_.find(sid);
      if (e != ended_upto_.end() && number <= e->second)
        return Status::Unavailable("session instance " + std::string(key) + " was ended");
    }
    if (it != sessions_.end()) {
      inst = it->second;
    } else {
      inst = std::make_shared<SessionInstance>(*this, h, key);
      live_.insert(inst.get());
      sessions_.emplace(std::string(key), inst);
      retire_older(key);
      if (sessions_.size() > kSessionWarnCount && !warned_) {
        warned_ = true;
        ZG_LOG(kWarn, kLog,
               std::to_string(sessions_.size()) +
                   " stateful session instances are open on this node (more than " +
                   std::to_string(kSessionWarnCount) + "): each holds a service instance");
      } else if (sessions_.size() < kSessionWarnCount * 9 / 10) {
        warned_ = false;
      }
    }
  }
  if (&inst->hosted != &h)
    return Status::InvalidArgument("session instance " + std::string(key) + " is one of " +
                                   inst->hosted.advertised + ", not of " + h.advertised);
  std::unique_lock<std::mutex> run(inst->run_mu);
  if (!inst->tried) {
    inst->tried = true;
    inst->open();
  }
  if (!inst->failed.ok()) return inst->failed;
  return SessionLease(std::move(inst), std::move(run));
}

// A new instance of a session replaces its older ones: they are closed now.
void Host::note_ended(std::string_view key) {
  std::string_view session;
  std::uint64_t number = 0;
  if (!split_key(key, &session, &number)) return;
  if (ended_upto_.size() >= kMaxEndedKept) ended_upto_.clear();  // bounded; rarely reached
  auto [it, added] = ended_upto_.emplace(std::string(session), number);
  if (!added) it->second = std::max(it->second, number);
}

void Host::retire_older(std::string_view key) {
  std::string_view session;
  std::uint64_t number = 0;
  if (!split_key(key, &session, &number)) return;
  if (number > 0) {
    std::string older = std::string(session).append(".").append(std::to_string(number - 1));
    note_ended(older);
  }
  std::string prefix = std::string(session) + ".";
  bool retired = false;
  for (auto it = sessions_.lower_bound(prefix);
       it != sessions_.end() && std::string_view(it->first).substr(0, prefix.size()) == prefix;) {
    std::string_view other_session;
    std::uint64_t other = 0;
    if (split_key(it->first, &other_session, &other) && other_session == session &&
        other < number) {
      to_close_.push_back(std::move(it->second));
      it = sessions_.erase(it);
      retired = true;
    } else {
      ++it;
    }
  }
  if (retired) closer_cv_.notify_all();
}

void Host::end_session(std::string_view key) {
  {
    MutexLock lock(mu_);
    note_ended(key);
    auto it = sessions_.find(key);
    if (it == sessions_.end()) return;
    to_close_.push_back(std::move(it->second));
    sessions_.erase(it);
  }
  closer_cv_.notify_all();
}

void Host::end_all_sessions(std::uint64_t generation) {
  {
    MutexLock lock(mu_);
    min_generation_ = std::max(min_generation_, generation);
    ended_upto_.clear();  // a new head connection: its instance numbers start again
    if (sessions_.empty()) return;
    for (auto& kv : sessions_) to_close_.push_back(std::move(kv.second));
    sessions_.clear();
  }
  closer_cv_.notify_all();
}

std::size_t Host::session_count() const {
  MutexLock lock(mu_);
  return sessions_.size();
}

void Host::forget(SessionInstance* inst) {
  MutexLock lock(mu_);
  live_.erase(inst);
}

void Host::close_loop() {
  std::vector<std::shared_ptr<SessionInstance>> batch;
  while (true) {
    {
      MutexLock lock(mu_);
      while (to_close_.empty() && !closer_stop_) closer_cv_.wait(lock);
      if (to_close_.empty()) return;  // stopping, nothing left
      batch.swap(to_close_);
    }
    batch.clear();  // closes each instance no task holds any more
  }
}

}  // namespace zgrid::svc
