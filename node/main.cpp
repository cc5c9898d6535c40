// zgrid-node: builds NodeOptions from flags, environment and config file, then runs.
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include "common/cli.hpp"
#include "common/curve.hpp"
#include "common/log.hpp"
#include "node/node.hpp"
#include "node/sim_nodes.hpp"
#include "services/registration.hpp"

namespace {
std::atomic<bool> g_stop{false};
}  // namespace

int main(int argc, char** argv) {
  zgrid::node::NodeOptions o;
  std::string log_level = "info", log_file, log_format = "text";
  CLI::App app("zgrid-node: a compute node of a zgrid grid", "zgrid-node");
  app.set_config("--config", "", "Read options from this INI/TOML file");
  app.add_option("--head", o.head, "The head's backend endpoint")->capture_default_str();
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
  std::vector<std::string> service_libs;
  std::string services_dir;
  app.add_option("--service-lib", service_libs,
                 "Load a service plug-in (shared library; repeatable; docs/services.md)");
  app.add_option("--services-dir", services_dir,
                 "Read service registration files (*.toml, *.conf) from this directory");
  app.add_option("--node-id", o.node_id, "Name of this node (default: host-pid-random)");
  zgrid::cli::add_duration(app, "--heartbeat", &o.heartbeat_ms,
                           "Heartbeat interval until the head sends its own");
  std::string head_key_file, key_file;
  app.add_option("--head-key", head_key_file, "The head's public key file: talk CURVE");
  app.add_option("--key", key_file, "This node's secret key file (zgrid keygen)");
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  app.add_option("--log-format", log_format, "text, or json (one object per line)")
      ->capture_default_str();
  app.add_option("--log-file", log_file, "Log to this file (reopened on SIGHUP) instead of stderr");
  int simulate = 0;
  zgrid::Millis simulate_hold = 0;
  app.add_option(
         "--simulate", simulate,
         "Test mode: N simulated nodes (echo, answered at once) on N connections, for scale tests")
      ->check(CLI::Range(0, 100000));
  zgrid::cli::add_duration(
      app, "--simulate-hold", &simulate_hold,
      "Test mode: simulated nodes answer each task message this long after it came");
  if (int rc = zgrid::cli::parse(app, argc, argv, "ZGRID_NODE_"); rc >= 0) return rc;

  if (!head_key_file.empty() || !key_file.empty()) {
    if (head_key_file.empty() || key_file.empty()) {
      std::cerr << "zgrid-node: error: CURVE needs both --head-key and --key\n";
      return 2;
    }
    auto hk = zgrid::curve::read_public(head_key_file);
    auto kp = hk.ok() ? zgrid::curve::read_secret(key_file)
                      : zgrid::Result<zgrid::curve::KeyPair>(hk.status());
    if (!kp.ok()) {
      std::cerr << "zgrid-node: error: " << kp.status().message() << "\n";
      return 2;
    }
    o.head_key = *hk;
    o.public_key = kp->public_z85;
    o.secret_key = kp->secret_z85;
  }
  if (int rc = zgrid::cli::setup_daemon("zgrid-node", log_level, log_file, &g_stop, log_format);
      rc >= 0)
    return rc;

  if (simulate > 0) {
    zgrid::node::SimNodes sim(
        o.head, simulate, o.prefetch > 0 ? o.prefetch : 64, static_cast<int>(o.heartbeat_ms),
        o.node_id.empty() ? "sim" : o.node_id, static_cast<int>(simulate_hold));
    sim.start();
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    sim.stop();
    // The scale benchmarks read how the work travelled.
    std::cerr << "zgrid-node: simulated " << simulate << " nodes: tasks=" << sim.tasks_done()
              << " messages=" << sim.task_messages() << "\n";
    return 0;
  }
  zgrid::svc::Registry registry;
  zgrid::svc::register_builtins(registry);
  zgrid::Status reg;
  if (!services_dir.empty()) reg = zgrid::svc::register_dir(services_dir, registry);
  for (const auto& lib : service_libs)
    if (reg.ok()) reg = zgrid::svc::register_library(lib, registry);
  if (!reg.ok()) {
    std::cerr << "zgrid-node: error: " << reg.message() << "\n";
    return 2;
  }
  try {
    zgrid::Status st = zgrid::node::run_node(o, registry, g_stop);
    if (!st.ok()) {
      std::cerr << "zgrid-node: error: " << st.message() << "\n";
      return 2;
    }
  } catch (const std::exception& e) {
    std::cerr << "zgrid-node: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
