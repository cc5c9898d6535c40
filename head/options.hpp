// HeadOptions: every knob of zgrid-head, with its default and unit, and the
// one place their ranges are checked (Validate). ParseFlags builds them from
// flags, ZGRID_* environment and --config; documented in docs/operations.md.
// Plain values: no thread-safety concerns.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/status.hpp"

namespace zgrid::head {

// Fault injection for tests (docs/architecture.md, "Recovery"). zgrid-head's
// main fills it from ZGRID_* test variables; production code never reads the
// environment for them.
struct HeadTestHooks {
  std::string crash_point;         // NAME[:N]: SIGKILL the N-th time NAME is reached
  std::string stop_point;          // TYPE[:N]: SIGSTOP before handling the N-th client message TYPE
  std::string journal_fault_file;  // while it exists, journal writes fail
  bool journal_fault_after = false;     // ... after reaching the log (a failed sync)
  std::string journal_read_fault_file;  // while it exists, segment reads fail (EIO)
  long journal_inline_max = -1;         // >= 0: JournalOptions::inline_max (-1: its default)
  bool journal_volatile_log = false;    // JournalOptions::volatile_log
  bool no_zap = false;                  // start without a ZAP handler (must refuse to serve)
  bool verify_tables = false;  // every tick, recompute what is kept incrementally; abort on drift
  Millis node_window_ms = -1;  // >= 0: replaces the node reconnect window (NodeReconnectWindow)
};

struct HeadOptions {
  std::string frontend = "tcp://127.0.0.1:5555";  // clients connect here
  std::string backend = "tcp://127.0.0.1:5556";   // nodes connect here
  std::string data_dir;                           // durable sessions; empty: interactive only
  std::string endpoints_file;  // if set, the bound endpoints are written here (ephemeral ports)
  // The HTTP listener (head/http.hpp): HOST:PORT or "off". The default port
  // taken, the head serves on an ephemeral one; a given one must bind.
  std::string http = "127.0.0.1:9755";
  bool http_given = false;
  std::string http_token_file;               // bearer token (needed with CURVE)
  Millis client_idle_timeout_ms = 300'000;   // open client removed after this much idleness
  Millis session_idle_timeout_ms = 300'000;  // idle interactive session closed after this
  std::map<std::string, Millis> service_task_timeout_ms;  // per service, over task_timeout_ms
  Millis task_timeout_ms = 0;   // a run longer than this is treated as lost (0: no limit)
  Millis heartbeat_ms = 1'000;  // head <-> node heartbeat interval
  int heartbeat_misses = 3;     // node dead after this many silent intervals
  // Node heartbeats a second the head budgets for: with more nodes than
  // this x --heartbeat, the interval it tells them grows (0: never).
  std::uint64_t heartbeat_rate = 2'000;
  int max_retries = 3;                         // tries past this fault retry_limit_exceeded
  std::uint64_t queue_hwm = 200'000;           // per session: acks held back above this
  std::uint64_t response_window = 65'536;      // responses in flight to one client
  std::uint64_t response_queue_max = 65'536;   // queued for a client before dispatch pauses
  std::uint64_t max_task_batch = 4'096;        // tasks in one message to a node
  std::uint64_t durable_window = 65'536;       // durable: requests loaded from the journal at once
  std::uint64_t min_free_bytes = 64ull << 20;  // below this free space, new requests are refused
  // Preallocated in the data directory and released to purge or to start on
  // a full disk (0: none).
  std::uint64_t disk_reserve_bytes = 32ull << 20;
  // Connections that have not completed their ZeroMQ handshake within this
  // are dropped (idle sockets cannot hold the head's descriptors).
  Millis handshake_timeout_ms = 5'000;
  // Failover (head/lease.hpp, docs/operations.md "Failover"): the active
  // head renews its lease on --data-dir this often; a standby takes over
  // after it went unrenewed this long.
  Millis lease_renew_ms = 500;
  Millis lease_timeout_ms = 2'000;
  Millis retention_ms =
      0;  // purge complete durable sessions after this long (0: keep until purged)

  // Security (docs/security.md). CURVE is on when curve_secret_file is set;
  // then both authorized directories are required.
  std::string curve_secret_file;       // the head's key pair (zgrid keygen)
  std::string authorized_clients_dir;  // *.pub of clients allowed on the frontend
  std::string authorized_nodes_dir;    // *.pub of nodes allowed on the backend
  std::string admin_keys_dir;          // *.pub of clients that may act on any session
  bool require_curve = false;          // refuse to start without CURVE
  // Sessions of the built-in `python` service run pickled functions: refused
  // on a non-loopback frontend without CURVE unless this is set
  // (head/security.hpp, docs/security.md "Python functions").
  bool allow_python_functions = false;
  // Per client key (0: no limit). Without CURVE every client shares one key.
  std::uint64_t max_sessions_per_key = 0;       // open sessions
  std::uint64_t max_queued_per_key = 0;         // requests accepted and not yet run
  std::uint64_t max_journal_bytes_per_key = 0;  // journal bytes of its durable sessions

  HeadTestHooks hooks;
};

// Checks every option against its range; the error names the flag, e.g.
// "--max-retries must be between 0 and 1000 (got -4)". Used by ParseFlags
// and by run_head, so a HeadOptions built in code is held to the same rules.
[[nodiscard]] Status Validate(const HeadOptions& o);

// The node reconnect window: how long after the head starts serving its
// nodes have all registered again, at the longest — a node notices a silent
// head after heartbeat x misses, registers again within its register backoff
// cap (proto::kNodeReconnectMaxMs, zgrid-node's default), and one more
// heartbeat covers the round trip: 9 s with the defaults. Until then the head
// does not say that no node offers a service (docs/operations.md, "Work that
// cannot run"). The test hook node_window_ms replaces it.
Millis NodeReconnectWindow(const HeadOptions& o);

// --http's HOST:PORT or [V6]:PORT → host and port; false when malformed.
bool parse_http_endpoint(const std::string& ep, std::string* host, int* port);

// zgrid-head's command line: what to run, and how to log.
struct HeadCommand {
  HeadOptions options;
  std::string log_level = "info";
  std::string log_file;
  std::string log_format = "text";          // or json: one object per line
  std::vector<std::string> purge_sessions;  // --purge-session: purge these offline, then exit
};

// Parses argv (argv[0] is the program) with the precedence flag > environment
// (`env_prefix`, empty: none) > --config file > default, then Validate.
// Returns -1 to go on, or the exit status for main: 0 after --help, 2 after a
// bad value (one line on stderr naming the option).
int ParseFlags(int argc, const char* const* argv, HeadCommand* out,
               const std::string& env_prefix = "ZGRID_");

// The test hooks from their ZGRID_* test variables (docs/operations.md, "Test
// hooks"). Called by zgrid-head's main only: nothing else reads them.
HeadTestHooks TestHooksFromEnvironment();

}  // namespace zgrid::head
