#include "node/options.hpp"

#include <cstdlib>
#include <iostream>
#include <string_view>

#include "common/cli.hpp"
#include "common/curve.hpp"
#include "common/protocol.hpp"
#include "common/util.hpp"

namespace zgrid::node {

namespace {

using cli::in_range;

// "transport://address" with a transport ZeroMQ's DEALER can connect over.
bool plausible_endpoint(const std::string& ep) {
  std::size_t sep = ep.find("://");
  if (sep == std::string::npos || sep + 3 >= ep.size()) return false;
  std::string_view transport(ep.data(), sep);
  return transport == "tcp" || transport == "ipc" || transport == "inproc" || transport == "ws" ||
         transport == "wss";
}

}  // namespace

Status Validate(const NodeOptions& o) {
  std::vector<std::string> heads = split_endpoints(o.head);
  if (heads.empty()) return Status::InvalidArgument("--head names no endpoint");
  if (heads.size() > NodeOptions::kMaxHeads)
    return Status::InvalidArgument("--head lists " + std::to_string(heads.size()) +
                                   " endpoints (at most " + std::to_string(NodeOptions::kMaxHeads) +
                                   ")");
  for (const auto& ep : heads)
    if (!plausible_endpoint(ep) || ep.size() > proto::kMaxEndpointLength)
      return Status::InvalidArgument("--head: '" + ep +
                                     "' is not an endpoint (tcp://host:port or ipc://path)");
  ZG_RETURN_IF_ERROR(in_range<int>("--workers", o.workers, 0, 4096));
  ZG_RETURN_IF_ERROR(in_range<int>("--prefetch", o.prefetch, 0, 100'000));
  if (!o.node_id.empty() && !valid_name(o.node_id))
    return Status::InvalidArgument("--node-id must be 1..64 printable characters");
  ZG_RETURN_IF_ERROR(in_range<Millis>("--heartbeat", o.heartbeat_ms, 1,
                                      static_cast<Millis>(proto::kMaxHeartbeatMs)));
  ZG_RETURN_IF_ERROR(in_range<int>("heartbeat misses", o.heartbeat_misses, 1,
                                   static_cast<int>(proto::kMaxHeartbeatMisses)));
  ZG_RETURN_IF_ERROR(in_range<Millis>("reconnect backoff", o.reconnect_max_ms, 1, 3'600'000));
  bool any_key = !o.head_key.empty() || !o.public_key.empty() || !o.secret_key.empty();
  bool all_keys = !o.head_key.empty() && !o.public_key.empty() && !o.secret_key.empty();
  if (any_key && !all_keys) return Status::InvalidArgument("CURVE needs both --head-key and --key");
  return Status::OK();
}

int ParseFlags(int argc, const char* const* argv, NodeCommand* out, const std::string& env_prefix) {
  NodeOptions& o = out->options;
  CLI::App app("zgrid-node: a compute node of a zgrid grid", "zgrid-node");
  app.set_config("--config", "", "Read options from this INI/TOML file");
  std::vector<std::string> heads;  // --head a --head b, a list in the config file
  app.add_option("--head", heads,
                 "The head's backend endpoint, or a failover pair's backends separated by commas "
                 "(registers with the active one and follows a takeover)")
      ->default_str(o.head)
      ->allow_extra_args(false);
  app.add_option("--workers", o.workers, "Worker threads (0: one per core)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  app.add_option("--prefetch", o.prefetch,
                 "Tasks per worker the head may send ahead (0: adapt to the measured task time)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--services", o.services,
                 "Services to offer: name or name@version (default: every one it has)")
      ->delimiter(',');
  app.add_option("--service-lib", out->service_libs,
                 "Load a service plug-in (shared library; repeatable; docs/services.md)");
  app.add_option("--services-dir", out->services_dir,
                 "Read service registration files (*.toml, *.conf) from this directory");
  app.add_option("--python", out->python,
                 "Offer the service `python` (any Python function, zgrid.Executor): its worker "
                 "processes run this Python (a path, or a name on PATH), which needs cloudpickle");
  app.add_option("--python-workers", out->python_workers,
                 "Python worker processes of the service `python` (0: one per worker thread)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  app.add_option("--node-id", o.node_id, "Name of this node (default: host-pid-random)");
  cli::add_duration(app, "--heartbeat", &o.heartbeat_ms,
                    "Heartbeat interval until the head sends its own");
  std::string head_key_file, key_file;
  app.add_option("--head-key", head_key_file, "The head's public key file: talk CURVE");
  app.add_option("--key", key_file, "This node's secret key file (zgrid keygen)");
  app.add_option("--log-level", out->log_level, "debug, info, warn or error")
      ->capture_default_str();
  app.add_option("--log-format", out->log_format, "text, or json (one object per line)")
      ->capture_default_str();
  app.add_option("--log-file", out->log_file,
                 "Log to this file (reopened on SIGHUP) instead of stderr");
  app.add_option(
         "--simulate", out->simulate,
         "Test mode: N simulated nodes (echo, answered at once) on N connections, for scale tests "
         "(with the first --head only)")
      ->check(CLI::Range(0, 100000));
  cli::add_duration(app, "--simulate-hold", &out->simulate_hold_ms,
                    "Test mode: simulated nodes answer each task message this long after it came");
  if (int rc = cli::parse(app, argc, argv, env_prefix); rc >= 0) return rc;
  if (!heads.empty()) {
    o.head.clear();
    for (const auto& h : heads) o.head += (o.head.empty() ? "" : ",") + h;
  }

  auto fail = [](const std::string& line) {
    std::cerr << "zgrid-node: error: " << line << "\n";
    return 2;
  };
  if (!head_key_file.empty() || !key_file.empty()) {
    if (head_key_file.empty() || key_file.empty())
      return fail("CURVE needs both --head-key and --key");
    auto hk = curve::read_public(head_key_file);
    auto kp = hk.ok() ? curve::read_secret(key_file) : Result<curve::KeyPair>(hk.status());
    if (!kp.ok()) return fail(kp.status().message());
    o.head_key = *hk;
    o.public_key = kp->public_z85;
    o.secret_key = kp->secret_z85;
  }
  if (Status st = Validate(o); !st.ok()) return fail(st.message());
  if (out->python_workers > 0 && out->python.empty())
    return fail("--python-workers needs --python (the Python that runs them)");
  return -1;
}

NodeTestHooks TestHooksFromEnvironment() {
  NodeTestHooks h;
  const char* faulty = std::getenv("ZGRID_NODE_TEST_FAULTY");
  h.faulty = faulty != nullptr && std::string_view(faulty) == "1";
  return h;
}

}  // namespace zgrid::node
