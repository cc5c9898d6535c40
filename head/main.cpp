// zgrid-head: builds HeadOptions from flags, environment and config file
// (head/options.hpp), then runs the head or an offline purge.
#include <csignal>
#include <iostream>

#include "common/daemon.hpp"
#include "head/head.hpp"
#include "head/options.hpp"

namespace {
std::atomic<bool> g_stop{false};
}  // namespace

int main(int argc, char** argv) {
  zgrid::head::HeadCommand cmd;
  if (int rc = zgrid::head::ParseFlags(argc, argv, &cmd); rc >= 0) return rc;
  if (int rc = zgrid::cli::setup_daemon("zgrid-head", cmd.log_level, cmd.log_file, &g_stop,
                                        cmd.log_format);
      rc >= 0)
    return rc;
  const zgrid::head::HeadOptions& o = cmd.options;
  if (!cmd.purge_sessions.empty()) {
    for (const auto& sid : cmd.purge_sessions) {
      zgrid::Status st = zgrid::head::purge_offline(o, sid);
      if (!st.ok()) {
        std::cerr << "zgrid-head: error: " << st.message() << "\n";
        return 2;
      }
      std::cerr << "zgrid-head: session " << sid << " purged from " << o.data_dir << "\n";
    }
    return 0;
  }
  cmd.options.hooks = zgrid::head::TestHooksFromEnvironment();
  zgrid::Status st = zgrid::head::run_head(cmd.options, g_stop);
  if (!st.ok()) {
    std::cerr << "zgrid-head: error: " << st.message() << "\n";
    return 2;
  }
  return 0;
}
