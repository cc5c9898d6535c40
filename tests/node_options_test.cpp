// node/options: one Validate for every range, and ParseFlags' precedence,
// CURVE key files and errors, in-process.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>

#include "common/curve.hpp"
#include "node/node.hpp"
#include "node/options.hpp"
#include "support/grid_process.hpp"

namespace zgrid::node {
namespace {

int Parse(std::vector<std::string> args, NodeCommand* cmd, const std::string& env = "") {
  args.insert(args.begin(), "zgrid-node");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return ParseFlags(static_cast<int>(argv.size()), argv.data(), cmd, env);
}

// Parses expecting a usage error: exit 2 and one line on stderr, returned.
std::string ParseError(const std::vector<std::string>& args) {
  NodeCommand cmd;
  ::testing::internal::CaptureStderr();
  int rc = Parse(args, &cmd);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 2) << args[0];
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(err.rfind("zgrid-node: error: ", 0), 0u) << err;
  return err;
}

TEST(NodeOptions, DefaultsAreValidAndDocumented) {
  NodeOptions o;
  EXPECT_TRUE(Validate(o).ok());
  // docs/operations.md, "zgrid-node".
  EXPECT_EQ(o.head, "tcp://127.0.0.1:5556");
  EXPECT_EQ(o.workers, 0);
  EXPECT_EQ(o.prefetch, 0);
  EXPECT_EQ(o.heartbeat_ms, 1000);
  EXPECT_TRUE(o.services.empty());
  EXPECT_TRUE(o.node_id.empty());
  EXPECT_FALSE(o.hooks.faulty);
}

TEST(NodeOptions, EachRangeHoldsAtItsBoundsAndNamesTheFlagPastThem) {
  struct Case {
    const char* flag;
    std::function<void(NodeOptions&, std::int64_t)> set;
    std::int64_t lo, hi;
  };
  const std::vector<Case> cases{
      {"--workers", [](NodeOptions& o, std::int64_t v) { o.workers = static_cast<int>(v); }, 0,
       4096},
      {"--prefetch", [](NodeOptions& o, std::int64_t v) { o.prefetch = static_cast<int>(v); }, 0,
       100'000},
      {"--heartbeat", [](NodeOptions& o, std::int64_t v) { o.heartbeat_ms = v; }, 1, 3'600'000},
      {"heartbeat misses",
       [](NodeOptions& o, std::int64_t v) { o.heartbeat_misses = static_cast<int>(v); }, 1, 1000},
      {"reconnect backoff", [](NodeOptions& o, std::int64_t v) { o.reconnect_max_ms = v; }, 1,
       3'600'000},
  };
  for (const auto& c : cases) {
    for (std::int64_t ok : {c.lo, c.hi}) {
      NodeOptions o;
      c.set(o, ok);
      EXPECT_TRUE(Validate(o).ok()) << c.flag << " " << ok << ": " << Validate(o).message();
    }
    for (std::int64_t bad : {c.lo - 1, c.hi + 1}) {
      NodeOptions o;
      c.set(o, bad);
      Status st = Validate(o);
      EXPECT_EQ(st.code(), Code::kInvalidArgument) << c.flag << " " << bad;
      EXPECT_NE(st.message().find(c.flag), std::string::npos) << st.message();
    }
  }
  NodeOptions o;
  o.node_id = std::string(65, 'n');
  EXPECT_EQ(Validate(o).message(), "--node-id must be 1..64 printable characters");
  o.node_id = std::string(64, 'n');
  EXPECT_TRUE(Validate(o).ok());
  o.node_id = "tab\there";
  EXPECT_EQ(Validate(o).code(), Code::kInvalidArgument);
  // CURVE takes the head's key and this node's pair together.
  NodeOptions c;
  c.head_key = "h";
  EXPECT_EQ(Validate(c).message(), "CURVE needs both --head-key and --key");
  c.public_key = "p";
  c.secret_key = "s";
  EXPECT_TRUE(Validate(c).ok());
}

// run_node called directly is held to the same rules, before it makes
// anything (no service host, no socket).
TEST(NodeOptions, RunNodeRefusesWhatValidateRefuses) {
  NodeOptions o;
  o.head = "tcp://127.0.0.1:1";
  o.prefetch = -1;
  svc::Registry registry;
  std::atomic<bool> stop{true};
  Status st = run_node(o, registry, stop);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("--prefetch"), std::string::npos) << st.message();
}

TEST(NodeOptions, FlagBeatsEnvironmentBeatsConfigBeatsDefault) {
  testing::TempDir d;
  std::string conf = d.file("node.ini");
  std::ofstream(conf) << "heartbeat = 5s\nworkers = 7\nprefetch = 11\n"
                         "service-lib = [\"a.so\", \"b.so\"]\n";
  ::setenv("ZGTESTNODE_HEARTBEAT", "3s", 1);
  ::setenv("ZGTESTNODE_WORKERS", "8", 1);
  NodeCommand cmd;
  int rc = Parse({"--config", conf, "--workers", "9"}, &cmd, "ZGTESTNODE_");
  ::unsetenv("ZGTESTNODE_HEARTBEAT");
  ::unsetenv("ZGTESTNODE_WORKERS");
  ASSERT_EQ(rc, -1);
  EXPECT_EQ(cmd.options.workers, 9);           // flag
  EXPECT_EQ(cmd.options.heartbeat_ms, 3'000);  // environment over config
  EXPECT_EQ(cmd.options.prefetch, 11);         // config
  EXPECT_EQ(cmd.service_libs, (std::vector<std::string>{"a.so", "b.so"}));
  EXPECT_EQ(cmd.options.head, NodeOptions{}.head);  // default
}

// --python (issue 30): flag, ZGRID_NODE_PYTHON, config key `python`; the
// Python itself is checked by main (services/python_functions.hpp).
TEST(NodeOptions, PythonComesFromFlagEnvironmentOrConfig) {
  testing::TempDir d;
  std::string conf = d.file("node.ini");
  std::ofstream(conf) << "python = /opt/conda/bin/python\npython-workers = 3\n";
  NodeCommand from_conf;
  ASSERT_EQ(Parse({"--config", conf}, &from_conf), -1);
  EXPECT_EQ(from_conf.python, "/opt/conda/bin/python");
  EXPECT_EQ(from_conf.python_workers, 3);
  ::setenv("ZGTESTNODE_PYTHON", "python3.11", 1);
  NodeCommand from_env;
  int rc = Parse({"--config", conf}, &from_env, "ZGTESTNODE_");
  ::unsetenv("ZGTESTNODE_PYTHON");
  ASSERT_EQ(rc, -1);
  EXPECT_EQ(from_env.python, "python3.11");
  NodeCommand from_flag;
  ASSERT_EQ(Parse({"--config", conf, "--python", "/usr/bin/python3"}, &from_flag), -1);
  EXPECT_EQ(from_flag.python, "/usr/bin/python3");
  NodeCommand none;
  ASSERT_EQ(Parse({}, &none), -1);
  EXPECT_TRUE(none.python.empty());
  EXPECT_EQ(none.python_workers, 0);
}

// zgrid-node takes ZGRID_NODE_* (never the CLI's ZGRID_HEAD, a frontend).
TEST(NodeOptions, EnvironmentPrefixIsZgridNode) {
  ::setenv("ZGRID_NODE_HEAD", "tcp://10.0.0.1:5556", 1);
  ::setenv("ZGRID_HEAD", "tcp://10.0.0.1:5555", 1);
  NodeCommand cmd;
  const char* argv[] = {"zgrid-node"};
  int rc = ParseFlags(1, argv, &cmd);
  ::unsetenv("ZGRID_NODE_HEAD");
  ::unsetenv("ZGRID_HEAD");
  ASSERT_EQ(rc, -1);
  EXPECT_EQ(cmd.options.head, "tcp://10.0.0.1:5556");
}

// Failover: --head (flag, ZGRID_NODE_HEAD, config) takes a list of
// backends; each is checked, and one endpoint is still a list of one.
TEST(NodeOptions, HeadTakesAListOfBackendsEachChecked) {
  NodeOptions o;
  o.head = "tcp://10.0.0.1:5556, tcp://10.0.0.2:5556";
  EXPECT_TRUE(Validate(o).ok()) << Validate(o).message();
  o.head = "ipc:///run/zgrid/backend";
  EXPECT_TRUE(Validate(o).ok());
  for (const char* bad : {"", " , ", "10.0.0.1:5556", "tcp://a:1,b:2", "udp://a:1", "tcp://"}) {
    o.head = bad;
    Status st = Validate(o);
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("--head"), std::string::npos) << st.message();
  }
  o.head.clear();
  for (int i = 0; i <= 16; ++i) o.head += "tcp://10.0.0." + std::to_string(i) + ":5556,";
  EXPECT_NE(Validate(o).message().find("at most 16"), std::string::npos) << Validate(o).message();

  NodeCommand cmd;
  ASSERT_EQ(Parse({"--head", "tcp://a:5556,tcp://b:5556"}, &cmd), -1);
  EXPECT_EQ(cmd.options.head, "tcp://a:5556,tcp://b:5556");
  NodeCommand twice;
  ASSERT_EQ(Parse({"--head", "tcp://a:5556", "--head", "tcp://b:5556"}, &twice), -1);
  EXPECT_EQ(twice.options.head, "tcp://a:5556,tcp://b:5556");
  testing::TempDir d;
  std::ofstream(d.file("node.ini")) << "head = \"tcp://c:5556,tcp://d:5556\"\n";
  NodeCommand from_config;
  ASSERT_EQ(Parse({"--config", d.file("node.ini")}, &from_config), -1);
  EXPECT_EQ(from_config.options.head, "tcp://c:5556,tcp://d:5556");
  std::ofstream(d.file("node.toml")) << "head = [\"tcp://e:5556\", \"tcp://f:5556\"]\n";
  NodeCommand from_list;
  ASSERT_EQ(Parse({"--config", d.file("node.toml")}, &from_list), -1);
  EXPECT_EQ(from_list.options.head, "tcp://e:5556,tcp://f:5556");
  EXPECT_NE(ParseError({"--head", "tcp://a:5556,b:5556"}).find("'b:5556' is not an endpoint"),
            std::string::npos);
}

TEST(NodeOptions, ListsDurationsAndTestModeAreParsed) {
  NodeCommand cmd;
  ASSERT_EQ(Parse({"--services",      "echo,factorize@1",
                   "--service-lib",   "x.so",
                   "--service-lib",   "y.so",
                   "--services-dir",  "/etc/zgrid/services.d",
                   "--node-id",       "n1",
                   "--heartbeat",     "250ms",
                   "--simulate",      "3",
                   "--simulate-hold", "2s",
                   "--log-level",     "debug",
                   "--log-format",    "json",
                   "--log-file",      "/tmp/n.log"},
                  &cmd),
            -1);
  EXPECT_EQ(cmd.options.services, (std::vector<std::string>{"echo", "factorize@1"}));
  EXPECT_EQ(cmd.service_libs, (std::vector<std::string>{"x.so", "y.so"}));
  EXPECT_EQ(cmd.services_dir, "/etc/zgrid/services.d");
  EXPECT_EQ(cmd.options.node_id, "n1");
  EXPECT_EQ(cmd.options.heartbeat_ms, 250);
  EXPECT_EQ(cmd.simulate, 3);
  EXPECT_EQ(cmd.simulate_hold_ms, 2000);
  EXPECT_EQ(cmd.log_level, "debug");
  EXPECT_EQ(cmd.log_format, "json");
  EXPECT_EQ(cmd.log_file, "/tmp/n.log");
  EXPECT_TRUE(cmd.options.head_key.empty());  // no keys: plain
}

TEST(NodeOptions, CurveKeyFilesAreRead) {
  testing::TempDir d;
  auto head = curve::generate();
  auto node = curve::generate();
  ASSERT_TRUE(head.ok() && node.ok());
  ASSERT_TRUE(curve::write_pair(d.path(), "head", *head, false).ok());
  ASSERT_TRUE(curve::write_pair(d.path(), "node", *node, false).ok());
  NodeCommand cmd;
  ASSERT_EQ(Parse({"--head-key", d.file("head.pub"), "--key", d.file("node.key")}, &cmd), -1);
  EXPECT_EQ(cmd.options.head_key, head->public_z85);
  EXPECT_EQ(cmd.options.public_key, node->public_z85);
  EXPECT_EQ(cmd.options.secret_key, node->secret_z85);

  EXPECT_NE(ParseError({"--head-key", d.file("head.pub")}).find("CURVE needs both"),
            std::string::npos);
  EXPECT_NE(ParseError({"--head-key", d.file("missing.pub"), "--key", d.file("node.key")})
                .find("missing.pub"),
            std::string::npos);
}

TEST(NodeOptions, BadValuesExitTwo) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"--workers", "5000"},
                                                                {"--workers", "many"},
                                                                {"--prefetch", "-1"},
                                                                {"--heartbeat", "soon"},
                                                                {"--heartbeat", "0"},
                                                                {"--node-id", std::string(65, 'n')},
                                                                {"--simulate", "100001"},
                                                                {"--key", "/nonexistent"},
                                                                {"--python-workers", "4097"},
                                                                {"--python-workers", "2"},
                                                                {"--no-such-flag"}})
    ParseError(args);
  NodeCommand cmd;
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(Parse({"--help"}, &cmd), 0);
  std::string help = ::testing::internal::GetCapturedStdout();
  for (const char* flag :
       {"--head", "--workers", "--prefetch", "--services", "--service-lib", "--services-dir",
        "--node-id", "--heartbeat", "--head-key", "--key", "--log-level", "--log-format",
        "--log-file", "--simulate", "--simulate-hold", "--config", "--python", "--python-workers"})
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
}

TEST(NodeOptions, TestHooksComeFromTheEnvironmentOnly) {
  EXPECT_FALSE(TestHooksFromEnvironment().faulty);
  ::setenv("ZGRID_NODE_TEST_FAULTY", "1", 1);
  EXPECT_TRUE(TestHooksFromEnvironment().faulty);
  NodeCommand cmd;
  const char* argv[] = {"zgrid-node"};
  EXPECT_EQ(ParseFlags(1, argv, &cmd), -1);  // not an option: ParseFlags ignores it
  EXPECT_FALSE(cmd.options.hooks.faulty);
  ::unsetenv("ZGRID_NODE_TEST_FAULTY");
}

}  // namespace
}  // namespace zgrid::node
