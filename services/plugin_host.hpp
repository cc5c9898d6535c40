// Loads shared-library services through the C ABI of include/zgrid/service.h.
//
// load_plugin() dlopens a library (RTLD_NOW | RTLD_LOCAL: unresolved symbols
// fail at start, and two plug-ins never see each other's symbols), checks its
// ABI version and descriptor, and returns a ServiceInfo whose factory makes
// one instance (the plug-in's init) per call. The library stays loaded while
// any ServiceInfo copy or instance refers to it; every instance's shutdown
// runs before the dlclose.
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

// `config` is passed to every init. Errors name the file: cannot open, no
// entry symbol, ABI version mismatch, malformed descriptor.
Result<ServiceInfo> load_plugin(const std::string& path, const std::string& config);

}  // namespace zgrid::svc
