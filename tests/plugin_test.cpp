// Bring your own service (issue 8): shared-library plug-ins, the exec bridge,
// registration files, versions and operations, the client's input and output
// formats, and the examples, each through a real head and node.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>
#include <zgrid/client.hpp>
#include <zgrid/client_msgpack.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/service_spec.hpp"
#include "tests/support/grid_process.hpp"
#include "tests/support/run_session.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::Grid;
using testing::Process;
using testing::read_file;
using testing::run_cli;
using testing::RunSession;
using testing::TempDir;
using testing::wait_until;

const std::string kSource = ZGRID_SOURCE_DIR;

void Write(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

// A node that must refuse to start: its exit status and its output.
std::pair<int, std::string> RefusedNode(const std::vector<std::string>& extra) {
  TempDir dir;
  std::vector<std::string> argv{ZGRID_NODE_BIN, "--head", "tcp://127.0.0.1:1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Process p(argv, dir.file("node.log"));
  int code = p.wait(20'000);
  return {code, read_file(dir.file("node.log"))};
}

// "r17" (GCC 12 warns falsely about Tag("r", i)).
std::string Tag(const char* prefix, int i) {
  std::ostringstream o;
  o << prefix << i;
  return o.str();
}

std::size_t Lines(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  std::string l;
  std::size_t n = 0;
  while (std::getline(in, l)) n += l == line;
  return n;
}

// ---- service strings (unit) --------------------------------------------------------

TEST(ServiceSpec, ParsesMatchesAndComparesVersions) {
  auto s = spec::parse("montecarlo@1.2/pi");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->name, "montecarlo");
  EXPECT_EQ(s->version, "1.2");
  EXPECT_EQ(s->operation, "pi");
  EXPECT_TRUE(spec::matches(*s, "montecarlo@1.2"));
  EXPECT_FALSE(spec::matches(*s, "montecarlo@1.20"));
  auto bare = spec::parse("montecarlo");
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE(spec::matches(*bare, "montecarlo@7"));
  EXPECT_FALSE(spec::matches(*bare, "montecarl@7"));
  for (const char* badspec : {"", "@1", "a@", "a/", "a b", "a@1@2"})
    EXPECT_FALSE(spec::parse(badspec).ok()) << badspec;
  EXPECT_GT(spec::compare_versions("1.10", "1.9"), 0);
  EXPECT_EQ(spec::compare_versions("1.01", "1.1"), 0);
  EXPECT_LT(spec::compare_versions("2", "10"), 0);
  EXPECT_GT(spec::compare_versions("beta", "alpha"), 0);
}

// ---- plug-ins ----------------------------------------------------------------------

// Every instance's init runs at start and its shutdown at SIGTERM; the
// plug-in serves in between.
TEST(Plugin, LoadServeAndUnloadCallsShutdownForEveryInstance) {
  Grid g;
  g.start_head();
  std::string marker = g.dir().file("marker");
  std::string reg = g.dir().file("services.d");
  std::filesystem::create_directory(reg);
  Write(reg + "/testsvc.toml", std::string("library = \"") + ZGRID_TESTSVC_V1 +
                                   "\"\nconfig = \"marker=" + marker + "\"\nconcurrency = 2\n");
  std::size_t n = g.add_node({"--workers", "3", "--services-dir", reg});
  ASSERT_TRUE(g.wait_nodes(1)) << read_file(g.dir().file("node0.log"));
  EXPECT_EQ(Lines(read_file(marker), "init"), 2u);  // concurrency 2 of 3 workers
  auto got = RunSession(g, "testsvc", {"a", "b", "c"});
  EXPECT_EQ(got["0"].data, "v1:a");
  EXPECT_EQ(got["2"].data, "v1:c");
  g.node(n).signal(SIGTERM);
  EXPECT_EQ(g.node(n).wait(10'000), 0);
  EXPECT_EQ(Lines(read_file(marker), "shutdown"), 2u);
}

TEST(Plugin, AbiMismatchIsRefusedWithOneClearLine) {
  auto [code, log] = RefusedNode({"--service-lib", ZGRID_WRONG_ABI_PLUGIN});
  EXPECT_EQ(code, 2);
  EXPECT_NE(log.find(ZGRID_WRONG_ABI_PLUGIN), std::string::npos) << log;
  // The plug-in claims version 3; this node speaks 2 and still loads 1
  // (GarbageAnswersBecomePerRequestFaults serves a version 1 plug-in).
  EXPECT_NE(log.find("built for ABI version 3"), std::string::npos) << log;
  EXPECT_NE(log.find("speaks ABI version 2"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

TEST(Plugin, ThrowingRequestFaultsAloneAndTheNodeKeepsServing) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2", "--service-lib", ZGRID_TESTSVC_V1});
  ASSERT_TRUE(g.wait_nodes(1));
  std::vector<std::string> batch;
  for (int i = 0; i < 50; ++i) batch.push_back(i == 17 ? "throw" : Tag("r", i));
  auto got = RunSession(g, "testsvc/echo", batch);
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    const auto& r = got[std::to_string(i)];
    if (i == 17) {
      EXPECT_EQ(r.fault_code, "service_error");
      EXPECT_EQ(r.data, "requested exception");
    } else {
      EXPECT_TRUE(r.ok()) << r.fault_code << ": " << r.data;
      EXPECT_EQ(r.data, Tag("v1:r", i));
    }
  }
  // A throwing operation, then the node still answers.
  EXPECT_EQ(RunSession(g, "testsvc/throw", {"x"})["0"].fault_code, "service_error");
  EXPECT_EQ(RunSession(g, "testsvc", {"after"})["0"].data, "v1:after");
  EXPECT_TRUE(g.node(0).running());
}

TEST(Plugin, GarbageAnswersBecomePerRequestFaults) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1", "--service-lib", ZGRID_GARBAGE_PLUGIN});
  ASSERT_TRUE(g.wait_nodes(1));
  std::vector<std::string> bad{"badrc", "none", "huge", "badcode", "both", "lie"};
  std::vector<std::string> all = bad;
  all.push_back("fine");
  auto got = RunSession(g, "garbage", all);
  for (std::size_t i = 0; i < bad.size(); ++i) {
    EXPECT_EQ(got[std::to_string(i)].fault_code, "service_error") << bad[i];
    EXPECT_NE(got[std::to_string(i)].data.find("plug-in"), std::string::npos) << bad[i];
  }
  EXPECT_TRUE(got["6"].ok());
  EXPECT_EQ(got["6"].data, "fine");
  EXPECT_TRUE(g.node(0).running());
}

// ---- registration ------------------------------------------------------------------

TEST(Registration, BadFilesAndFailingInitAreRefusedNamingFileAndKey) {
  TempDir dir;
  struct Case {
    std::string text, expect;
  };
  std::string lib = std::string("library = \"") + ZGRID_TESTSVC_V1 + "\"\n";
  std::vector<Case> cases{
      {lib + "colour = \"blue\"\n", "colour"},
      {lib + "concurrency = \"lots\"\n", "concurrency"},
      {lib + "task_timeout = \"soon\"\n", "task_timeout"},
      {lib + "version = \"9\"\n", "version"},
      {lib + "program = \"/bin/true\"\n", "exactly one of library and program"},
      {"program = \"/bin/true\"\n", "name"},
      {"name = \"x\"\nprogram = \"nope.py\"\n", "program"},
      {"name = \"x\"\nprogram = \"/bin/cat\"\nenv = [\"NOEQUALS\"]\n", "env"},
      {"name = \"bad name\"\nprogram = \"/bin/cat\"\n", "name"},
      {lib + "config = \"fail\"\n", "told to fail by its config"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::string d = dir.file("d" + std::to_string(i));
    std::filesystem::create_directory(d);
    Write(d + "/svc.toml", cases[i].text);
    auto [code, log] = RefusedNode({"--services-dir", d});
    EXPECT_EQ(code, 2) << cases[i].text;
    EXPECT_NE(log.find(d + "/svc.toml"), std::string::npos) << log;
    EXPECT_NE(log.find(cases[i].expect), std::string::npos) << cases[i].expect << " in " << log;
    EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  }
  // The same name and version twice.
  auto [code, log] =
      RefusedNode({"--service-lib", ZGRID_TESTSVC_V1, "--service-lib", ZGRID_TESTSVC_V1});
  EXPECT_EQ(code, 2);
  EXPECT_NE(log.find("testsvc@1 is registered twice"), std::string::npos) << log;
}

// ---- versions and operations -------------------------------------------------------

TEST(Versions, SessionPicksItsVersionOrTheHighestAndNodesShowThem) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2", "--node-id", "both", "--service-lib", ZGRID_TESTSVC_V1,
              "--service-lib", ZGRID_TESTSVC_V2});
  ASSERT_TRUE(g.wait_nodes(1));
  // A bare name: the node runs its highest version.
  EXPECT_EQ(RunSession(g, "testsvc", {"x", "y"})["1"].data, "v2:y");
  g.add_node({"--workers", "1", "--node-id", "old", "--service-lib", ZGRID_TESTSVC_V1, "--services",
              "testsvc@1"});
  ASSERT_TRUE(g.wait_nodes(2));
  for (int round = 0; round < 3; ++round) {  // whichever node runs it
    auto v1 = RunSession(g, "testsvc@1", {"a", "b", "c", "d"});
    for (auto& [k, r] : v1) EXPECT_EQ(r.data.substr(0, 3), "v1:");
    auto v2 = RunSession(g, "testsvc@2", {"a", "b", "c", "d"});
    for (auto& [k, r] : v2) EXPECT_EQ(r.data.substr(0, 3), "v2:");
  }
  EXPECT_EQ(RunSession(g, "testsvc@1/version", {""})["0"].data, "1");
  auto bad_op = RunSession(g, "testsvc@2/nope", {"x"})["0"];
  EXPECT_EQ(bad_op.fault_code, "invalid_argument");
  EXPECT_NE(bad_op.data.find("echo, throw, version"), std::string::npos) << bad_op.data;

  auto nodes = run_cli({"--head", g.frontend(), "nodes"});
  ASSERT_EQ(nodes.code, 0) << nodes.err;
  EXPECT_NE(nodes.out.find("testsvc@1,testsvc@2"), std::string::npos) << nodes.out;
  EXPECT_NE(nodes.out.find("echo@1"), std::string::npos) << nodes.out;
  auto json = run_cli({"--head", g.frontend(), "nodes", "--json"});
  ASSERT_EQ(json.code, 0);
  std::istringstream in(json.out);
  std::string line;
  std::map<std::string, std::string> svcs;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    svcs[j["node_id"]] = j["services"];
  }
  EXPECT_EQ(svcs["old"], "testsvc@1");
  // A malformed service string is refused at session creation.
  auto conn = g.connect();
  EXPECT_EQ(conn->create_session({"testsvc@", false, 0}).status().code(), Code::kInvalidArgument);
}

// ---- the exec bridge ---------------------------------------------------------------

// A registration of tests/exec/test_worker.py in `dir`.
std::string ExecRegistration(const std::string& dir, const std::string& extra) {
  std::string reg = dir + "/services.d";
  std::filesystem::create_directories(reg);
  Write(reg + "/crashy.toml", "name = \"crashy\"\nversion = \"3\"\nprogram = \"" + kSource +
                                  "/tests/exec/test_worker.py\"\nenv = [\"PYTHONPATH=" + kSource +
                                  "/python\", \"ZGRID_TEST_ENV=from-registration\"]\n" + extra);
  return reg;
}

TEST(ExecBridge, AnswersCarriesEnvAndFaultsGarbage) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2", "--services-dir", ExecRegistration(g.dir().path(), "")});
  ASSERT_TRUE(g.wait_nodes(1)) << read_file(g.dir().file("node0.log"));
  std::vector<std::string> many;
  for (int i = 0; i < 200; ++i) many.push_back(Tag("m", i));
  auto got = RunSession(g, "crashy@3/echo", many);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(got[std::to_string(i)].data, Tag("m", i));
  EXPECT_EQ(RunSession(g, "crashy/env", {""})["0"].data, "from-registration");
  auto garbage = RunSession(g, "crashy/garbage", {""})["0"];
  EXPECT_EQ(garbage.fault_code, "service_error");
  EXPECT_NE(garbage.data.find("malformed"), std::string::npos) << garbage.data;
  EXPECT_EQ(RunSession(g, "crashy/echo", {"still"})["0"].data, "still");
}

// concurrency = 2 on a node of 3 workers: two worker processes, never more,
// both used while requests wait.
TEST(ExecBridge, ConcurrencyBoundsTheWorkerProcesses) {
  Grid g;
  g.start_head();
  g.add_node(
      {"--workers", "3", "--services-dir", ExecRegistration(g.dir().path(), "concurrency = 2\n")});
  ASSERT_TRUE(g.wait_nodes(1));
  auto got = RunSession(g, "crashy/slow_pid", std::vector<std::string>(12, ""));
  std::set<std::string> pids;
  for (auto& [k, r] : got) {
    EXPECT_TRUE(r.ok()) << r.data;
    pids.insert(r.data);
  }
  EXPECT_EQ(pids.size(), 2u);
}

TEST(ExecBridge, CrashedWorkerIsRestartedAndTheRequestRetried) {
  Grid g;
  g.start_head();
  g.add_node(
      {"--workers", "1", "--services-dir", ExecRegistration(g.dir().path(), "max_retries = 2\n")});
  ASSERT_TRUE(g.wait_nodes(1));
  std::string flag = g.dir().file("crashed-once");
  // Crashes on its first run, succeeds on the retry; the neighbours are fine.
  auto got = RunSession(g, "crashy/crash_once", {flag});
  EXPECT_TRUE(got["0"].ok()) << got["0"].fault_code << ": " << got["0"].data;
  EXPECT_EQ(got["0"].data, "survived");
  EXPECT_TRUE(std::filesystem::exists(flag));
  // Crashes every time: retried up to max_retries (2, from the registration), then faulted.
  auto always = RunSession(g, "crashy/crash", {""}, 60'000)["0"];
  EXPECT_EQ(always.fault_code, "retry_limit_exceeded");
  EXPECT_NE(always.data.find("max retries 2"), std::string::npos) << always.data;
  EXPECT_EQ(RunSession(g, "crashy/echo", {"after"})["0"].data, "after");
  EXPECT_TRUE(g.node(0).running());
}

TEST(ExecBridge, HungWorkerIsKilledAtItsTimeoutAndRestarted) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1", "--services-dir",
              ExecRegistration(g.dir().path(), "task_timeout = \"400ms\"\nmax_retries = 1\n")});
  ASSERT_TRUE(g.wait_nodes(1));
  std::string pid_before = RunSession(g, "crashy/pid", {""})["0"].data;
  ASSERT_FALSE(pid_before.empty());
  auto hung = RunSession(g, "crashy/hang", {""}, 30'000)["0"];
  EXPECT_EQ(hung.fault_code, "retry_limit_exceeded") << hung.data;
  std::string log = read_file(g.dir().file("node0.log"));
  EXPECT_NE(log.find("ran past its task timeout (40"), std::string::npos) << log;
  EXPECT_NE(log.find("killed and restarted"), std::string::npos) << log;
  // The hung worker is gone; a new one answers.
  EXPECT_NE(::kill(std::stoi(pid_before), 0), 0);
  auto after = RunSession(g, "crashy/pid", {""})["0"];
  EXPECT_TRUE(after.ok());
  EXPECT_NE(after.data, pid_before);
}

// ---- the examples and the CLI's formats --------------------------------------------

// examples/services.d as deployed: the Monte Carlo plug-in next to its
// registration, the Python worker one folder up.
std::string DeployExamples(const std::string& dir) {
  namespace fs = std::filesystem;
  std::string reg = dir + "/services.d";
  fs::create_directories(reg);
  fs::copy_file(kSource + "/examples/services.d/montecarlo.toml", reg + "/montecarlo.toml");
  fs::copy_file(kSource + "/examples/services.d/pystats.toml", reg + "/pystats.toml");
  fs::copy_file(ZGRID_MONTECARLO_PLUGIN, reg + "/libmontecarlo.so");
  fs::create_directory_symlink(kSource + "/examples/exec", dir + "/exec");
  return reg;
}

TEST(Examples, MonteCarloPluginEstimatesPiAndIntegrals) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2", "--services-dir", DeployExamples(g.dir().path())});
  ASSERT_TRUE(g.wait_nodes(1)) << read_file(g.dir().file("node0.log"));
  std::string input;
  for (int seed = 1; seed <= 8; ++seed)
    input += "{\"samples\": 200000, \"seed\": " + std::to_string(seed) + "}\n";
  auto r = run_cli({"--head", g.frontend(), "submit", "--service", "montecarlo@1", "--operation",
                    "pi", "--input-format", "json", "--file", "-", "--json"},
                   input);
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  std::istringstream in(r.out);
  std::string line;
  int n = 0;
  std::set<double> estimates;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    double pi = j["result"]["pi"], se = j["result"]["stderr"];
    EXPECT_EQ(j["result"]["samples"], 200000);
    EXPECT_GT(se, 0.0);
    EXPECT_LT(std::abs(pi - M_PI), 5 * se) << line;
    estimates.insert(pi);
    ++n;
  }
  EXPECT_EQ(n, 8);
  EXPECT_EQ(estimates.size(), 8u);  // different seeds, different estimates
  // The integral of x^2 over [0, 3] is 9; a bad request faults alone.
  auto integ = run_cli({"--head", g.frontend(), "submit", "--service", "montecarlo/integrate",
                        "--input-format", "json", "--file", "-", "--json"},
                       "{\"f\": \"x2\", \"a\": 0, \"b\": 3, \"samples\": 400000, \"seed\": 5}\n"
                       "{\"f\": \"nope\", \"samples\": 10}\n");
  EXPECT_EQ(integ.code, 1) << integ.err;
  std::istringstream in2(integ.out);
  int ok = 0, faulted = 0;
  while (std::getline(in2, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("error")) {
      EXPECT_EQ(j["error"]["code"], "invalid_argument");
      ++faulted;
    } else {
      double v = j["result"]["integral"], se = j["result"]["stderr"];
      EXPECT_LT(std::abs(v - 9.0), 5 * se) << line;
      ++ok;
    }
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(faulted, 1);
}

TEST(Examples, PythonExecWorkerComputesStatsDurablyAndFetchShowsJson) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2", "--services-dir", DeployExamples(g.dir().path())});
  ASSERT_TRUE(g.wait_nodes(1)) << read_file(g.dir().file("node0.log"));
  auto sub = run_cli({"--head", g.frontend(), "submit", "--durable", "--service", "pystats",
                      "--input-format", "json", "--file", "-"},
                     "[1, 2, 3, 4]\n[10]\n[\"x\"]\n");
  ASSERT_EQ(sub.code, 0) << sub.err;
  std::string sid = sub.out.substr(0, sub.out.find('\n'));
  auto fetch = run_cli({"--head", g.frontend(), "fetch", sid, "--json"});
  EXPECT_EQ(fetch.code, 1) << fetch.err;  // ["x"] faults
  std::map<std::string, nlohmann::json> by_input;
  std::istringstream in(fetch.out);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    by_input[j["input"]] = j;
  }
  ASSERT_EQ(by_input.size(), 3u) << fetch.out;
  EXPECT_EQ(by_input["[1, 2, 3, 4]"]["result"]["mean"], 2.5);
  EXPECT_EQ(by_input["[1, 2, 3, 4]"]["result"]["n"], 4);
  EXPECT_NEAR(by_input["[1, 2, 3, 4]"]["result"]["stddev"].get<double>(), 1.2909944, 1e-6);
  EXPECT_EQ(by_input["[10]"]["result"]["max"], 10.0);
  EXPECT_EQ(by_input["[\"x\"]"]["error"]["code"], "invalid_argument");
  // The text output shows msgpack results as JSON too.
  auto text = run_cli({"--head", g.frontend(), "fetch", sid});
  EXPECT_NE(
      text.out.find("[10] = {\"max\":10.0,\"mean\":10.0,\"min\":10.0,\"n\":1,\"stddev\":0.0}"),
      std::string::npos)
      << text.out;
}

TEST(ClientFormats, MsgpackInputAndBinaryResultsOfAnyService) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  // Three msgpack values: {"a": 1}, "hi", and bin 00 ff.
  std::string input = std::string(
                          "\x81\xa1"
                          "a\x01",
                          4) +
                      "\xa2hi" + std::string("\xc4\x02\x00\xff", 4);
  auto r = run_cli({"--head", g.frontend(), "submit", "--service", "echo", "--input-format",
                    "msgpack", "--file", "-", "--json"},
                   input);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"result\": {\"a\":1}"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"result\": \"hi\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"result\": {\"base64\":\"AP8=\"}"), std::string::npos) << r.out;
  // A malformed JSON line is one clear error.
  auto bad = run_cli({"--head", g.frontend(), "submit", "--service", "echo", "--input-format",
                      "json", "--file", "-"},
                     "{\"ok\": 1}\n{nope\n");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("input line 2: not JSON"), std::string::npos) << bad.err;
  // Factorize keeps its output.
  auto f =
      run_cli({"--head", g.frontend(), "submit", "--service", "factorize", "--file", "-"}, "12\n");
  EXPECT_EQ(f.out, "12 = 2 * 2 * 3\n");
}

TEST(ClientLibrary, SendsAndReadsMsgpackObjects) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"echo@1", false, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "lib");
  ASSERT_TRUE(bc.ok());
  std::map<std::string, int> value{{"x", 1}, {"y", 2}};
  ASSERT_TRUE(client::send_packed(**bc, value, "m").ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  proto::Response r;
  ASSERT_TRUE(wait_until([&] { return (*bc)->next_response(&r, 100).value(); }, 10'000));
  auto oh = client::unpack_msgpack(r.data);
  ASSERT_TRUE(oh.ok());
  EXPECT_EQ((oh->get().as<std::map<std::string, int>>()), value);
  EXPECT_FALSE(client::unpack_msgpack(std::string("\xdd\xff\xff\xff\xff", 5)).ok());
  EXPECT_EQ(client::result_to_json("plain"), "\"plain\"");
}

}  // namespace
}  // namespace zgrid
