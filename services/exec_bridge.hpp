// The exec bridge: a service run by an external program, in any language.
//
// Each instance (one per concurrency slot) owns one long-lived child process
// and talks to it over its stdin/stdout in frames: a 4-byte big-endian length,
// then one msgpack value (docs/services.md, "The exec bridge"):
//
//   request  [id, operation, payload(bin)]
//   reply    [id, fault_code | nil, data(bin or str)]
//
// The child's stderr is the node's. Failures, each a per-request fault:
//   - the worker died (EOF, EPIPE): reaped, restarted before the next
//     request (with backoff while it keeps dying without answering), fault
//     `retryable` (the head runs the request again, charged a try);
//   - no reply within the task timeout (the node sets Output::cancelled()):
//     SIGKILL, restart (the node has reported the timeout already);
//   - a malformed reply (bad frame, wrong id, oversized): the worker is
//     killed and restarted, fault `service_error`.
// Every wait is a poll() with a deadline; nothing blocks forever.
//
// Thread safety: an instance serves one request at a time (Service contract);
// cancel() (node stop) and the request's cancel flag may be set from any
// thread and make a waiting request give up within 50 ms.
#pragma once

#include <string>
#include <vector>

#include "common/clock.hpp"
#include "services/service.hpp"

namespace zgrid::svc {

struct ExecConfig {
  std::string program;            // absolute path of the executable
  std::vector<std::string> args;  // argv[1..]
  std::vector<std::string> env;   // "NAME=value", added to the node's environment
  std::string label;              // name@version, for messages
  Millis max_backoff_ms = 5'000;  // restart delay cap while the worker keeps dying
};

// A factory making one bridge (and, lazily, its worker process) per call.
MakeService exec_factory(ExecConfig config);

}  // namespace zgrid::svc
