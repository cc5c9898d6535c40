// The exec bridge: a service run by an external program, in any language.
//
// Each instance (one per concurrency slot) owns one long-lived child process
// and talks to it over its stdin/stdout in frames: a 4-byte big-endian length,
// then one msgpack value (docs/services.md, "The exec bridge"):
//
//   request  [id, operation, payload(bin)]
//   reply    [id, fault_code | nil, data(bin or str)]
//
// Stateful sessions (ExecConfig::sessions, registration key `sessions =
// true`): a session's instance is its own process, started at
// open_session, which sends [id, ":session_start", key(bin)]; the worker
// accepts with [id, nil, ""] or refuses with [id, fault_code, message] (the
// session's requests then fault service_error). close_session sends [id,
// ":session_end", key(bin)] and waits up to 5 s for the answer (not after
// cancel(): node stop); the process is stopped when the instance is
// destroyed. Such a process is never
// restarted: once it died (or was killed at a timeout or for garbage),
// every later request of the session faults `retryable` (its state is lost:
// the head replays the session on a fresh instance). Operation names
// starting with ':' are the bridge's own.
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
// Pipelining (ExecConfig::pipeline, registration key `pipeline = true`; the
// built-in python service): pipeline_depth() is 64 on a per-call instance (1
// on a session's) and run_pipelined writes the frames of several requests
// while it reads their replies, in order: non-blocking writes, one poll() on
// both pipes (a worker that stops reading while its replies fill the other
// pipe cannot deadlock the node), at most 256 KiB of frames encoded ahead of
// what the pipe took. The first request without a reply is the one the worker
// is running (it answers in order): a death, a timeout (its cancel flag) or
// garbage faults that request as above, the worker is stopped, and the
// requests after it go to the restarted worker (with the same backoff), where
// they run as if first sent; node stop answers the rest `retryable` at once.
// The worker must answer in order and write each reply before running the
// next request (docs/services.md, "Pipelining").
//
// Thread safety: an instance serves one request at a time (Service contract;
// open_session, close_session and a run_pipelined call count as requests);
// cancel() (node stop) and
// the request's cancel flag may be set from any thread and make a waiting
// request give up within 50 ms.
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
  bool sessions = false;          // the program serves stateful sessions
  // The program reads requests ahead and answers them in order: the node
  // may write several before reading a reply (run_pipelined).
  bool pipeline = false;
};

// A factory making one bridge (and, lazily, its worker process) per call.
MakeService exec_factory(ExecConfig config);

}  // namespace zgrid::svc
