// The service host of a node: the services it offers, each with a pool of
// instances bounded by the service's per-node concurrency.
//
// Flow: Host::start() makes every instance (a plug-in's init runs here, so a
// service that cannot start stops the node at start, not at its first
// request); worker threads resolve a session's service string once per batch
// (resolve), then lease an instance for each request (lease), blocking while
// all `concurrency` instances are busy.
//
// Thread safety: resolve() and lease() may be called from any thread; the
// service list is constant after start(). Ownership: the Host owns every
// instance; a Lease borrows one and must not outlive the Host. Instances are
// destroyed (plug-in shutdown, exec workers stopped) when the Host is.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
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
  // Asks running requests to give up (node stop); thread-safe.
  void cancel_all();

 private:
  Host() = default;
  std::vector<std::unique_ptr<Hosted>> services_;
};

}  // namespace zgrid::svc
