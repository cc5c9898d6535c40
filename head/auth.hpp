// Authentication for a CURVE head (docs/security.md): the authorized key
// lists and the ZAP handler that admits connections by them.
//
// libzmq asks the ZAP handler bound at inproc://zeromq.zap.01 in the same
// context whether to admit each CURVE handshake. With CURVE on and no handler
// bound, Debian's libzmq 4.3.4 admits every key, so the head starts the
// handler before it binds and then proves it works (Head::start's self-test)
// before it serves anyone.
//
// Threads and ownership: KeyStore is shared by the reactor (reload on SIGHUP,
// admin checks) and the ZAP thread (lookups): every method locks. ZapHandler
// owns its thread and its REP socket; stop() joins it.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "common/status.hpp"
#include "common/thread_annotations.hpp"

namespace zgrid::head {

// ZAP domains: which list a socket's peers are checked against.
inline constexpr const char* kClientsDomain = "clients";
inline constexpr const char* kNodesDomain = "nodes";

class KeyStore {
 public:
  KeyStore(std::string clients_dir, std::string nodes_dir, std::string admins_dir)
      : clients_dir_(std::move(clients_dir)),
        nodes_dir_(std::move(nodes_dir)),
        admins_dir_(std::move(admins_dir)) {}

  // (Re)reads the three directories. On error the lists in use are kept.
  // *summary says what was loaded and which files were skipped, for the log.
  Status load(std::string* summary);
  // The name of a key admitted in `domain` (admins count as clients), or empty.
  std::string admit(const std::string& domain, const std::string& key_z85) const;
  bool is_admin(const std::string& key_z85) const;
  // How logs and tables name a key: its file name, else a short prefix.
  std::string name_of(const std::string& key_z85) const;

 private:
  const std::string clients_dir_, nodes_dir_, admins_dir_;
  mutable Mutex mu_;
  // key -> name
  std::map<std::string, std::string> clients_ ZG_GUARDED_BY(mu_), nodes_ ZG_GUARDED_BY(mu_),
      admins_ ZG_GUARDED_BY(mu_);
};

class ZapHandler {
 public:
  ZapHandler(zmq::context_t& ctx, const KeyStore& keys) : ctx_(ctx), keys_(keys) {}
  ~ZapHandler() { stop(); }

  // Binds inproc://zeromq.zap.01 and starts answering. Fails if another
  // handler is bound there already.
  Status start();
  void stop();
  // Requests answered so far, and how many were refused (for the self-test).
  std::uint64_t answered() const { return answered_.load(); }
  // False once the thread has ended other than by stop(): libzmq would then
  // admit every key, so the head stops serving.
  bool alive() const { return alive_.load(); }
  std::uint64_t refused() const { return refused_.load(); }
  // Refused handshakes by port (without the self-test's probe): for /metrics.
  std::uint64_t refused_clients() const { return refused_clients_.load(); }
  std::uint64_t refused_nodes() const { return refused_nodes_.load(); }
  // Refuse every request naming this key (the self-test's throwaway key).
  void set_probe_key(const std::string& z85) {
    MutexLock lock(probe_mu_);
    probe_key_ = z85;
  }
  bool probe_refused() const { return probe_refused_.load(); }

 private:
  void run(zmq::socket_t sock);

  zmq::context_t& ctx_;
  const KeyStore& keys_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> alive_{false};
  std::atomic<std::uint64_t> answered_{0}, refused_{0};
  std::atomic<std::uint64_t> refused_clients_{0}, refused_nodes_{0};
  Mutex probe_mu_;
  std::string probe_key_ ZG_GUARDED_BY(probe_mu_);
  std::atomic<bool> probe_refused_{false};
};

}  // namespace zgrid::head
