// zgrid-head: builds HeadOptions from flags, environment and config file, then runs.
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <tuple>

#include "common/cli.hpp"
#include "common/log.hpp"
#include "common/util.hpp"
#include "head/head.hpp"

namespace {
std::atomic<bool> g_stop{false};
}  // namespace

int main(int argc, char** argv) {
  zgrid::head::HeadOptions o;
  std::string log_level = "info", log_file;
  CLI::App app("zgrid-head: the broker of a zgrid grid", "zgrid-head");
  app.set_config("--config", "", "Read options from this INI/TOML file");
  app.add_option("--frontend", o.frontend, "Endpoint clients connect to")->capture_default_str();
  app.add_option("--backend", o.backend, "Endpoint nodes connect to")->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "Journal directory for durable sessions");
  app.add_option("--endpoints-file", o.endpoints_file,
                 "Write the bound endpoints here (for ephemeral ports, tcp://127.0.0.1:0)");
  zgrid::cli::add_duration(app, "--client-idle-timeout", &o.client_idle_timeout_ms,
                           "Remove an open client idle this long, with its requests");
  zgrid::cli::add_duration(app, "--session-idle-timeout", &o.session_idle_timeout_ms,
                           "Close an interactive session idle this long");
  zgrid::cli::add_duration(
      app, "--retention", &o.retention_ms,
      "Purge complete durable sessions after this long (0: keep until purged)");
  zgrid::cli::add_duration(app, "--task-timeout", &o.task_timeout_ms,
                           "A request running longer than this is treated as lost (0: no limit)");
  std::vector<std::string> service_timeouts;
  app.add_option("--service-timeout", service_timeouts,
                 "Task timeout of one service, NAME=DURATION (repeatable; a session's own wins)");
  zgrid::cli::add_duration(app, "--heartbeat", &o.heartbeat_ms, "Head <-> node heartbeat interval");
  app.add_option("--heartbeat-misses", o.heartbeat_misses,
                 "A node is dead after this many silent intervals")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--max-retries", o.max_retries, "Lost runs allowed before retry_limit_exceeded")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--queue-hwm", o.queue_hwm,
                 "Per session: hold acknowledgements above this many queued")
      ->capture_default_str()
      ->check(CLI::Range(1ULL, 1ULL << 40));
  app.add_option("--response-window", o.response_window,
                 "Responses sent to one client and not yet acknowledged by it")
      ->capture_default_str()
      ->check(CLI::Range(1ULL, 1ULL << 32));
  app.add_option("--response-queue-max", o.response_queue_max,
                 "Responses queued for a session's clients before its dispatch pauses")
      ->capture_default_str()
      ->check(CLI::Range(1ULL, 1ULL << 32));
  app.add_option("--max-task-batch", o.max_task_batch, "Most tasks in one message to a node")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  std::string min_free = "64M";
  app.add_option("--min-free-space", min_free,
                 "Refuse new durable requests below this much free space in the data directory")
      ->capture_default_str();
  std::string reserve = "32M";
  app.add_option("--disk-reserve", reserve,
                 "Space kept preallocated in the data directory, released to purge or to start "
                 "on a full disk (0: none)")
      ->capture_default_str();
  zgrid::cli::add_duration(app, "--handshake-timeout", &o.handshake_timeout_ms,
                           "Drop connections that have not completed their handshake by then");
  std::vector<std::string> purge_offline;
  app.add_option("--purge-session", purge_offline,
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
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  app.add_option("--log-file", log_file, "Log to this file (reopened on SIGHUP) instead of stderr");
  if (int rc = zgrid::cli::parse(app, argc, argv); rc >= 0) return rc;

  for (auto [flag, text, out] :
       {std::tuple{"--min-free-space", &min_free, &o.min_free_bytes},
        std::tuple{"--disk-reserve", &reserve, &o.disk_reserve_bytes},
        std::tuple{"--max-journal-bytes-per-key", &max_journal, &o.max_journal_bytes_per_key}}) {
    auto v = zgrid::parse_size(*text);
    if (!v.ok()) {
      std::cerr << "zgrid-head: error: " << flag << ": " << v.status().message() << "\n";
      return 2;
    }
    *out = *v;
  }
  for (const auto& st : service_timeouts) {
    auto eq = st.find('=');
    auto d = eq == std::string::npos
                 ? zgrid::Result<zgrid::Millis>(zgrid::Status::InvalidArgument("missing ="))
                 : zgrid::parse_duration(st.substr(eq + 1));
    if (eq == 0 || !d.ok()) {
      std::cerr << "zgrid-head: error: --service-timeout: expected NAME=DURATION, got '" << st
                << "'\n";
      return 2;
    }
    o.service_task_timeout_ms[st.substr(0, eq)] = *d;
  }
  if (int rc = zgrid::cli::setup_daemon("zgrid-head", log_level, log_file, &g_stop); rc >= 0)
    return rc;
  if (!purge_offline.empty()) {
    if (o.data_dir.empty()) {
      std::cerr << "zgrid-head: error: --purge-session needs --data-dir\n";
      return 2;
    }
    for (const auto& sid : purge_offline) {
      zgrid::Status st = zgrid::head::purge_offline(o.data_dir, sid);
      if (!st.ok()) {
        std::cerr << "zgrid-head: error: " << st.message() << "\n";
        return 2;
      }
      std::cerr << "zgrid-head: session " << sid << " purged from " << o.data_dir << "\n";
    }
    return 0;
  }
  // Test hooks (never set in production): fault injection by the test suite.
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  o.hooks.crash_point = env("ZGRID_CRASH_POINT");
  o.hooks.journal_fault_file = env("ZGRID_JOURNAL_FAULT_FILE");
  o.hooks.journal_fault_after = env("ZGRID_JOURNAL_FAULT_MODE") == "after";
  o.hooks.journal_read_fault_file = env("ZGRID_JOURNAL_READ_FAULT_FILE");
  o.hooks.no_zap = env("ZGRID_TEST_NO_ZAP") == "1";

  zgrid::Status st = zgrid::head::run_head(o, g_stop);
  if (!st.ok()) {
    std::cerr << "zgrid-head: error: " << st.message() << "\n";
    return 2;
  }
  return 0;
}
