#include "head/security.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.hpp"
#include "common/daemon.hpp"
#include "common/log.hpp"
#include "common/protocol.hpp"
#include "common/service_spec.hpp"

namespace zgrid::head {

namespace {
constexpr const char* kLog = "head";

// During the self-test, real clients (reconnecting after a restart) may
// already talk: they carry the User-Id our handler gave them. A message
// from the probe's key, or with no User-Id at all, means nothing checked.
bool admitted_without_zap(std::vector<zmq::message_t>& frames, const std::string& probe) {
  if (frames.size() < 2) return false;
  std::string uid = zmqu::user_id(frames.back());
  return uid.empty() || uid == probe;
}

}  // namespace

Status Security::start() {
  ZG_RETURN_IF_ERROR(start_keys());
  decide_python_functions();
  return Status::OK();
}

void Security::decide_python_functions() {
  // A pickled call is code for the nodes, and a pickled result is code for
  // the client: both ports count. Plain on a non-loopback client port,
  // anyone there can send functions; on a non-loopback node port, anyone
  // there can register as a node, read every call and answer with code.
  exposed_.clear();
  if (!curve_) {
    if (zmqu::is_non_loopback(o_.frontend))
      exposed_ = "its client port " + o_.frontend;
    else if (zmqu::is_non_loopback(o_.backend))
      exposed_ = "its node port " + o_.backend;
  }
  python_functions_ = exposed_.empty() || o_.allow_python_functions;
  if (!exposed_.empty() && o_.allow_python_functions)
    ZG_LOG(kWarn, kLog,
           "WARNING: --allow-python-functions with " + exposed_ +
               " WITHOUT CURVE: anyone who can reach it can run any code on every node with a "
               "python service, or on the clients (a pickled function or result is code). Use "
               "--curve-secret (docs/security.md)");
  else if (!python_functions_)
    ZG_LOG(kInfo, kLog,
           "sessions of the python service are refused: " + exposed_ +
               " is not loopback and has no CURVE (see --allow-python-functions, "
               "docs/security.md)");
}

Status Security::check_service(std::string_view service) const {
  if (python_functions_) return Status::OK();
  auto sp = spec::parse(service);
  if (!sp.ok() || sp->name != kPythonService) return Status::OK();
  return Status::PermissionDenied(
      "this head refuses Python functions: " + exposed_ +
      " is not loopback and has no CURVE, and running a pickled function is running code; "
      "turn on CURVE (--curve-secret, --authorized-clients, --authorized-nodes) or start "
      "zgrid-head with --allow-python-functions (docs/security.md)");
}

Status Security::start_keys() {
  bool any = !o_.curve_secret_file.empty() || !o_.authorized_clients_dir.empty() ||
             !o_.authorized_nodes_dir.empty() || !o_.admin_keys_dir.empty();
  if (!any) {
    if (o_.require_curve)
      return Status::FailedPrecondition(
          "--require-curve: refusing to start without CURVE (give --curve-secret, "
          "--authorized-clients and --authorized-nodes)");
    for (const auto* ep : {&o_.frontend, &o_.backend}) ZG_RETURN_IF_ERROR(check_ipc(*ep));
    return Status::OK();
  }
  if (o_.curve_secret_file.empty() || o_.authorized_clients_dir.empty() ||
      o_.authorized_nodes_dir.empty())
    return Status::InvalidArgument(
        "CURVE needs all of --curve-secret, --authorized-clients and --authorized-nodes");
  auto kp = curve::read_secret(o_.curve_secret_file);
  if (!kp.ok()) return kp.status();
  head_keys_ = std::move(kp).value();
  keys_ = std::make_unique<KeyStore>(o_.authorized_clients_dir, o_.authorized_nodes_dir,
                                     o_.admin_keys_dir);
  std::string summary;
  ZG_RETURN_IF_ERROR(keys_->load(&summary));
  zap_ = std::make_unique<ZapHandler>(ctx_, *keys_);
  // Test hook: a head whose ZAP handler is missing must refuse to start.
  if (!o_.hooks.no_zap) ZG_RETURN_IF_ERROR(zap_->start());
  curve_ = true;
  hup_seen_ = cli::hangups();
  ZG_LOG(kInfo, kLog,
         "CURVE on: head public key " + head_keys_.public_z85 + "; authorized " + summary);
  return Status::OK();
}

Status Security::check_ipc(const std::string& ep) {
  if (ep.rfind("ipc://", 0) != 0) return Status::OK();
  std::string path = ep.substr(6);
  if (!path.empty() && path[0] == '@')
    return Status::InvalidArgument(ep +
                                   ": abstract ipc sockets are open to every local user; use "
                                   "a path in a private directory (or CURVE)");
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0)
    return Status::InvalidArgument(ep + ": directory " + dir + " does not exist");
  if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0)
    return Status::PermissionDenied(
        ep + ": without CURVE an ipc endpoint must be in a directory only you can enter (" + dir +
        " is not: mkdir -m 700 a private directory)");
  return Status::OK();
}

Status Security::self_test(zmq::socket_t& frontend, const std::string& frontend_ep) {
  auto kp = curve::generate();
  if (!kp.ok()) return kp.status();
  zap_->set_probe_key(kp->public_z85);
  zmqu::SocketOptions so;
  so.linger_ms = 0;
  so.curve_server_key = head_keys_.public_z85;
  so.curve_public = kp->public_z85;
  so.curve_secret = kp->secret_z85;
  std::string ep = frontend_ep;
  if (auto p = ep.find("://0.0.0.0:"); p != std::string::npos)
    ep = ep.substr(0, p) + "://127.0.0.1:" + ep.substr(p + 11);
  else if (auto q = ep.find("://[::]:"); q != std::string::npos)
    ep = ep.substr(0, q) + "://[::1]:" + ep.substr(q + 8);
  auto d = zmqu::connect_dealer(ctx_, ep, so);
  if (!d.ok()) return d.status();
  zmq::socket_t probe = std::move(d).value();
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + 5'000;
  std::vector<zmq::message_t> frames;
  while (clock.now_ms() < deadline) {
    zmq::message_t ping = proto::begin(proto::kPing, 1, 0).finish();
    (void)zmqu::send_one(probe, ping);  // EAGAIN until (and unless) admitted
    zmq::pollitem_t item{static_cast<void*>(frontend), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(20));
    if (zmqu::recv_message(frontend, &frames, proto::kMaxFrames) == zmqu::RecvStatus::kOk &&
        admitted_without_zap(frames, kp->public_z85))
      return Status::FailedPrecondition(
          "CURVE is on but an unknown key was admitted: no working ZAP handler. Refusing to "
          "start rather than admit everyone");
    if (zap_->probe_refused()) return Status::OK();
  }
  return Status::FailedPrecondition(
      "CURVE is on but the ZAP handler did not answer within 5s. Refusing to start rather "
      "than risk admitting everyone");
}

// SIGHUP: re-read the authorized keys (new keys admitted from the next
// handshake; connections already admitted stay).
void Security::maybe_reload_keys() {
  if (!curve_ || cli::hangups() == hup_seen_) return;
  hup_seen_ = cli::hangups();
  std::string summary;
  Status st = keys_->load(&summary);
  if (st.ok())
    ZG_LOG(kInfo, kLog, "SIGHUP: authorized keys re-read: " + summary);
  else
    ZG_LOG(kError, kLog, "SIGHUP: keeping the authorized keys in use: " + st.message());
}

void Security::apply(zmqu::SocketOptions* fo, zmqu::SocketOptions* bo) const {
  if (!curve_) return;
  for (auto* so : {fo, bo}) {
    so->curve_server = true;
    so->curve_secret = head_keys_.secret_z85;
  }
  fo->zap_domain = kClientsDomain;
  bo->zap_domain = kNodesDomain;
}

Status Security::check_owner(const Session& s, const std::string& key) const {
  if (!curve_ || s.owner == key || keys_->is_admin(key)) return Status::OK();
  return Status::PermissionDenied("session " + s.id + " belongs to another key");
}

std::string Security::name_of(const std::string& key) const {
  return key.empty() ? std::string() : keys_ ? keys_->name_of(key) : key;
}

}  // namespace zgrid::head
