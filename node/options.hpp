// NodeOptions: every knob of zgrid-node, with its default and unit, and the
// one place their ranges are checked (Validate). ParseFlags builds them, and
// the rest of zgrid-node's command line (logging, service plug-ins and
// registration files, the simulator), from flags, ZGRID_NODE_* environment
// and --config; documented in docs/operations.md ("zgrid-node").
// Plain values: no thread-safety concerns (run_node reads them on every
// thread and writes none after start).
#pragma once

#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "common/status.hpp"

namespace zgrid::node {

// Fault injection for tests. zgrid-node's main fills it from ZGRID_NODE_TEST_*
// variables; the node itself never reads the environment for them.
struct NodeTestHooks {
  bool faulty = false;  // every task faults service_error: a broken node (quarantine tests)
};

struct NodeOptions {
  static constexpr std::size_t kMaxHeads = 16;

  // The head's backend endpoint, or a comma-separated list of the backends
  // of a failover pair (or more): one head at a time, the active one
  // (docs/operations.md, "Failover: nodes"). At most kMaxHeads.
  std::string head = "tcp://127.0.0.1:5556";
  int workers = 0;  // worker threads, 0..4096; 0: hardware concurrency
  // Tasks per worker the head may send ahead, 0..100000. 0 (the default):
  // adaptive, the node asks for about 5 ms of work per worker at its
  // measured task time (node/prefetch.hpp).
  int prefetch = 0;
  std::vector<std::string> services;  // name or name@version; empty: every registered service
  std::string node_id;                // 1..64 printable characters; empty: host-pid-random
  Millis heartbeat_ms = 1000;         // until the head says otherwise; 1 ms..1 h
  int heartbeat_misses = 3;           // head declared silent after this many; 1..1000
  // Backoff cap between register attempts; 1 ms..1 h. The head's node
  // reconnect window assumes the default (head/options.hpp).
  Millis reconnect_max_ms = proto::kNodeReconnectMaxMs;
  // CURVE (docs/security.md): the head's public key and this node's pair
  // (Z85). All empty: plain; all three set: CURVE.
  std::string head_key, public_key, secret_key;

  NodeTestHooks hooks;
};

// Checks every option against its range; the error names the flag, e.g.
// "--workers must be between 0 and 4096 (got 5000)". Used by ParseFlags and
// by run_node, so NodeOptions built in code are held to the same rules.
[[nodiscard]] Status Validate(const NodeOptions& o);

// zgrid-node's command line: what to run, with which services, and how to log.
struct NodeCommand {
  NodeOptions options;
  std::string log_level = "info";
  std::string log_file;
  std::string log_format = "text";        // or json: one object per line
  std::vector<std::string> service_libs;  // --service-lib: plug-ins to load (repeatable)
  std::string services_dir;               // --services-dir: registration files
  // --python PYTHON: offer the built-in service `python` (services/python_functions.hpp),
  // PYTHON an absolute path or a name looked up on PATH; empty: not offered.
  std::string python;
  int python_workers = 0;  // --python-workers: its worker processes, 0..4096; 0: --workers'
  // Test mode (--simulate N): N simulated echo nodes in this process
  // (node/sim_nodes.hpp), answering each task message `simulate_hold_ms` after it came.
  int simulate = 0;
  Millis simulate_hold_ms = 0;
};

// Parses argv (argv[0] is the program) with the precedence flag > environment
// (`env_prefix`, empty: none) > --config file > default, reads the CURVE key
// files, then Validate. Returns -1 to go on, or the exit status for main: 0
// after --help, 2 after a bad value (one line on stderr naming the option).
int ParseFlags(int argc, const char* const* argv, NodeCommand* out,
               const std::string& env_prefix = "ZGRID_NODE_");

// The test hooks from their variables (ZGRID_NODE_TEST_FAULTY=1: faulty).
// Called by zgrid-node's main only: nothing else reads them.
NodeTestHooks TestHooksFromEnvironment();

}  // namespace zgrid::node
