// How a worker's tasks reach service instances: the node's glue over
// services/host (which owns the instance pools and the stateful sessions'
// instances). It owns
//   - the batch's service string resolved once per worker (name@version/op),
//   - which instance a batch's tasks run on (`Way`): a lease for the
//     worker's whole run of the batch, a lease per task under a concurrency
//     limit, a stateful session's own instance, or none (unresolved: each
//     task faults with the reason),
//   - one task's run under the node's rules for its output: an exception or a
//     result over the payload limit becomes service_error, fault codes are
//     cut to 64 bytes, and the faulty-node test hook,
//   - what the node advertises when it registers (advertise()).
//
// Threads: one Instances per worker thread, used by that thread alone (its
// cache of resolved services is not shared); the Host behind it is
// thread-safe.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.hpp"
#include "services/host.hpp"
#include "services/service.hpp"

namespace zgrid::node {

// The services a node offers and their registration details, as `register` carries them.
void advertise(const svc::Host& host, std::vector<std::string>* services,
               std::vector<proto::ServiceAd>* ads);

class Instances {
 public:
  using Resolved = svc::Host::Resolved;
  // Which instance a batch's tasks run on.
  enum class Way {
    kUnresolved,    // no service: each task faults (Resolved::fault_code)
    kSession,       // a stateful session's own instance, tasks in order (run_session)
    kLeasePerRun,   // an instance per worker: one lease for the worker's run of the batch
    kLeasePerTask,  // fewer instances than workers: a lease per task
  };

  // `workers`: the node's worker count; `faulty`: NodeTestHooks::faulty.
  Instances(svc::Host& host, std::size_t workers, bool faulty)
      : host_(host), workers_(workers), faulty_(faulty) {}

  // The service a batch's session asked for; resolved once per worker.
  const Resolved& resolve(std::string_view service) {
    auto it = resolved_.find(service);
    if (it == resolved_.end())
      it = resolved_.emplace(std::string(service), host_.resolve(service)).first;
    return it->second;
  }

  Way way(const Resolved& svc, const proto::Tasks& tasks) const {
    if (svc.service == nullptr) return Way::kUnresolved;
    if (!tasks.instance.empty()) return Way::kSession;
    // Every worker can have an instance: lease one for the whole run (a
    // lease per request cost two contended lock round trips each). With
    // fewer, lease per request, so a worker holding one cannot starve a task
    // another claimed.
    return svc.service->instances.size() >= workers_ ? Way::kLeasePerRun : Way::kLeasePerTask;
  }

  // Blocks until an instance of `svc` (resolved) is idle.
  svc::Host::Lease lease(const Resolved& svc) { return host_.lease(*svc.service); }

  // Runs one task on `instance` (leased from svc.service's pool; null when
  // `svc` is unresolved). Out of line, as it always was: one call per task.
  void run(svc::Service* instance, const Resolved& svc, const proto::Task& t,
           svc::Output& out) const;

  // Runs the tasks with these payloads on `instance` (leased from
  // svc.service's pool; its pipeline_depth() >= payloads.size()) through
  // Service::run_pipelined: out[i] gets task i's answer, under run()'s rules,
  // then done(i) is called, in order, once per task. An exception faults the
  // task it was answering (service_error) and the rest run on. `out` has at
  // least payloads.size() elements.
  void run_pipelined(svc::Service* instance, const Resolved& svc,
                     const std::vector<std::string_view>& payloads, std::vector<svc::Output>& out,
                     const std::function<void(std::size_t)>& done) const;

  // Runs one task of a stateful session on its own instance (key `key`),
  // made and opened at the session's first task on this node. The instance
  // is locked while the task runs: one request at a time, even if the head
  // sent the next before this one returned. `generation`: the connection the
  // task came with (an older one gets no instance: retryable).
  void run_session(const Resolved& svc, std::string_view key, std::uint64_t generation,
                   const proto::Task& t, svc::Output& out) const;

 private:
  // run()'s rules for an answer: the payload limit, the faulty hook, short fault codes.
  void finish(svc::Output& out) const;

  svc::Host& host_;
  std::size_t workers_;
  bool faulty_;
  std::map<std::string, Resolved, std::less<>> resolved_;  // few per node
};

}  // namespace zgrid::node
