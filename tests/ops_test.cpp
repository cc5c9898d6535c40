// Running it: configuration precedence, status --watch on a terminal and on
// a pipe, and draining a busy node.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using testing::Grid;
using testing::run_cli;
using testing::wait_until;

// The heartbeat the head reports at start with the given flags and environment.
std::string EffectiveHeartbeat(const std::vector<std::string>& flags,
                               const std::vector<std::string>& env) {
  testing::TempDir d;
  std::vector<std::string> argv{ZGRID_HEAD_BIN, "--frontend",        "tcp://127.0.0.1:0",
                                "--backend",    "tcp://127.0.0.1:0", "--endpoints-file",
                                d.file("ep")};
  argv.insert(argv.end(), flags.begin(), flags.end());
  testing::Process head(argv, d.file("log"), env);
  EXPECT_TRUE(wait_until(
      [&] {
        return testing::read_file(d.file("log")).find("options: heartbeat=") != std::string::npos;
      },
      10'000))
      << testing::read_file(d.file("log"));
  std::string log = testing::read_file(d.file("log"));
  auto p = log.find("options: heartbeat=");
  if (p == std::string::npos) return "?";
  p += 19;
  return log.substr(p, log.find(' ', p) - p);
}

TEST(Ops, FlagBeatsEnvironmentBeatsConfigFileBeatsDefault) {
  testing::TempDir d;
  std::string conf = d.file("head.ini");
  std::ofstream(conf) << "# zgrid-head configuration\nheartbeat = 5s\n";
  EXPECT_EQ(EffectiveHeartbeat({}, {}), "1s");
  EXPECT_EQ(EffectiveHeartbeat({"--config", conf}, {}), "5s");
  EXPECT_EQ(EffectiveHeartbeat({"--config", conf}, {"ZGRID_HEARTBEAT=3s"}), "3s");
  EXPECT_EQ(EffectiveHeartbeat({"--config", conf, "--heartbeat", "2s"}, {"ZGRID_HEARTBEAT=3s"}),
            "2s");
  EXPECT_EQ(EffectiveHeartbeat({"--heartbeat", "1500ms"}, {}), "1500ms");
}

TEST(Ops, BadValuesAreRefusedWithOneLineNamingTheOption) {
  testing::TempDir d;
  std::string conf = d.file("bad.ini");
  std::ofstream(conf) << "max-retries = many\n";
  struct Case {
    std::vector<std::string> flags, env;
    std::string option;
  };
  for (const Case& c :
       std::vector<Case>{{{"--heartbeat", "soon"}, {}, "--heartbeat"},
                         {{"--max-retries", "-4"}, {}, "--max-retries"},
                         {{}, {"ZGRID_CLIENT_IDLE_TIMEOUT=5x"}, "--client-idle-timeout"},
                         {{"--config", conf}, {}, "max-retries"}}) {
    testing::TempDir t;
    std::vector<std::string> argv{ZGRID_HEAD_BIN};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    testing::Process head(argv, t.file("log"), c.env);
    EXPECT_EQ(head.wait(10'000), 2);
    std::string log = testing::read_file(t.file("log"));
    EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
    EXPECT_NE(log.find(c.option), std::string::npos) << log;
  }
}

TEST(Ops, StatusWatchOnAPipeAndOnATerminal) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto submit =
      run_cli({"--head", g.frontend(), "submit", "--service", "sleep", "--file", "-"}, "1\n");
  ASSERT_EQ(submit.code, 0);
  auto conn = g.connect();
  auto info = conn->create_session({"sleep", false, 0});
  ASSERT_TRUE(info.ok());
  auto bc = client::BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  for (int i = 0; i < 40; ++i) ASSERT_TRUE((*bc)->send("25", "x").ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  // A pipe: one plain line per look, ending when the session is complete.
  auto pipe = run_cli(
      {"--head", g.frontend(), "status", info->session_id, "--watch", "--interval", "100ms"});
  EXPECT_EQ(pipe.code, 0) << pipe.err;
  EXPECT_GE(std::count(pipe.out.begin(), pipe.out.end(), '\n'), 2) << pipe.out;
  EXPECT_NE(pipe.out.find("[####################] 100.0%  40/40"), std::string::npos) << pipe.out;
  EXPECT_EQ(pipe.out.find('\r'), std::string::npos);
  // A terminal (script(1) gives it a pseudo-terminal): redrawn in place.
  testing::TempDir d;
  std::string cmd = std::string("script -qec \"") + ZGRID_CLI_BIN + " --head " + g.frontend() +
                    " status " + info->session_id + " --watch --interval 100ms\" /dev/null > " +
                    d.file("tty") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::string tty = testing::read_file(d.file("tty"));
  EXPECT_NE(tty.find('\r'), std::string::npos) << tty;
  EXPECT_NE(tty.find("100.0%"), std::string::npos) << tty;
}

TEST(Ops, DrainingABusyNodeLosesNothing) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2", "--prefetch", "2", "--node-id", "a"});
  g.add_node({"--workers", "2", "--prefetch", "2", "--node-id", "b"});
  ASSERT_TRUE(g.wait_nodes(2));
  auto conn = g.connect();
  auto info = conn->create_session({"sleep", false, 0});
  ASSERT_TRUE(info.ok());
  auto bc = client::BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  for (int i = 0; i < 200; ++i) ASSERT_TRUE((*bc)->send("20", std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  ASSERT_TRUE(wait_until([&] { return conn->session_status(info->session_id)->u64("done") >= 10; },
                         10'000));
  auto d = run_cli({"--head", g.frontend(), "drain", "a", "--wait-timeout", "20s"});
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.out.find("node a drained"), std::string::npos) << d.out;
  std::uint64_t a_done = 0;
  for (const auto& n : *conn->nodes())
    if (n.str("node_id") == "a") {
      EXPECT_EQ(n.str("state"), "draining");
      EXPECT_EQ(n.u64("inflight"), 0u);
      a_done = n.u64("done");
    }
  // The operator takes it down: nothing fails, the session completes on b.
  g.node(0).signal(SIGTERM);
  std::size_t got = 0;
  proto::Response r;
  while (got < 200) {
    auto ok = (*bc)->next_response(&r, 20'000);
    ASSERT_TRUE(ok.ok() && *ok) << "stalled at " << got;
    ASSERT_TRUE(r.ok()) << r.fault_code;
    ++got;
  }
  EXPECT_LT(a_done, 200u);
  auto undo = run_cli({"--head", g.frontend(), "drain", "nope"});
  EXPECT_EQ(undo.code, 2);
  EXPECT_NE(undo.err.find("unknown node nope"), std::string::npos) << undo.err;
}

TEST(Ops, LogFileIsReopenedOnSighup) {
  Grid g;
  std::string log = g.dir().file("head-file.log");
  g.start_head({"--log-file", log});
  ASSERT_TRUE(wait_until(
      [&] { return testing::read_file(log).find("serving clients") != std::string::npos; }, 5000));
  ASSERT_EQ(std::rename(log.c_str(), (log + ".1").c_str()), 0);  // what logrotate does
  g.head().signal(SIGHUP);
  auto conn = g.connect();
  auto info = conn->create_session({"echo", false, 0});  // an event to log
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(wait_until(
      [&] { return testing::read_file(log).find(info->session_id) != std::string::npos; }, 5000))
      << "no new log file after SIGHUP";
  EXPECT_EQ(testing::read_file(log + ".1").find(info->session_id), std::string::npos);
}

TEST(Ops, SimulatedNodesAndTheGridStatus) {
  Grid g;
  g.start_head();
  g.add_node({"--simulate", "50"});
  ASSERT_TRUE(g.wait_nodes(50, 30'000));
  std::string in;
  for (int i = 0; i < 500; ++i) in += std::to_string(i) + "\n";
  auto r = run_cli({"--head", g.frontend(), "submit", "--service", "echo", "--file", "-"}, in);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 500);
  auto st = run_cli({"--head", g.frontend(), "status"});
  EXPECT_EQ(st.code, 0);
  EXPECT_NE(st.out.find("nodes:                 50"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("sim-49"), std::string::npos) << "the grid status lists its nodes";
}

}  // namespace
}  // namespace zgrid
