// zgrid-node --python (issue 30, part A): the built-in service `python`
// through a real head and node. The calls are pickled, and the results
// unpickled, by Debian's /usr/bin/python3 run from the test (the formats are
// python/zgrid/_worker.py's docstring); the node runs the worker source it
// was built with.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zgrid/client.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "services/python_functions.hpp"
#include "tests/support/grid_process.hpp"
#include "tests/support/run_session.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::Grid;
using testing::Process;
using testing::read_file;
using testing::RunSession;
using testing::TempDir;

const std::string kPython = "/usr/bin/python3";

void Write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

// Runs `/usr/bin/python3 script.py args...` to completion; its stdout.
std::string RunPython(const TempDir& dir, const std::string& script,
                      const std::vector<std::string>& args) {
  static int n = 0;
  std::string path = dir.file("script" + std::to_string(n++) + ".py");
  Write(path, script);
  std::vector<std::string> argv{kPython, path};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out = dir.file("script" + std::to_string(n) + ".out");
  Process p(argv, out);
  EXPECT_EQ(p.wait(60'000), 0) << read_file(out);
  return read_file(out);
}

// Writes the calls (python expressions of (fn, kind, data)) as pickled
// payloads, one file each; returns them.
std::vector<std::string> Calls(const TempDir& dir, const std::vector<std::string>& calls) {
  std::string script =
      "import os, pickle, sys, cloudpickle\n"
      "def call(fn, kind, data):\n"
      "    return pickle.dumps((1, cloudpickle.dumps(fn), kind, data))\n"
      "def needs_missing():\n"
      "    import zgrid_no_such_module_here\n"
      "calls = [\n";
  for (const auto& c : calls) script += "    call" + c + ",\n";
  script +=
      "]\n"
      "for i, c in enumerate(calls):\n"
      "    open(os.path.join(sys.argv[1], 'call%d.bin' % i), 'wb').write(c)\n";
  // A function that imports a module the node lacks, pickled by value with
  // a reference to that module: unpickling it on the node fails to import.
  std::filesystem::create_directories(dir.file("modules"));
  Write(dir.file("modules/zgrid_no_such_module_here.py"), "def f():\n    return 42\n");
  script =
      "import sys\n"
      "sys.path.insert(0, sys.argv[1] + '/modules')\n"
      "import zgrid_no_such_module_here as m\n" +
      script;
  RunPython(dir, script, {dir.path()});
  std::vector<std::string> out;
  for (std::size_t i = 0; i < calls.size(); ++i)
    out.push_back(read_file(dir.file("call" + std::to_string(i) + ".bin")));
  return out;
}

// The results unpickled, one line each: "ok <repr>" or "raised <type> <message>".
std::vector<std::string> Results(const TempDir& dir, const std::vector<std::string>& data) {
  for (std::size_t i = 0; i < data.size(); ++i)
    Write(dir.file("result" + std::to_string(i) + ".bin"), data[i]);
  std::string out = RunPython(dir,
                              "import os, pickle, sys\n"
                              "for i in range(int(sys.argv[2])):\n"
                              "    r = pickle.load(open(os.path.join(sys.argv[1], 'result%d.bin' "
                              "% i), 'rb'))\n"
                              "    if r[0]:\n"
                              "        print('ok', repr(r[1]))\n"
                              "    else:\n"
                              "        print('raised', r[2], r[3])\n",
                              {dir.path(), std::to_string(data.size())});
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

TEST(PythonNode, RunsPickledFunctionsThroughARealHeadAndNode) {
  Grid g;
  g.start_head();
  g.add_node(
      {"--workers", "3", "--python", kPython, "--python-workers", "2", "--node-id", "pynode-1"});
  ASSERT_TRUE(g.wait_nodes(1)) << read_file(g.dir().file("node0.log"));
  std::vector<std::string> exprs = {
      "(lambda x, y: x * y + 1, 'c', ((6, 7), {}))",
      "(lambda **kw: sorted(kw.items()), 'c', ((), {'b': 2, 'a': 1}))",
      "(lambda x: x + 1, 'm', [(1,), (2,), (3,)])",
      "(lambda: int('nope'), 'c', ((), {}))",
      "(lambda: os.environ['ZGRID_NODE'], 'c', ((), {}))",
      "(lambda: os.environ['ZGRID_MAX_PAYLOAD'], 'c', ((), {}))",
      "(lambda: print('to stderr, not the channel') or 'printed', 'c', ((), {}))",
      "(lambda: os.getpid(), 'c', ((), {}))",
      "(lambda: os.getpid(), 'c', ((), {}))",
  };
  auto calls = Calls(g.dir(), exprs);
  auto got = RunSession(g, "python", calls);
  ASSERT_EQ(got.size(), calls.size());
  std::vector<std::string> data;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    const auto& r = got[std::to_string(i)];
    EXPECT_TRUE(r.ok()) << i << ": " << r.fault_code << ": " << r.data;
    data.push_back(r.data);
  }
  auto lines = Results(g.dir(), data);
  ASSERT_EQ(lines.size(), calls.size());
  EXPECT_EQ(lines[0], "ok 43");
  EXPECT_EQ(lines[1], "ok [('a', 1), ('b', 2)]");
  EXPECT_EQ(lines[2], "ok [2, 3, 4]");
  EXPECT_EQ(lines[3], "raised builtins.ValueError invalid literal for int() with base 10: 'nope'");
  EXPECT_EQ(lines[4], "ok 'pynode-1'");
  EXPECT_EQ(lines[5], "ok '1048576'");
  EXPECT_EQ(lines[6], "ok 'printed'");
  EXPECT_NE(read_file(g.dir().file("node0.log")).find("to stderr, not the channel"),
            std::string::npos);
  // The service is `python@1/call` with --python-workers processes, no more.
  std::vector<std::string> pid_calls(12, calls[7]);
  std::set<std::string> pids;
  for (auto& [k, r] : RunSession(g, "python@1/call", pid_calls)) {
    ASSERT_TRUE(r.ok()) << r.data;
    pids.insert(r.data);
  }
  EXPECT_LE(pids.size(), 2u);
}

TEST(PythonNode, AFunctionNeedingAModuleTheNodeLacksFaultsNamingNodeAndModule) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1", "--python", "python3", "--node-id", "lacking-node"},
             {"PATH=/usr/bin:/bin"});
  ASSERT_TRUE(g.wait_nodes(1)) << read_file(g.dir().file("node0.log"));
  auto calls = Calls(g.dir(), {"(m.f, 'c', ((), {}))", "(lambda: 'after', 'c', ((), {}))"});
  auto got = RunSession(g, "python", calls);
  EXPECT_EQ(got["0"].fault_code, "service_error");
  EXPECT_NE(got["0"].data.find("lacking-node"), std::string::npos) << got["0"].data;
  EXPECT_NE(got["0"].data.find("zgrid_no_such_module_here"), std::string::npos) << got["0"].data;
  EXPECT_TRUE(got["1"].ok()) << got["1"].data;
  // Not pickle at all: the call faults invalid_argument; the worker lives on.
  auto junk = RunSession(g, "python", {"not a pickle", calls[1]});
  EXPECT_EQ(junk["0"].fault_code, "invalid_argument") << junk["0"].data;
  EXPECT_TRUE(junk["1"].ok()) << junk["1"].data;
}

// Many calls pipelined to one worker process; one of them kills it
// (os._exit), another hangs past the session's task timeout. Only those two
// are charged: with the head's --max-retries 0 one charge is a fault, so a
// call blamed for its neighbour's death would fault too (the worker writes
// each reply before it runs the next call). Every other call is answered
// once, correctly, by the replacements.
TEST(PythonNode, AWorkerThatDiesOrHangsMidPipelineFaultsOnlyThatCall) {
  Grid g;
  g.start_head({"--max-retries", "0"});
  g.add_node({"--workers", "2", "--python", kPython, "--python-workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1)) << read_file(g.dir().file("node0.log"));
  auto calls =
      Calls(g.dir(), {"(lambda x: x * 2, 'c', ((21,), {}))", "(lambda: os._exit(3), 'c', ((), {}))",
                      "(lambda: __import__('time').sleep(3600), 'c', ((), {}))",
                      "(lambda: os.getpid(), 'c', ((), {}))"});
  std::string pid_before = RunSession(g, "python", {calls[3]})["0"].data;
  std::vector<std::string> many(600, calls[0]);
  many[200] = calls[1];
  many[400] = calls[2];
  auto got = RunSession(g, "python", many, 120'000, 1'000);
  ASSERT_EQ(got.size(), many.size());
  std::vector<std::string> ok_data;
  for (std::size_t i = 0; i < many.size(); ++i) {
    const auto& r = got[std::to_string(i)];
    if (i == 200 || i == 400) {
      EXPECT_EQ(r.fault_code, "retry_limit_exceeded") << i << ": " << r.data;
      continue;
    }
    ASSERT_TRUE(r.ok()) << i << ": " << r.fault_code << ": " << r.data;
    ok_data.push_back(r.data);
  }
  auto lines = Results(g.dir(), ok_data);
  ASSERT_EQ(lines.size(), ok_data.size());
  for (const auto& l : lines) EXPECT_EQ(l, "ok 42");
  std::string log = read_file(g.dir().file("node0.log"));
  EXPECT_NE(log.find("exec worker of python@1 died (exit status 3); it is restarted"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("killed and restarted"), std::string::npos) << log;
  std::string pid_after = RunSession(g, "python", {calls[3]})["0"].data;
  EXPECT_NE(pid_after, pid_before);
  EXPECT_TRUE(g.node(0).running());
}

// A node that must refuse to start: its exit status and its output.
std::pair<int, std::string> RefusedNode(const std::vector<std::string>& extra,
                                        const std::vector<std::string>& env = {}) {
  TempDir dir;
  std::vector<std::string> argv{ZGRID_NODE_BIN, "--head", "tcp://127.0.0.1:1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Process p(argv, dir.file("node.log"), env);
  int code = p.wait(60'000);
  return {code, read_file(dir.file("node.log"))};
}

std::size_t LineCount(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(PythonNode, APythonItCannotUseStopsTheNodeWithOneLine) {
  auto [code, out] = RefusedNode({"--python", "/nonexistent/python3"});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(out, "zgrid-node: error: --python /nonexistent/python3: not an executable file\n");

  std::tie(code, out) = RefusedNode({"--python", "zgrid-no-such-python"});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(out, "zgrid-node: error: --python zgrid-no-such-python: not found on PATH\n");

  // A Python without cloudpickle: Debian's, without its site-packages.
  TempDir dir;
  std::string bare = dir.file("bare-python");
  Write(bare, "#!/bin/sh\nexec /usr/bin/python3 -S \"$@\"\n");
  ASSERT_EQ(::chmod(bare.c_str(), 0755), 0);
  std::tie(code, out) = RefusedNode({"--python", bare});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(LineCount(out), 1u) << out;
  EXPECT_EQ(out.rfind("zgrid-node: error: --python " + bare + " cannot import cloudpickle (", 0),
            0u)
      << out;
  EXPECT_NE(out.find("apt install python3-cloudpickle"), std::string::npos) << out;
  EXPECT_NE(out.find(bare + " -m pip install cloudpickle"), std::string::npos) << out;

  // The environment and the config file say it too.
  std::tie(code, out) = RefusedNode({}, {"ZGRID_NODE_PYTHON=" + bare});
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("cannot import cloudpickle"), std::string::npos) << out;
  std::string conf = dir.file("node.toml");
  Write(conf, "python = \"/nonexistent/python3\"\n");
  std::tie(code, out) = RefusedNode({"--config", conf});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(out, "zgrid-node: error: --python /nonexistent/python3: not an executable file\n");

  std::tie(code, out) = RefusedNode({"--python-workers", "2"});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(out,
            "zgrid-node: error: --python-workers needs --python (the Python that runs them)\n");
}

// The service python_service() registers, in process: per-call instances
// are pipelined (up to 64 calls a round trip); a stateful session's instance
// is a worker process of its own that accepts :session_start, runs one call
// at a time and keeps a function loaded for the whole session, so state the
// function keeps (here a default argument) carries from call to call.
TEST(PythonService, PerCallInstancesPipelineAndASessionKeepsItsOwnWorker) {
  ::signal(SIGPIPE, SIG_IGN);  // as zgrid-node does
  TempDir dir;
  auto calls = Calls(dir, {"((acc := lambda x, s=[0]: s.__setitem__(0, s[0] + x) or s[0]), 'c', "
                           "((5,), {}))",
                           "(acc, 'c', ((2,), {}))", "(acc, 'm', [(3,), (10,)])",
                           "(lambda: os.getpid(), 'c', ((), {}))"});
  svc::ServiceInfo info = svc::python_service(kPython, 2, "inproc");
  EXPECT_TRUE(info.sessions);
  auto pooled = info.make();
  ASSERT_TRUE(pooled.ok()) << pooled.status().ToString();
  EXPECT_EQ((*pooled)->pipeline_depth(), 64u);
  std::vector<std::string_view> many(50, calls[3]);
  std::vector<svc::Output> outs(many.size());
  std::size_t answered = 0;
  (*pooled)->run_pipelined("call", many, outs, [&](std::size_t i) { EXPECT_EQ(i, answered++); });
  ASSERT_EQ(answered, many.size());
  std::set<std::string> pooled_pids;
  for (const auto& o : outs) {
    ASSERT_TRUE(o.fault_code.empty()) << o.fault_code << ": " << o.data;
    pooled_pids.insert(o.data);
  }
  EXPECT_EQ(pooled_pids.size(), 1u);  // one worker answered them all

  auto session = info.make();
  ASSERT_TRUE(session.ok());
  ASSERT_TRUE((*session)->open_session("sid.1").ok());
  EXPECT_EQ((*session)->pipeline_depth(), 1u);
  std::vector<std::string> data;
  for (int round = 0; round < 2; ++round) {
    for (const std::string& c : calls) {
      svc::Output out;
      (*session)->run("call", c, out);
      ASSERT_TRUE(out.fault_code.empty()) << out.fault_code << ": " << out.data;
      data.push_back(out.data);
    }
  }
  (*session)->close_session();
  auto lines = Results(dir, data);
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines[0], "ok 5");
  EXPECT_EQ(lines[1], "ok 7");
  EXPECT_EQ(lines[2], "ok [10, 20]");
  EXPECT_EQ(lines[4], "ok 25");  // the same function object: its state goes on
  EXPECT_EQ(lines[5], "ok 27");
  EXPECT_EQ(lines[6], "ok [30, 40]");
  EXPECT_EQ(data[3], data[7]);                // one process for the session...
  EXPECT_EQ(pooled_pids.count(data[3]), 0u);  // ...not a pooled one
  // A pooled instance keeps its own state apart: a fresh count.
  svc::Output out;
  (*pooled)->run("call", calls[0], out);
  ASSERT_TRUE(out.fault_code.empty()) << out.data;
  EXPECT_EQ(Results(dir, {out.data}), std::vector<std::string>{"ok 5"});
}

}  // namespace
}  // namespace zgrid
