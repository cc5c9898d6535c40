// The head's side of security (docs/security.md): CURVE keys and the ZAP
// handler (head/auth.hpp) started before anything binds and proven to work
// before anyone is served, the single-user ipc check without CURVE, key
// reload on SIGHUP, and who may act on a session.
//
// Owned by the reactor and used on its thread; the ZAP handler runs its own
// thread over the KeyStore (which locks).
#pragma once

#include <zmq.hpp>

#include <memory>
#include <string>
#include <string_view>

#include "common/curve.hpp"
#include "common/status.hpp"
#include "common/zmq_util.hpp"
#include "head/auth.hpp"
#include "head/options.hpp"
#include "head/state.hpp"

namespace zgrid::head {

class Security {
 public:
  Security(const HeadOptions& o, zmq::context_t& ctx) : o_(o), ctx_(ctx) {}

  // Without any key option: plain (refused under --require-curve; ipc
  // endpoints checked). With them: all three are needed, the keys are read
  // and the ZAP handler started.
  Status start();
  bool curve() const { return curve_; }
  // CURVE server settings and ZAP domains for the two ports (no-op when plain).
  void apply(zmqu::SocketOptions* frontend, zmqu::SocketOptions* backend) const;
  // libzmq admits every CURVE key when no ZAP handler answers. Proves ours
  // does, with a throwaway key against the bound frontend (the reactor's
  // socket, used here on its thread before serving).
  Status self_test(zmq::socket_t& frontend, const std::string& frontend_ep);
  // False once the ZAP thread died: every key would be admitted.
  bool zap_alive() const { return !curve_ || zap_->alive(); }
  // Refused CURVE handshakes on the client and node ports (0 when plain).
  std::uint64_t refused_clients() const { return zap_ ? zap_->refused_clients() : 0; }
  std::uint64_t refused_nodes() const { return zap_ ? zap_->refused_nodes() : 0; }
  // SIGHUP: re-reads the authorized keys (kept as they were on error).
  void maybe_reload_keys();

  // With CURVE a session belongs to the key that created it; admins may act
  // on any. Without CURVE every peer has the empty key.
  Status check_owner(const Session& s, const std::string& key) const;
  bool is_admin(const std::string& key) const { return curve_ && keys_->is_admin(key); }
  // How logs and tables name a key: its file name (empty without CURVE).
  std::string name_of(const std::string& key) const;

  // Without CURVE an ipc:// endpoint is only as private as its directory.
  static Status check_ipc(const std::string& ep);

  // The built-in service `python` runs the functions clients send as
  // pickles, and unpickling is running code. Decided once in start(): its
  // sessions are accepted when the frontend is loopback (tcp://127.x,
  // [::1], localhost, ipc://, inproc://), when CURVE is on (every client is
  // an authorized key), or under --allow-python-functions. Otherwise a
  // session of `python` (any version) is refused, permission_denied with
  // one line saying how to enable it.
  static constexpr std::string_view kPythonService = "python";
  bool python_functions() const { return python_functions_; }
  Status check_service(std::string_view service) const;

 private:
  const HeadOptions& o_;
  zmq::context_t& ctx_;
  Status start_keys();
  void decide_python_functions();

  bool curve_ = false;
  bool python_functions_ = false;
  std::string exposed_;             // the plain non-loopback port that refuses them ("" : none)
  curve::KeyPair head_keys_;        // never logged
  std::unique_ptr<KeyStore> keys_;  // before zap_, which reads it
  std::unique_ptr<ZapHandler> zap_;
  std::uint64_t hup_seen_ = 0;
};

}  // namespace zgrid::head
