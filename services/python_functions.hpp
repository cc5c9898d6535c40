// The built-in service `python` (version 1, operation `call`): any Python
// function on the grid (issue 30; docs/services.md, "The python service").
//
// `zgrid-node --python PYTHON` registers it. It is an exec-bridge service
// (services/exec_bridge.hpp) whose program is PYTHON (resolved to an absolute
// path through PATH once, at start) with args ["-c", <python/zgrid/_worker.py>]:
// the worker's source is compiled into the node (cmake/EmbedPythonWorker.cmake
// writes python_worker_source()), so nothing is read from disk at run time and
// the node and its worker always speak the same format. Each worker process
// gets ZGRID_NODE=<node id> (named in its fault messages) and
// ZGRID_MAX_PAYLOAD=<proto::kMaxPayload> (the result limit it enforces).
// Pipelining is on (ExecConfig::pipeline) for per-call instances: the worker
// answers in order and reads ahead. Stateful sessions are on
// (ExecConfig::sessions, ServiceInfo::sessions; zgrid.Executor(stateful=True)):
// each gets a worker process of its own, told ":session_start" first, that
// runs the session's calls one at a time and keeps what they leave in it.
//
// The format of a call and of its result is _worker.py's docstring (owned by
// the Python client, python/zgrid/); this file knows none of it.
//
// Thread safety: start-up only (main, before the node runs); the ServiceInfo
// it adds is read-only afterwards.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/status.hpp"
#include "services/service.hpp"

namespace zgrid::svc {

// The source of python/zgrid/_worker.py, as it was at build time (generated).
std::string_view python_worker_source();

// `program` as an absolute path: one with a '/' is taken as it is (made
// absolute against the working directory), a bare name is looked up in
// `path_env` (PATH's value; null or empty: /usr/local/bin:/usr/bin:/bin) like
// a shell does. Errors name the program: not found on PATH, not an
// executable file.
[[nodiscard]] Result<std::string> resolve_program(const std::string& program, const char* path_env);

// Runs `python -c <check>` (absolute path) once and waits at most
// `timeout_ms`: ok when it is Python 3 and imports cloudpickle. The error is
// one line naming the Python and what to install.
[[nodiscard]] Status check_python(const std::string& python, Millis timeout_ms = 30'000);

// The service `python`, version 1, operation `call`, `concurrency` worker
// processes (0: one per node worker), each `python -c <worker source>`
// (`python` absolute) with ZGRID_NODE=`node_id`.
ServiceInfo python_service(const std::string& python, int concurrency, const std::string& node_id);

// For zgrid-node's main: resolve `python` through $PATH, check it, add the
// service to `registry`. Errors are one line for stderr (exit 2).
[[nodiscard]] Status register_python(const std::string& python, int concurrency,
                                     const std::string& node_id, Registry& registry);

}  // namespace zgrid::svc
