// The service host of a node: the services it offers, each with a pool of
// instances bounded by the service's per-node concurrency, and the instances
// of stateful sessions.
//
// Flow: Host::start() makes every instance (a plug-in's init runs here, so a
// service that cannot start stops the node at start, not at its first
// request); worker threads resolve a session's service string once per batch
// (resolve), then lease an instance for each request (lease), blocking while
// all `concurrency` instances are busy.
//
// Stateful sessions (docs/services.md, "Stateful sessions"): a task naming an
// instance key runs on that key's own instance (session()), made the first
// time the key is seen (the service's factory, then open_session(key)) and
// kept until end_session(key) or end_all_sessions(). These instances are
// extra to the pools (no concurrency slot is leased for them). Ended
// instances are closed (close_session, then destroyed) by the Host's closer
// thread, or by the worker still running a task on one when it lets go:
// the caller of end_session (the node's I/O thread) never waits for a
// service.
//
// Thread safety: every public method may be called from any thread; the
// service list is constant after start(). Ownership: the Host owns every
// pooled instance; a Lease borrows one and must not outlive the Host. Session
// instances are shared between the Host's table and the SessionLease of the
// task running on one; all are gone when the Host is destroyed, which must
// happen after every worker thread has stopped. Pooled instances are
// destroyed (plug-in shutdown, exec workers stopped) when the Host is.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/status.hpp"
#include "common/thread_annotations.hpp"
#include "services/service.hpp"

namespace zgrid::svc {

class Host {
 public:
  struct Hosted {
    ServiceInfo info;
    std::string advertised;  // name@version
    // Pool; guarded by mu.
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::unique_ptr<Service>> instances;
    std::vector<Service*> idle;
  };

  // The outcome of resolving a session's service string on this node.
  struct Resolved {
    Hosted* service = nullptr;  // null: `fault_code` / `message` say why
    std::string operation;      // the operation to run (the default filled in)
    std::string fault_code, message;
  };

  class Lease {
   public:
    Lease(Hosted& h, Service* s) : h_(&h), s_(s) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    Service* operator->() const { return s_; }
    Service* get() const { return s_; }

   private:
    Hosted* h_;
    Service* s_;
  };

  struct SessionInstance;  // one stateful session's instance (host.cpp)

  // A session instance locked for one task: no other task runs on it until
  // the lease goes. Movable; must not outlive the Host.
  class SessionLease {
   public:
    SessionLease(std::shared_ptr<SessionInstance> inst, std::unique_lock<std::mutex> run)
        : inst_(std::move(inst)), run_(std::move(run)) {}
    SessionLease(SessionLease&&) = default;
    SessionLease& operator=(SessionLease&& o) noexcept {
      run_ = std::move(o.run_);  // unlocks ours before its instance may go
      inst_ = std::move(o.inst_);
      return *this;
    }
    ~SessionLease() {
      if (run_.owns_lock()) run_.unlock();  // before inst_ (maybe the last reference) goes
    }
    Service* get() const;
    Service* operator->() const { return get(); }

   private:
    std::shared_ptr<SessionInstance> inst_;  // declared first: outlives the lock on its mutex
    std::unique_lock<std::mutex> run_;
  };

  // Above this many open session instances the node logs a warning (once
  // each time the count climbs past it); it refuses none.
  static constexpr std::size_t kSessionWarnCount = 10'000;

  // Makes the pools of the services in `registry` that match `filter` (session
  // spec strings; empty: all). `workers` is the default concurrency. Errors:
  // a filter entry matching nothing, a service whose instances cannot be made.
  static Result<std::unique_ptr<Host>> start(const Registry& registry,
                                             const std::vector<std::string>& filter, int workers);
  ~Host();

  const std::vector<std::unique_ptr<Hosted>>& services() const { return services_; }
  std::vector<std::string> advertised() const;
  Resolved resolve(std::string_view spec) const;
  // Blocks until an instance of `h` is idle.
  Lease lease(Hosted& h);
  // An idle instance of `h` taken out of its pool without waiting, or null
  // when all are busy; the caller gives it back with Lease(h, instance).
  Service* try_take(Hosted& h);
  // Asks running requests to give up (node stop), session instances
  // included; instances made afterwards are cancelled at once. Thread-safe.
  void cancel_all();

  // The instance of `key` ("<session id>.<instance number>") of service `h`,
  // made and opened the first time the key is seen, and locked for one task
  // (blocks while another task runs on it). A key with a higher instance
  // number than other keys of the same session id ends those (a fresh
  // instance replaces them). `generation`: the node's connection generation
  // the task came with (see end_all_sessions). Errors: `h` does not serve
  // stateful sessions (FailedPrecondition, "service X does not support
  // stateful sessions"); the instance cannot be made or its session opened
  // (InvalidArgument, the same error for every task of that key until it
  // ends); the key is another service's (InvalidArgument); the node is
  // stopping, or `generation` is older than the last end_all_sessions'
  // (Unavailable).
  Result<SessionLease> session(Hosted& h, std::string_view key, std::uint64_t generation = 0)
      ZG_EXCLUDES(mu_);
  // Closes and frees the instance of `key` (unknown: ignored). Never waits
  // for the service: the close runs on the closer thread, or when the task
  // running on it ends.
  void end_session(std::string_view key) ZG_EXCLUDES(mu_);
  // end_session for every key (the node registers again, or stops). Tasks of
  // a generation below `generation` get no instance afterwards (a worker
  // still holding a task of the old connection cannot make one again).
  void end_all_sessions(std::uint64_t generation = 0) ZG_EXCLUDES(mu_);
  // Session instances in the table (ended ones still closing not counted).
  std::size_t session_count() const ZG_EXCLUDES(mu_);

 private:
  Host() = default;
  void close_loop() ZG_EXCLUDES(mu_);
  void retire_older(std::string_view key) ZG_REQUIRES(mu_);
  // Instances up to `key`'s number of its session are over: never made again.
  void note_ended(std::string_view key) ZG_REQUIRES(mu_);
  void forget(SessionInstance* inst) ZG_EXCLUDES(mu_);

  std::vector<std::unique_ptr<Hosted>> services_;

  mutable Mutex mu_;
  std::condition_variable_any closer_cv_;
  // Open session instances by key.
  std::map<std::string, std::shared_ptr<SessionInstance>, std::less<>> sessions_ ZG_GUARDED_BY(mu_);
  // Every session instance not yet destroyed (for cancel_all).
  std::unordered_set<SessionInstance*> live_ ZG_GUARDED_BY(mu_);
  // Ended instances the closer thread lets go of.
  std::vector<std::shared_ptr<SessionInstance>> to_close_ ZG_GUARDED_BY(mu_);
  bool closer_stop_ ZG_GUARDED_BY(mu_) = false;
  bool warned_ ZG_GUARDED_BY(mu_) = false;  // over kSessionWarnCount, said once
  std::uint64_t min_generation_ ZG_GUARDED_BY(mu_) = 0;
  // Per session id, the highest instance number ended since the node last
  // registered: a late task of an ended instance (the rest of a replay the
  // head gave up) must not make it again, on an empty state.
  std::map<std::string, std::uint64_t, std::less<>> ended_upto_ ZG_GUARDED_BY(mu_);
  static constexpr std::size_t kMaxEndedKept = 100'000;
  std::atomic<bool> stopping_{false};  // cancel_all was called
  std::thread closer_;
};

}  // namespace zgrid::svc
