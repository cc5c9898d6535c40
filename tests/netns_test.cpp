// A grid across hosts on this machine: network namespaces made by the test
// (addresses of its own, nothing leaves the machine): the head on one host,
// nodes on two others, a durable session across them, one node cut off by
// taking its link down, then brought back.
//
// Needs root (ip netns). Skips otherwise, except under CI=true, where it
// must run.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "services/factorize_kernel.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using testing::Process;
using testing::wait_until;

bool Sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

// Three hosts: "h" (the head), "a" and "b" (a node each), on a bridge that
// lives in a fourth namespace (the switch).
class ThreeHosts : public ::testing::Test {
 protected:
  void SetUp() override {
    bool ci = std::getenv("CI") && std::string(std::getenv("CI")) == "true";
    std::string tag = std::to_string(getpid() % 100000);
    sw_ = "zgt" + tag + "s";
    h_ = "zgt" + tag + "h";
    a_ = "zgt" + tag + "a";
    b_ = "zgt" + tag + "b";
    // 10.213.x.0/24: addresses that exist only between these namespaces.
    std::string net = "10.213." + std::to_string(getpid() % 250) + ".";
    addr_h_ = net + "1";
    addr_a_ = net + "2";
    addr_b_ = net + "3";
    bool ok = geteuid() == 0 && Sh("ip netns add " + sw_) &&
              Sh("ip -n " + sw_ + " link add br0 type bridge") &&
              Sh("ip -n " + sw_ + " link set br0 up");
    for (const auto& [ns, addr] : {std::pair{h_, addr_h_}, {a_, addr_a_}, {b_, addr_b_}}) {
      ok = ok && Sh("ip netns add " + ns) &&
           Sh("ip link add " + ns + "v type veth peer name " + ns + "p") &&
           Sh("ip link set " + ns + "v netns " + ns) &&
           Sh("ip link set " + ns + "p netns " + sw_) &&
           Sh("ip -n " + sw_ + " link set " + ns + "p master br0") &&
           Sh("ip -n " + sw_ + " link set " + ns + "p up") &&
           Sh("ip -n " + ns + " addr add " + addr + "/24 dev " + ns + "v") &&
           Sh("ip -n " + ns + " link set lo up") && Sh("ip -n " + ns + " link set " + ns + "v up");
    }
    made_ = true;
    if (!ok) {
      if (ci) FAIL() << "cannot create network namespaces (needs root and iproute2)";
      GTEST_SKIP() << "needs root to create network namespaces";
    }
  }
  void TearDown() override {
    procs_.clear();  // SIGKILL and reap every process we started, by PID
    if (made_)
      for (const auto& ns : {h_, a_, b_, sw_}) Sh("ip netns del " + ns);
  }
  Process& Start(const std::string& ns, std::vector<std::string> argv, const std::string& log) {
    argv.insert(argv.begin(), {"/usr/sbin/ip", "netns", "exec", ns});
    procs_.push_back(std::make_unique<Process>(argv, dir_.file(log)));
    return *procs_.back();
  }
  testing::CliResult Cli(std::vector<std::string> args, Millis timeout = 60'000) {
    // The CLI runs on host h, like a user logged in there.
    std::vector<std::string> all{"--head", "tcp://" + addr_h_ + ":5555"};
    all.insert(all.end(), args.begin(), args.end());
    std::string cmd = "ip netns exec " + h_ + " " + ZGRID_CLI_BIN;
    for (const auto& a : all) cmd += " '" + a + "'";
    cmd += " >" + dir_.file("cli.out") + " 2>" + dir_.file("cli.err");
    testing::CliResult r;
    r.code =
        WEXITSTATUS(std::system(("timeout " + std::to_string(timeout / 1000) + " " + cmd).c_str()));
    r.out = testing::read_file(dir_.file("cli.out"));
    r.err = testing::read_file(dir_.file("cli.err"));
    return r;
  }
  std::size_t Nodes() {
    auto r = Cli({"nodes", "--json"}, 10'000);
    std::size_t n = 0;
    for (std::size_t p = 0; (p = r.out.find("node_id", p)) != std::string::npos; ++p) ++n;
    return n;
  }

  testing::TempDir dir_;
  std::string sw_, h_, a_, b_, addr_h_, addr_a_, addr_b_;
  bool made_ = false;
  std::vector<std::unique_ptr<Process>> procs_;
};

TEST_F(ThreeHosts, DurableSessionAcrossHostsSurvivesANodeCutOff) {
  std::string backend = "tcp://" + addr_h_ + ":5556";
  Start(h_,
        {ZGRID_HEAD_BIN, "--frontend", "tcp://" + addr_h_ + ":5555", "--backend", backend,
         "--data-dir", dir_.file("data"), "--heartbeat", "250ms", "--heartbeat-misses", "3"},
        "head.log");
  Start(a_, {ZGRID_NODE_BIN, "--head", backend, "--workers", "2", "--node-id", "node-a"}, "a.log");
  Start(b_, {ZGRID_NODE_BIN, "--head", backend, "--workers", "2", "--node-id", "node-b"}, "b.log");
  ASSERT_TRUE(wait_until([&] { return Nodes() == 2; }, 15'000, 200))
      << testing::read_file(dir_.file("head.log"));
  // A durable batch of 400 x 20 ms across both remote hosts.
  {
    std::ofstream f(dir_.file("in"));
    for (int i = 0; i < 400; ++i) f << "20\n";
  }
  auto r = Cli({"submit", "--durable", "--service", "sleep", "--file", dir_.file("in")});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, 32);
  // Cut host a off mid-run: host b finishes the session.
  ASSERT_TRUE(Sh("ip -n " + a_ + " link set " + a_ + "v down"));
  auto f = Cli({"fetch", sid}, 120'000);
  EXPECT_EQ(f.code, 0) << f.err;
  std::istringstream lines(f.out);
  std::string line;
  std::size_t ok = 0;
  while (std::getline(lines, line)) ok += line == "20 = 20";
  EXPECT_EQ(ok, 400u) << f.out.substr(0, 500);
  std::string head_log = testing::read_file(dir_.file("head.log"));
  EXPECT_NE(head_log.find("node lost node=node-a"), std::string::npos) << head_log;
  // The link comes back: node a registers again by itself.
  ASSERT_TRUE(Sh("ip -n " + a_ + " link set " + a_ + "v up"));
  EXPECT_TRUE(wait_until([&] { return Nodes() == 2; }, 30'000, 250))
      << testing::read_file(dir_.file("a.log"));
}

}  // namespace
}  // namespace zgrid
