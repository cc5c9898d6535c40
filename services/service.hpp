// The Service interface and registry.
//
// A service is a plain C++ class: request bytes in, result bytes or a fault
// out. The node makes a pool of instances per service (services/host.hpp):
// an instance never runs two requests at once and need not be thread-safe,
// though successive requests may come from different worker threads. The
// node catches every exception a service throws, turning it into a
// per-request fault.
//
// Stateful sessions (docs/services.md, "Stateful sessions"): a service whose
// ServiceInfo says `sessions` may also serve sessions created stateful. The
// node then makes one extra instance per session (not from the pool), calls
// open_session(key) on it once, runs that session's requests on it one at a
// time in request order, and calls close_session() once before destroying
// it. When the node holding it is lost, the head replays the session's
// requests from the first on a fresh instance elsewhere, discarding their
// answers: a stateful service must be deterministic (the same requests in
// the same order give the same state and answers).
//
// Services come from three places, all described by one ServiceInfo:
// built in (builtin.cpp), shared-library plug-ins (plugin_host.hpp) and
// external programs behind the exec bridge (exec_bridge.hpp), the last two
// declared by registration files (registration.hpp, docs/services.md).
// Adding a service touches only services/ (or nothing of zgrid at all).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "common/status.hpp"

namespace zgrid::svc {

// Fault codes a service may return (docs/protocol.md, "Faults"): the wire's.
inline constexpr std::string_view kInvalidArgument = proto::fault::kInvalidArgument;
inline constexpr std::string_view kServiceError = proto::fault::kServiceError;
inline constexpr std::string_view kRetryable = proto::fault::kRetryable;  // the head runs it again

// Where a service writes its answer. The node reuses one Output per worker, so
// `data` keeps its capacity between requests.
struct Output {
  std::string data;        // the result, or the fault message
  std::string fault_code;  // empty: success
  // Set by the node (another thread) when this request ran past its task
  // timeout: its answer is no longer wanted. A service that waits or loops
  // may poll cancelled() and return early; one that does not keeps its
  // worker stuck until it returns (docs/services.md, "Task timeouts").
  const std::atomic<bool>* cancel_flag = nullptr;

  bool cancelled() const {
    return cancel_flag != nullptr && cancel_flag->load(std::memory_order_relaxed);
  }
  void reset() {
    data.clear();
    fault_code.clear();
  }
  void fault(std::string_view code, std::string_view message) {
    fault_code.assign(code);
    data.assign(message);
  }
};

class Service {
 public:
  virtual ~Service() = default;
  // Handles one request. May throw: the host turns exceptions into faults.
  virtual void handle(std::string_view request, Output& out) = 0;
  // Handles one request of `operation` (the service's default operation when
  // the session named none). Services with one operation need not override.
  virtual void run(std::string_view operation, std::string_view request, Output& out) {
    (void)operation;
    handle(request, out);
  }
  // Asks a request running on another thread to give up soon (node stop).
  // Thread-safe; most services cannot be interrupted and ignore it.
  virtual void cancel() {}

  // Pipelining (pooled, per-call instances only; never a stateful session's).
  // A service whose per-request cost is mostly a round trip (the exec
  // bridge: a pipe write, a wake-up, a read) may take several requests at
  // once and overlap them. pipeline_depth() is the most it takes in one
  // run_pipelined call (1: none; the node then calls run() per request).
  // run_pipelined answers requests[i] of `operation` into out[i], in order,
  // and calls done(i) as soon as out[i] holds request i's answer, before it
  // answers request i + 1 (the node times, reports and may cancel each
  // request separately: out[i].cancel_flag is the flag of request i while it
  // is the first unanswered one; all outs share one flag, reset by the node
  // in done(i - 1)). Each request's answer is its own: a fault answers that
  // request only, and the ones after it still run. It returns after
  // done(requests.size() - 1). The default runs run() on each in turn.
  // `out` has at least requests.size() elements, reset by the caller.
  virtual std::size_t pipeline_depth() const { return 1; }
  virtual void run_pipelined(std::string_view operation, std::span<const std::string_view> requests,
                             std::span<Output> out, const std::function<void(std::size_t)>& done) {
    for (std::size_t i = 0; i < requests.size(); ++i) {
      run(operation, requests[i], out[i]);
      done(i);
    }
  }

  // Stateful sessions (only when ServiceInfo::sessions). The node calls
  // open_session once on a fresh instance made for one stateful session,
  // before its first request; `session_key` ("<session id>.<instance>") names
  // that instance, for logs. An error refuses the session on this instance:
  // each of its requests faults service_error with the message. Then the
  // session's requests arrive through run(), one at a time and in request
  // order; a fault (or exception) answers that request only and the next one
  // runs on the same state, so a request that faults should leave the state
  // as it was. The answers must depend only on the requests so far (the head
  // replays them on a fresh instance when a node is lost). close_session is
  // called once, after the last request and before the instance is
  // destroyed (not at all if the node dies). Neither is called on pooled
  // (per-call) instances.
  virtual Status open_session(std::string_view session_key) {
    (void)session_key;
    return Status::FailedPrecondition("this service does not keep session state");
  }
  virtual void close_session() {}
};

using Factory = std::function<std::unique_ptr<Service>()>;
// A factory that can fail (a plug-in's init, an exec program that cannot start).
using MakeService = std::function<Result<std::unique_ptr<Service>>()>;

// Everything a node knows about one service it can host.
struct ServiceInfo {
  std::string name;
  std::string version = "1";
  std::vector<std::string> operations;  // empty: one unnamed operation; else [0] is the default
  int concurrency = 0;                  // instances per node; 0: one per worker thread
  Millis task_timeout_ms = 0;           // 0: the head's --task-timeout
  int max_retries = -1;                 // -1: the head's --max-retries
  std::string source = "built in";      // for messages: the registration file or library
  bool sessions = false;                // serves stateful sessions (Service::open_session)
  // Its requests are short, bounded computations (microseconds; no waiting,
  // no I/O, no unbounded loops): the node may run a lone one on its I/O
  // thread instead of handing it to a worker (docs/architecture.md, "Lone
  // tasks run inline"). The node cannot cancel such a run, so a request that
  // overruns its task timeout there is reported only when it returns.
  // Default off; the built-in echo and factorize declare it.
  bool run_inline = false;
  MakeService make;
};

// Thread safety: fill it before the node starts; read-only afterwards.
class Registry {
 public:
  // A built-in service, version 1 (`run_inline`: ServiceInfo::run_inline).
  void add(std::string name, Factory factory, bool run_inline = false);
  // Refuses a second service with the same name and version.
  [[nodiscard]] Status add(ServiceInfo info);
  const std::vector<ServiceInfo>& services() const { return services_; }
  // name@version of every service.
  std::vector<std::string> names() const;

 private:
  std::vector<ServiceInfo> services_;
};

// Adds factorize, echo, sleep, fail and running_sum (stateful sessions only).
void register_builtins(Registry& registry);

}  // namespace zgrid::svc
