// zgrid-node: builds NodeOptions from flags, environment and config file
// (node/options.hpp), then runs the node, or simulated nodes (--simulate).
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include "common/daemon.hpp"
#include "common/util.hpp"
#include "node/node.hpp"
#include "node/options.hpp"
#include "node/sim_nodes.hpp"
#include "services/python_functions.hpp"
#include "services/registration.hpp"

namespace {
std::atomic<bool> g_stop{false};
}  // namespace

int main(int argc, char** argv) {
  zgrid::node::NodeCommand cmd;
  if (int rc = zgrid::node::ParseFlags(argc, argv, &cmd); rc >= 0) return rc;
  if (int rc = zgrid::cli::setup_daemon("zgrid-node", cmd.log_level, cmd.log_file, &g_stop,
                                        cmd.log_format);
      rc >= 0)
    return rc;
  zgrid::node::NodeOptions& o = cmd.options;

  if (cmd.simulate > 0) {
    // Simulated nodes talk to one head: the first of a list.
    zgrid::node::SimNodes sim(zgrid::split_endpoints(o.head).front(), cmd.simulate,
                              o.prefetch > 0 ? o.prefetch : 64, static_cast<int>(o.heartbeat_ms),
                              o.node_id.empty() ? "sim" : o.node_id,
                              static_cast<int>(cmd.simulate_hold_ms));
    sim.start();
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    sim.stop();
    // The scale benchmarks read how the work travelled.
    std::cerr << "zgrid-node: simulated " << cmd.simulate << " nodes: tasks=" << sim.tasks_done()
              << " messages=" << sim.task_messages() << " results=" << sim.results_messages()
              << "\n";
    return 0;
  }
  zgrid::svc::Registry registry;
  zgrid::svc::register_builtins(registry);
  zgrid::Status reg;
  if (!cmd.services_dir.empty()) reg = zgrid::svc::register_dir(cmd.services_dir, registry);
  for (const auto& lib : cmd.service_libs)
    if (reg.ok()) reg = zgrid::svc::register_library(lib, registry);
  if (reg.ok() && !cmd.python.empty()) {
    // Its workers name the node in their messages: the id is fixed here.
    if (o.node_id.empty()) o.node_id = zgrid::node::default_node_id();
    reg = zgrid::svc::register_python(cmd.python, cmd.python_workers, o.node_id, registry);
  }
  if (!reg.ok()) {
    std::cerr << "zgrid-node: error: " << reg.message() << "\n";
    return 2;
  }
  o.hooks = zgrid::node::TestHooksFromEnvironment();
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
