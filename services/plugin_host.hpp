// Loads shared-library services through the C ABI of include/zgrid/service.h.
//
// load_plugin() dlopens a library (RTLD_NOW | RTLD_LOCAL: unresolved symbols
// fail at start, and two plug-ins never see each other's symbols), checks its
// ABI version and descriptor, and returns a ServiceInfo whose factory makes
// one instance (the plug-in's init) per call. The library stays loaded while
// any ServiceInfo copy or instance refers to it; every instance's shutdown
// runs before the dlclose.
//
// ABI versions: 2 (this node's) and 1 (plug-ins built before stateful
// sessions) load; any other is refused. A version 2 descriptor with
// session_open and session_close makes ServiceInfo::sessions true; an
// instance's open_session / close_session call them (close only after a
// successful open, at most once).
//
// Every answer of a plug-in is checked: an invalid return code, no answer,
// a result over the payload limit or a malformed fault code becomes a
// per-request service_error fault, never a crash of the node.
//
// Thread safety: load_plugin() is for start-up (one thread). Instances follow
// the Service contract (one request at a time).
#pragma once

#include <string>

#include "common/status.hpp"
#include "services/service.hpp"

namespace zgrid::svc {

// `config` is passed to every init (stateful sessions' instances included).
// Errors name the file: cannot open, no entry symbol, ABI version mismatch,
// malformed descriptor (too small for its version, only one of the session
// callbacks).
Result<ServiceInfo> load_plugin(const std::string& path, const std::string& config);

}  // namespace zgrid::svc
