// The zgrid command line: output format, exit status (README.md's one table) and error lines.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <sstream>
#include <thread>

#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using testing::Grid;
using testing::run_cli;

int CountLines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_.start_head();
    g_.add_node({"--workers", "2"});
    ASSERT_TRUE(g_.wait_nodes(1));
  }
  std::vector<std::string> With(std::vector<std::string> args) {
    args.insert(args.begin(), {"--head", g_.frontend()});
    return args;
  }
  Grid g_;
};

TEST_F(CliTest, InteractiveSubmitPrintsOneLinePerRequest) {
  auto r = run_cli(With(
      {"submit", "--interactive", "--service", "factorize", "--random", "100", "--seed", "3"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(CountLines(r.out), 100);
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) EXPECT_NE(line.find(" = "), std::string::npos) << line;
  EXPECT_NE(r.err.find("zgrid: session "), std::string::npos);
}

TEST_F(CliTest, MalformedLinesAreFaultsAndExitOne) {
  auto r = run_cli(With({"submit", "--service", "factorize", "--file", "-"}),
                   "1827364510\nabc\n-5\n0\n18446744073709551616\n42\n");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.out.find("1827364510 = 2 * 5 * 17 * 37 * 353 * 823\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("42 = 2 * 3 * 7\n"), std::string::npos);
  for (const char* bad : {"abc", "-5", "0", "18446744073709551616"})
    EXPECT_NE(r.out.find(std::string(bad) + ": error: invalid_argument: "), std::string::npos)
        << bad;
}

// Input edges: an error line shows at most 64 characters of a 10,000-character
// input; blank lines are no requests, and submit says how many it skipped, so
// the output lines always match the requests.
TEST_F(CliTest, LongBadInputIsShortenedAndBlankLinesAreCounted) {
  std::string huge(10'000, 'x');
  auto r = run_cli(With({"submit", "--service", "factorize", "--file", "-"}),
                   "12\n\n" + huge + "\n   \n35\n");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(CountLines(r.out), 3) << r.out;
  std::string shown = std::string(64, 'x') + "\u2026(10000 chars): error: invalid_argument: ";
  EXPECT_NE(r.out.find(shown), std::string::npos) << r.out.substr(0, 300);
  EXPECT_LT(r.out.size(), 400u);
  EXPECT_NE(r.err.find("zgrid: 2 blank input lines skipped (not requests)"), std::string::npos)
      << r.err;
}

// zgrid wait (issue 17, request/acknowledge with a callback): exit 0 when
// every request is done, 1 with a fault, 3 at its timeout; --on-complete runs
// once, with the session's id and counts in its environment.
TEST(CliWait, ExitCodesAndTheOnCompleteCommand) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto cli = [&](std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--head", g.frontend()});
    return run_cli(args, in);
  };
  auto submit = [&](const std::string& service, const std::string& in) {
    auto r = cli({"submit", "--durable", "--service", service, "--file", "-"}, in);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out.substr(0, 32);
  };
  std::string ok = submit("factorize", "12\n35\n");
  std::string out = g.dir().file("on-complete.txt");
  auto r = cli({"wait", ok, "--on-complete",
                "echo \"$ZGRID_SESSION $ZGRID_TOTAL $ZGRID_DONE $ZGRID_FAULTED $ZGRID_REMOVED "
                "$ZGRID_EXIT\" >> " +
                    out});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("complete: 2 done, 0 faulted, 0 removed"), std::string::npos) << r.err;
  EXPECT_EQ(testing::read_file(out), ok + " 2 2 0 0 0\n");  // once
  std::string bad = submit("factorize", "12\nabc\n");
  EXPECT_EQ(cli({"wait", bad}).code, 1);
  std::string slow = submit("sleep", "5000\n");
  auto t0 = std::chrono::steady_clock::now();
  r = cli({"wait", slow, "--timeout", "500ms", "--on-complete", "echo never >> " + out});
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("not complete after 500ms"), std::string::npos) << r.err;
  EXPECT_LT(s, 3.0);
  EXPECT_EQ(testing::read_file(out), ok + " 2 2 0 0 0\n");  // not run on a timeout
  EXPECT_EQ(cli({"wait", "0123456789abcdef0123456789abcdef"}).code, 2);
  // The library's call: progress readings while it waits, then the outcome.
  auto conn = g.connect();
  int readings = 0;
  auto st = conn->wait_complete(
      slow, 700,
      [&](const client::Fields& f) {
        ++readings;
        EXPECT_EQ(f.u64("total"), 1u);
      },
      100);
  EXPECT_EQ(st.status().code(), Code::kTimedOut);
  EXPECT_GE(readings, 3);
  auto done = conn->wait_complete(ok, 5'000);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->u64("done"), 2u);
}

// A durable submit ended by SIGINT before its commit says, in one line, that
// the session was not committed, what becomes of its requests and when, and
// how to remove them now (it is blocked reading its input here: a FIFO).
TEST(CliInterrupt, DurableSubmitInterruptedBeforeTheCommitSaysWhatHappens) {
  Grid g;
  g.start_durable_head({"--client-idle-timeout", "90s"});
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  std::string fifo = g.dir().file("input.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  testing::Process submit({ZGRID_CLI_BIN, "--head", g.frontend(), "submit", "--durable",
                           "--service", "factorize", "--file", fifo},
                          g.dir().file("submit.log"));
  int w = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);  // once the submit opened it
  ASSERT_GE(w, 0);
  ASSERT_EQ(::write(w, "12\n35\n", 6), 6);
  auto conn = g.connect();
  std::string sid;
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto list = conn->sessions();
        if (!list.ok() || list->empty()) return false;
        sid = list->front().str("session_id");
        return true;
      },
      10'000));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // its status read done
  submit.signal(SIGINT);
  EXPECT_EQ(submit.wait(5'000), 3);
  ::close(w);
  std::string log = testing::read_file(g.dir().file("submit.log"));
  EXPECT_NE(log.find("zgrid: interrupted: session " + sid +
                     " was not committed; the requests sent are removed with this client once it "
                     "has been idle 90s;"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("remove them now with: zgrid close " + sid + " --purge\n"), std::string::npos)
      << log;
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("committed"), 0u);
  EXPECT_EQ(st->u64("clients_open"), 1u);
}

TEST_F(CliTest, JsonOutput) {
  auto r = run_cli(With({"submit", "--service", "factorize", "--file", "-", "--json"}), "12\nx\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("\"input\": \"12\", \"result\": [2, 2, 3]}"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"error\": {\"code\": \"invalid_argument\""), std::string::npos) << r.out;
}

TEST_F(CliTest, UnknownSessionIsExitTwoWithOneLine) {
  auto r = run_cli(With({"status", "0123456789abcdef0123456789abcdef"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("zgrid: error: unknown session"), std::string::npos) << r.err;
}

TEST_F(CliTest, NodesAndStatus) {
  auto r = run_cli(With({"nodes"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(CountLines(r.out), 2) << r.out;  // header + one node
  r = run_cli(With({"status", "--json"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"nodes\": 1"), std::string::npos) << r.out;
}

TEST(Cli, UsageErrorsAreExitTwoWithOneLine) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"submit", "--bogus"}, {"frobnicate"}, {"submit", "--service", "factorize"}, {}}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(CountLines(r.err), 1) << r.err;
  }
}

TEST(Cli, UnreachableHeadFailsFastWithOneLine) {
  // Nothing listens on this port: bounded time, exit 2, one line.
  auto r = run_cli({"--head", "tcp://127.0.0.1:1", "--timeout", "1s", "nodes"}, "", 15'000);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("head at tcp://127.0.0.1:1"), std::string::npos) << r.err;
}

// Refused connections fail within a second, whatever --timeout says; a head
// that accepts and never answers (a bare TCP listener here) takes the timeout.
TEST(Cli, RefusedConnectionFailsWithinASecondSilentHeadTakesTheTimeout) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_cli({"--head", "tcp://127.0.0.1:1", "--timeout", "10s", "status"}, "", 15'000);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("cannot reach the head at tcp://127.0.0.1:1: connection refused"),
            std::string::npos)
      << r.err;
  EXPECT_LT(s, 1.0) << "refused after " << s << " s";

  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string ep = "tcp://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  t0 = std::chrono::steady_clock::now();
  r = run_cli({"--head", ep, "--timeout", "2s", "status"}, "", 15'000);
  s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(fd);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_GE(s, 1.9) << r.err;
  EXPECT_EQ(r.err.find("connection refused"), std::string::npos) << r.err;
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CliNoNode's heads say "no node offers service S" at once: the node
// reconnect window after their start (docs/operations.md, "Work that cannot
// run") is shortened by the test hook.
const std::vector<std::string> kNoNodeWindow = {"ZGRID_TEST_NODE_WINDOW_MS=0"};

// The session id from submit's "zgrid: session ID (...)" line.
std::string SessionOf(const std::string& err) {
  auto at = err.find("zgrid: session ");
  return at == std::string::npos ? "" : err.substr(at + 15, 32);
}

// Issue 27.8: a service no node offers is said on stderr within a few
// seconds, not waited on for ever: interactive submit and resubmit end with
// exit 2 (after the nodes' grace) and cancel their session; a durable
// submit is committed and says its session is paused; fetch and wait say so
// while they wait; --wait-for-nodes waits for a node that offers it.
TEST(CliNoNode, AServiceNoNodeOffersIsSaidWithinSeconds) {
  Grid g;
  g.set_head_env(kNoNodeWindow);
  g.start_durable_head();
  g.add_node({"--workers", "2", "--services", "echo,fail"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto cli = [&](std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--head", g.frontend()});
    return run_cli(args, in, 20'000);
  };
  auto t0 = std::chrono::steady_clock::now();
  auto r = cli({"submit", "--service", "nosuchservice", "--file", "-"}, "1\n2\n");
  EXPECT_LT(SecondsSince(t0), 8.0) << r.err;
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("zgrid: error: session "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no node offers service nosuchservice (the nodes offer echo@"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--wait-for-nodes"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  // Its session was cancelled: nothing of it is left to run.
  std::string sid = SessionOf(r.err);
  ASSERT_EQ(sid.size(), 32u) << r.err;
  auto st = cli({"status", sid});
  EXPECT_TRUE(st.code == 2 || st.out.find("cancelled") != std::string::npos) << st.out << st.err;

  // Durable: committed (exit 0), and it says it is paused.
  r = cli({"submit", "--durable", "--service", "nosuchservice", "--file", "-"}, "1\n2\n");
  EXPECT_EQ(r.code, 0) << r.err;
  std::string durable = r.out.substr(0, 32);
  EXPECT_NE(r.err.find("is paused: no node offers service nosuchservice"), std::string::npos)
      << r.err;
  // fetch and wait say why they wait, then time out as asked (exit 3).
  r = cli({"fetch", durable, "--wait-timeout", "2s"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("zgrid: session " + durable +
                       " is paused: no node offers service "
                       "nosuchservice"),
            std::string::npos)
      << r.err;
  r = cli({"wait", durable, "--timeout", "2s"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("is paused: no node offers service nosuchservice"), std::string::npos)
      << r.err;
  // A program reads it in the session's status.
  r = cli({"status", durable, "--json"});
  EXPECT_NE(r.out.find("\"paused\": \"no node offers service nosuchservice"), std::string::npos)
      << r.out;

  // Resubmit to a service no node offers: the same line and exit.
  r = cli({"submit", "--durable", "--service", "fail", "--file", "-"}, "fault:x\n");
  ASSERT_EQ(r.code, 0) << r.err;
  std::string faulted = r.out.substr(0, 32);
  ASSERT_EQ(cli({"wait", faulted}).code, 1);
  t0 = std::chrono::steady_clock::now();
  r = cli({"resubmit", faulted, "--service", "nosuchservice"});
  EXPECT_LT(SecondsSince(t0), 8.0) << r.err;
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("no node offers service nosuchservice"), std::string::npos) << r.err;

  // --wait-for-nodes: it says why, keeps waiting past the grace, and gets
  // its answers from a node that comes later.
  t0 = std::chrono::steady_clock::now();
  auto waiting = std::async(std::launch::async, [&] {
    return cli({"submit", "--service", "factorize", "--wait-for-nodes", "--file", "-"}, "12\n35\n");
  });
  auto conn = g.connect();
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto rows = conn->sessions();
        if (!rows.ok()) return false;
        for (const auto& row : *rows)
          if (row.str("service") == "factorize" && !row.str("paused").empty()) return true;
        return false;
      },
      5'000, 20));
  // Past the grace submit gives a service no node offers without the flag.
  ASSERT_EQ(waiting.wait_for(std::chrono::milliseconds(4'500)), std::future_status::timeout);
  g.add_node({"--workers", "1", "--services", "factorize"});
  r = waiting.get();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("12 = 2 * 2 * 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("35 = 5 * 7"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("is paused: no node offers service factorize (the nodes offer echo@"),
            std::string::npos)
      << r.err;
}

// A service whose nodes go away mid-run (a node restart) is not a service no
// node offers: interactive submit says it is paused and waits for them.
TEST(CliNoNode, NodesLostMidRunAreSaidAndWaitedFor) {
  Grid g;
  g.set_head_env(kNoNodeWindow);
  g.start_head({"--heartbeat", "200ms"});
  g.add_node({"--workers", "1", "--services", "sleep"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto waiting = std::async(std::launch::async, [&] {
    return run_cli({"--head", g.frontend(), "submit", "--service", "sleep", "--file", "-"},
                   "0\n5000\n", 30'000);
  });
  auto conn = g.connect();
  auto row = [&]() -> client::Fields {
    auto rows = conn->sessions();
    if (rows.ok())
      for (const auto& r : *rows)
        if (r.str("service") == "sleep") return r;
    return {};
  };
  // Both requests run (the CLI has seen its service offered: it looks at
  // the session's status after each quiet second); then the node goes.
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto r = row();
        return r.u64("running") >= 1 && r.u64("running") + r.u64("done") == 2;
      },
      10'000, 20))
      << row().to_json();
  ASSERT_EQ(waiting.wait_for(std::chrono::milliseconds(1'500)), std::future_status::timeout);
  g.node(0).kill_now();
  ASSERT_TRUE(g.wait_nodes(0));
  ASSERT_TRUE(testing::wait_until([&] { return !row().str("paused").empty(); }, 5'000, 20));
  // Well past the nodes' grace, it still waits.
  ASSERT_EQ(waiting.wait_for(std::chrono::milliseconds(4'000)), std::future_status::timeout);
  g.add_node({"--workers", "1", "--services", "sleep"});
  auto r = waiting.get();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(CountLines(r.out), 2) << r.out;
  EXPECT_NE(r.err.find("is paused: the nodes that offered service sleep went away"),
            std::string::npos)
      << r.err;
}

// The lines of `out`, sorted (interactive results come as they are answered).
std::vector<std::string> SortedLines(const std::string& out) {
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  return lines;
}

// Review of 27.8: a head that has just (re)started cannot know yet what its
// nodes offer — they register again within the node reconnect window
// (heartbeat x misses, then a register backoff of up to 5 s). Meanwhile an
// interactive submit is told that the head waits for nodes, keeps waiting
// past its 3 s grace, and a node that registers late runs it exactly.
TEST(CliNoNode, AFreshHeadWaitsForItsNodesToRegister) {
  Grid g;
  g.start_head();
  g.restart_head();  // e.g. a CI script restarts the head, then submits
  auto waiting = std::async(std::launch::async, [&] {
    return run_cli({"--head", g.frontend(), "submit", "--service", "factorize", "--file", "-"},
                   "12\n35\n1827364510\n", 30'000);
  });
  auto conn = g.connect();
  std::string paused;
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto rows = conn->sessions();
        if (rows.ok())
          for (const auto& row : *rows)
            if (row.str("service") == "factorize") paused = row.str("paused");
        return !paused.empty();
      },
      5'000, 20));
  EXPECT_NE(paused.find("waiting for nodes to register: none offers service factorize yet (the "
                        "head started "),
            std::string::npos)
      << paused;
  // Past the CLI's grace (and its next look at the status), it still waits.
  ASSERT_EQ(waiting.wait_for(std::chrono::milliseconds(4'500)), std::future_status::timeout);
  g.add_node({"--workers", "2", "--services", "factorize"});
  auto r = waiting.get();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(SortedLines(r.out),
            (std::vector<std::string>{"12 = 2 * 2 * 3", "1827364510 = 2 * 5 * 17 * 37 * 353 * 823",
                                      "35 = 5 * 7"}))
      << r.out;
  EXPECT_NE(r.err.find("is paused: waiting for nodes to register"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("cannot run"), std::string::npos) << r.err;
}

// Review of 27.8: a service offered only by nodes that take no new work
// (drained, or quarantined) is said too, not waited on in silence; it is not
// "no node offers", so submit waits for them to take work again.
TEST(CliNoNode, EveryNodeOfTheServiceDrainingIsSaid) {
  Grid g;
  g.set_head_env(kNoNodeWindow);
  g.start_head();
  g.add_node({"--workers", "1", "--services", "factorize", "--node-id", "only"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto cli = [&](std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--head", g.frontend()});
    return run_cli(args, in, 30'000);
  };
  auto r = cli({"drain", "only", "--no-wait"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto waiting = std::async(std::launch::async, [&] {
    return cli({"submit", "--service", "factorize", "--file", "-"}, "12\n35\n");
  });
  auto conn = g.connect();
  std::string paused;
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto rows = conn->sessions();
        if (rows.ok())
          for (const auto& row : *rows)
            if (row.str("service") == "factorize") paused = row.str("paused");
        return !paused.empty();
      },
      5'000, 20));
  EXPECT_EQ(paused.rfind("every node that offers service factorize is draining", 0), 0u) << paused;
  // Past the CLI's grace it still waits (a drained node may take work again).
  ASSERT_EQ(waiting.wait_for(std::chrono::milliseconds(4'500)), std::future_status::timeout);
  ASSERT_EQ(cli({"drain", "only", "--undo"}).code, 0);
  r = waiting.get();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(SortedLines(r.out), (std::vector<std::string>{"12 = 2 * 2 * 3", "35 = 5 * 7"}))
      << r.out;
  EXPECT_NE(r.err.find("is paused: every node that offers service factorize is draining"),
            std::string::npos)
      << r.err;
}

TEST(Cli, HeadRefusesBadFlagValues) {
  {
    testing::TempDir d;
    testing::Process p({ZGRID_HEAD_BIN, "--heartbeat", "soon"}, d.file("log"));
    EXPECT_EQ(p.wait(10'000), 2);
    std::string log = testing::read_file(d.file("log"));
    EXPECT_NE(log.find("--heartbeat"), std::string::npos) << log;
  }
}

}  // namespace
}  // namespace zgrid
