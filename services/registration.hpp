// Service registration: one file per service, read by a node at start
// (docs/services.md, "Registration files").
//
//   # /etc/zgrid/services.d/montecarlo.toml
//   name = "montecarlo"            # default: the plug-in's own name
//   version = "1"                  # default: the plug-in's own ("1" for a program)
//   library = "libmontecarlo.so"   # or: program = "worker.py" (+ args = [...])
//   operations = ["pi", "echo"]    # default: the plug-in's own list
//   concurrency = 2                # instances per node; default: one per worker
//   task_timeout = "30s"           # a run longer than this is lost (retried)
//   max_retries = 3                # default: the head's --max-retries
//   env = ["OMP_NUM_THREADS=1"]    # programs: added to the worker's environment
//   sessions = true                # programs: it serves stateful sessions
//   pipeline = true                # programs: it reads ahead, answers in order
//   config = "seed=42"             # plug-ins: passed to every init
//
// Files are TOML (the subset CLI11 reads: key = value, strings, numbers,
// arrays of strings), parsed by CLI11's config reader, one App per file.
// Relative paths are relative to the file's directory. Unknown keys and bad
// values are errors naming the file and key: the node refuses to start.
//
// Thread safety: start-up only.
#pragma once

#include <string>

#include "common/status.hpp"
#include "services/service.hpp"

namespace zgrid::svc {

// Reads one registration file into `registry` (loading its plug-in).
[[nodiscard]] Status register_file(const std::string& path, Registry& registry);

// Reads every *.toml and *.conf file of `dir`, in name order.
[[nodiscard]] Status register_dir(const std::string& dir, Registry& registry);

// A bare plug-in (--service-lib PATH): its own name, version and operations,
// empty config.
[[nodiscard]] Status register_library(const std::string& path, Registry& registry);

}  // namespace zgrid::svc
