#include "head/options.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string_view>
#include <tuple>

#include "common/cli.hpp"
#include "common/protocol.hpp"
#include "common/util.hpp"

namespace zgrid::head {

namespace {

using cli::in_range;

Status duration_in_range(std::string_view flag, Millis v, Millis lo) {
  constexpr Millis kMax = static_cast<Millis>(proto::kMaxDurationMs);
  if (v >= lo && v <= kMax) return Status::OK();
  return Status::InvalidArgument(std::string(flag) + " must be between " + format_duration(lo) +
                                 " and " + format_duration(kMax) + " (got " + std::to_string(v) +
                                 "ms)");
}

}  // namespace

bool parse_http_endpoint(const std::string& ep, std::string* host, int* port) {
  auto colon = ep.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == ep.size()) return false;
  std::string h = ep.substr(0, colon), p = ep.substr(colon + 1);
  if (h.front() == '[') {
    if (h.back() != ']' || h.size() < 3) return false;
    h = h.substr(1, h.size() - 2);
  }
  if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos) return false;
  int v = std::stoi(p);
  if (v > 65535) return false;
  *host = h;
  *port = v;
  return true;
}

Millis NodeReconnectWindow(const HeadOptions& o) {
  if (o.hooks.node_window_ms >= 0) return o.hooks.node_window_ms;
  return o.heartbeat_ms * o.heartbeat_misses + proto::kNodeReconnectMaxMs + o.heartbeat_ms;
}

Status Validate(const HeadOptions& o) {
  using U = std::uint64_t;
  std::string http_host;
  int http_port = 0;
  if (o.http != "off" && !parse_http_endpoint(o.http, &http_host, &http_port))
    return Status::InvalidArgument("--http: expected HOST:PORT or off (got '" + o.http + "')");
  ZG_RETURN_IF_ERROR(in_range<Millis>("--heartbeat", o.heartbeat_ms, 1,
                                      static_cast<Millis>(proto::kMaxHeartbeatMs)));
  ZG_RETURN_IF_ERROR(in_range<int>("--heartbeat-misses", o.heartbeat_misses, 1,
                                   static_cast<int>(proto::kMaxHeartbeatMisses)));
  ZG_RETURN_IF_ERROR(in_range<U>("--heartbeat-rate", o.heartbeat_rate, 0, 1'000'000));
  ZG_RETURN_IF_ERROR(
      in_range<int>("--max-retries", o.max_retries, 0, static_cast<int>(proto::kMaxRetriesLimit)));
  ZG_RETURN_IF_ERROR(in_range<U>("--queue-hwm", o.queue_hwm, 1, U{1} << 40));
  ZG_RETURN_IF_ERROR(in_range<U>("--response-window", o.response_window, 1, U{1} << 32));
  ZG_RETURN_IF_ERROR(in_range<U>("--response-queue-max", o.response_queue_max, 1, U{1} << 32));
  ZG_RETURN_IF_ERROR(in_range<U>("--max-task-batch", o.max_task_batch, 1, proto::kMaxBatchItems));
  // Zero would never load a stored batch: a durable session could not run.
  ZG_RETURN_IF_ERROR(in_range<U>("durable window", o.durable_window, 1, U{1} << 32));
  ZG_RETURN_IF_ERROR(duration_in_range("--client-idle-timeout", o.client_idle_timeout_ms, 1));
  ZG_RETURN_IF_ERROR(duration_in_range("--session-idle-timeout", o.session_idle_timeout_ms, 1));
  ZG_RETURN_IF_ERROR(duration_in_range("--task-timeout", o.task_timeout_ms, 0));
  ZG_RETURN_IF_ERROR(duration_in_range("--retention", o.retention_ms, 0));
  ZG_RETURN_IF_ERROR(in_range<Millis>("--handshake-timeout", o.handshake_timeout_ms, 1, 3'600'000));
  ZG_RETURN_IF_ERROR(in_range<Millis>("--lease-renew", o.lease_renew_ms, 10, 60'000));
  ZG_RETURN_IF_ERROR(in_range<Millis>("--lease-timeout", o.lease_timeout_ms, 30, 600'000));
  if (o.lease_timeout_ms < 3 * o.lease_renew_ms)
    return Status::InvalidArgument("--lease-timeout (" + format_duration(o.lease_timeout_ms) +
                                   ") must be at least 3 x --lease-renew (" +
                                   format_duration(o.lease_renew_ms) + ")");
  for (const auto& [service, ms] : o.service_task_timeout_ms) {
    if (service.empty() || service.size() > proto::kMaxNameLength)
      return Status::InvalidArgument("--service-timeout: a service name of 1 to " +
                                     std::to_string(proto::kMaxNameLength) + " characters");
    ZG_RETURN_IF_ERROR(duration_in_range("--service-timeout " + service, ms, 0));
  }
  return Status::OK();
}

int ParseFlags(int argc, const char* const* argv, HeadCommand* out, const std::string& env_prefix) {
  HeadOptions& o = out->options;
  CLI::App app("zgrid-head: the broker of a zgrid grid", "zgrid-head");
  app.set_config("--config", "", "Read options from this INI/TOML file");
  app.add_option("--frontend", o.frontend, "Endpoint clients connect to")->capture_default_str();
  app.add_option("--backend", o.backend, "Endpoint nodes connect to")->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "Journal directory for durable sessions");
  app.add_option("--endpoints-file", o.endpoints_file,
                 "Write the bound endpoints here (for ephemeral ports, tcp://127.0.0.1:0)");
  auto* http = app.add_option("--http", o.http,
                              "HTTP listener for /metrics, the JSON API and the dashboard "
                              "(HOST:PORT, or off)")
                   ->capture_default_str();
  app.add_option("--http-token", o.http_token_file,
                 "File (mode 0600) holding the bearer token the HTTP API asks for (with CURVE)");
  cli::add_duration(app, "--client-idle-timeout", &o.client_idle_timeout_ms,
                    "Remove an open client idle this long, with its requests");
  cli::add_duration(app, "--session-idle-timeout", &o.session_idle_timeout_ms,
                    "Close an interactive session idle this long");
  cli::add_duration(app, "--retention", &o.retention_ms,
                    "Purge complete durable sessions after this long (0: keep until purged)");
  cli::add_duration(app, "--task-timeout", &o.task_timeout_ms,
                    "A request running longer than this is treated as lost (0: no limit)");
  std::vector<std::string> service_timeouts;
  app.add_option("--service-timeout", service_timeouts,
                 "Task timeout of one service, NAME=DURATION (repeatable; a session's own wins)");
  cli::add_duration(app, "--heartbeat", &o.heartbeat_ms, "Head <-> node heartbeat interval");
  cli::add_duration(app, "--lease-renew", &o.lease_renew_ms,
                    "Failover: the active head renews its lease on --data-dir this often");
  cli::add_duration(app, "--lease-timeout", &o.lease_timeout_ms,
                    "Failover: a standby head takes over after the lease went unrenewed this long "
                    "(at least 3 x --lease-renew)");
  app.add_option("--heartbeat-misses", o.heartbeat_misses,
                 "A node is dead after this many silent intervals (1 to 1000)")
      ->capture_default_str();
  app.add_option("--heartbeat-rate", o.heartbeat_rate,
                 "Node heartbeats a second the head allows for: with more nodes than this x "
                 "--heartbeat the interval grows to nodes / rate seconds (0: never)")
      ->capture_default_str();
  app.add_option("--max-retries", o.max_retries,
                 "Lost runs allowed before retry_limit_exceeded (0 to 1000)")
      ->capture_default_str();
  app.add_option("--queue-hwm", o.queue_hwm,
                 "Per session: hold acknowledgements above this many queued")
      ->capture_default_str();
  app.add_option("--response-window", o.response_window,
                 "Responses sent to one client and not yet acknowledged by it")
      ->capture_default_str();
  app.add_option("--response-queue-max", o.response_queue_max,
                 "Responses queued for a session's clients before its dispatch pauses")
      ->capture_default_str();
  app.add_option("--max-task-batch", o.max_task_batch,
                 "Most tasks in one message to a node (1 to 65536)")
      ->capture_default_str();
  std::string min_free = "64M";
  app.add_option("--min-free-space", min_free,
                 "Refuse new durable requests below this much free space in the data directory")
      ->capture_default_str();
  std::string reserve = "32M";
  app.add_option("--disk-reserve", reserve,
                 "Space kept preallocated in the data directory, released to purge or to start "
                 "on a full disk (0: none)")
      ->capture_default_str();
  cli::add_duration(app, "--handshake-timeout", &o.handshake_timeout_ms,
                    "Drop connections that have not completed their handshake by then");
  app.add_option("--purge-session", out->purge_sessions,
                 "Maintenance: purge this session from --data-dir without starting (for a session "
                 "whose journal records are corrupt; repeatable), then exit");
  app.add_option("--curve-secret", o.curve_secret_file,
                 "The head's CURVE key pair (zgrid keygen); turns CURVE on for both ports");
  app.add_option("--authorized-clients", o.authorized_clients_dir,
                 "Directory of client public keys (*.pub) admitted on the frontend");
  app.add_option("--authorized-nodes", o.authorized_nodes_dir,
                 "Directory of node public keys (*.pub) admitted on the backend");
  app.add_option("--admin-keys", o.admin_keys_dir,
                 "Directory of client keys that may act on any session and drain nodes");
  app.add_flag("--require-curve", o.require_curve, "Refuse to start without CURVE");
  app.add_flag("--allow-python-functions", o.allow_python_functions,
               "Accept sessions of the python service (pickled functions: running code) on a "
               "non-loopback frontend without CURVE");
  app.add_option("--max-sessions-per-key", o.max_sessions_per_key,
                 "Open sessions one client key may have (0: no limit)")
      ->capture_default_str();
  app.add_option("--max-queued-per-key", o.max_queued_per_key,
                 "Requests one client key may have waiting to run (0: no limit)")
      ->capture_default_str();
  std::string max_journal = "0";
  app.add_option("--max-journal-bytes-per-key", max_journal,
                 "Journal bytes one client key's durable sessions may hold, e.g. 10G (0: no limit)")
      ->capture_default_str();
  app.add_option("--log-level", out->log_level, "debug, info, warn or error")
      ->capture_default_str();
  app.add_option("--log-format", out->log_format, "text, or json (one object per line)")
      ->capture_default_str();
  app.add_option("--log-file", out->log_file,
                 "Log to this file (reopened on SIGHUP) instead of stderr");
  if (int rc = cli::parse(app, argc, argv, env_prefix); rc >= 0) return rc;

  auto fail = [](const std::string& line) {
    std::cerr << "zgrid-head: error: " << line << "\n";
    return 2;
  };
  for (auto [flag, text, value] :
       {std::tuple{"--min-free-space", &min_free, &o.min_free_bytes},
        std::tuple{"--disk-reserve", &reserve, &o.disk_reserve_bytes},
        std::tuple{"--max-journal-bytes-per-key", &max_journal, &o.max_journal_bytes_per_key}}) {
    auto v = parse_size(*text);
    if (!v.ok()) return fail(std::string(flag) + ": " + v.status().message());
    *value = *v;
  }
  for (const auto& st : service_timeouts) {
    auto eq = st.find('=');
    auto d = eq == std::string::npos ? Result<Millis>(Status::InvalidArgument("missing ="))
                                     : parse_duration(st.substr(eq + 1));
    if (eq == 0 || !d.ok())
      return fail("--service-timeout: expected NAME=DURATION, got '" + st + "'");
    o.service_task_timeout_ms[st.substr(0, eq)] = *d;
  }
  if (!out->purge_sessions.empty() && o.data_dir.empty())
    return fail("--purge-session needs --data-dir");
  o.http_given = http->count() > 0 || o.http != HeadOptions{}.http;  // flag, env or config
  if (Status st = Validate(o); !st.ok()) return fail(st.message());
  return -1;
}

HeadTestHooks TestHooksFromEnvironment() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  HeadTestHooks h;
  h.crash_point = env("ZGRID_CRASH_POINT");
  h.stop_point = env("ZGRID_STOP_POINT");
  h.journal_fault_file = env("ZGRID_JOURNAL_FAULT_FILE");
  h.journal_fault_after = env("ZGRID_JOURNAL_FAULT_MODE") == "after";
  h.journal_read_fault_file = env("ZGRID_JOURNAL_READ_FAULT_FILE");
  if (std::string v = env("ZGRID_JOURNAL_INLINE_MAX"); !v.empty())
    h.journal_inline_max = std::strtol(v.c_str(), nullptr, 10);
  h.journal_volatile_log = env("ZGRID_JOURNAL_VOLATILE_LOG") == "1";
  h.no_zap = env("ZGRID_TEST_NO_ZAP") == "1";
  h.verify_tables = env("ZGRID_TEST_VERIFY") == "1";
  if (std::string v = env("ZGRID_TEST_NODE_WINDOW_MS"); !v.empty())
    h.node_window_ms = std::max<Millis>(0, std::strtoll(v.c_str(), nullptr, 10));
  return h;
}

}  // namespace zgrid::head
