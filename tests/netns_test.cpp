// A grid across hosts on this machine: network namespaces made by the test
// (addresses of its own, nothing leaves the machine), a node cut off from the
// head by taking its link down, then brought back.
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

#include "services/factorize_kernel.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using testing::Process;
using testing::wait_until;

bool Sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

// Two hosts, "h" (head + a local node) and "n" (a remote node), joined by a veth pair.
class TwoHosts : public ::testing::Test {
 protected:
  void SetUp() override {
    bool ci = std::getenv("CI") && std::string(std::getenv("CI")) == "true";
    std::string tag = std::to_string(getpid() % 100000);
    h_ = "zgt" + tag + "h";
    n_ = "zgt" + tag + "n";
    // 10.213.x.y/30: a private pair that only exists between the two namespaces.
    int net = getpid() % 250;
    addr_h_ = "10.213." + std::to_string(net) + ".1";
    addr_n_ = "10.213." + std::to_string(net) + ".2";
    bool ok = geteuid() == 0 && Sh("ip netns add " + h_) && Sh("ip netns add " + n_) &&
              Sh("ip link add " + h_ + "v type veth peer name " + n_ + "v") &&
              Sh("ip link set " + h_ + "v netns " + h_) &&
              Sh("ip link set " + n_ + "v netns " + n_) &&
              Sh("ip -n " + h_ + " addr add " + addr_h_ + "/30 dev " + h_ + "v") &&
              Sh("ip -n " + n_ + " addr add " + addr_n_ + "/30 dev " + n_ + "v") &&
              Sh("ip -n " + h_ + " link set lo up") && Sh("ip -n " + n_ + " link set lo up") &&
              Sh("ip -n " + h_ + " link set " + h_ + "v up") &&
              Sh("ip -n " + n_ + " link set " + n_ + "v up");
    made_ = true;
    if (!ok) {
      if (ci) FAIL() << "cannot create network namespaces (needs root and iproute2)";
      GTEST_SKIP() << "needs root to create network namespaces";
    }
  }
  void TearDown() override {
    procs_.clear();  // SIGKILL and reap every process we started, by PID
    if (made_) {
      Sh("ip netns del " + h_);
      Sh("ip netns del " + n_);
    }
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
  std::string h_, n_, addr_h_, addr_n_;
  bool made_ = false;
  std::vector<std::unique_ptr<Process>> procs_;
};

TEST_F(TwoHosts, NodeCutOffByTheNetworkLosesNothingAndComesBack) {
  std::string backend = "tcp://" + addr_h_ + ":5556";
  Start(h_,
        {ZGRID_HEAD_BIN, "--frontend", "tcp://" + addr_h_ + ":5555", "--backend", backend,
         "--data-dir", dir_.file("data"), "--heartbeat", "250ms", "--heartbeat-misses", "3"},
        "head.log");
  Start(n_, {ZGRID_NODE_BIN, "--head", backend, "--workers", "2", "--node-id", "remote"},
        "remote.log");
  ASSERT_TRUE(wait_until([&] { return Nodes() == 1; }, 15'000, 200))
      << testing::read_file(dir_.file("head.log"));

  // A durable batch of 400 x 20 ms, all on the remote node at first.
  std::string in;
  for (int i = 0; i < 400; ++i) in += "20\n";
  {
    std::ofstream f(dir_.file("in"));
    f << in;
  }
  auto r = Cli({"submit", "--durable", "--service", "sleep", "--file", dir_.file("in")});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, 32);
  // Cut the remote host off mid-run; a local node takes over.
  ASSERT_TRUE(Sh("ip -n " + n_ + " link set " + n_ + "v down"));
  Start(h_, {ZGRID_NODE_BIN, "--head", backend, "--workers", "2", "--node-id", "local"},
        "local.log");
  auto f = Cli({"fetch", sid}, 120'000);
  EXPECT_EQ(f.code, 0) << f.err;
  std::istringstream lines(f.out);
  std::string line;
  std::size_t ok = 0;
  while (std::getline(lines, line)) ok += line == "20 = 20";
  EXPECT_EQ(ok, 400u) << f.out.substr(0, 500);
  std::string head_log = testing::read_file(dir_.file("head.log"));
  EXPECT_NE(head_log.find("node lost node=remote"), std::string::npos) << head_log;
  // The link comes back: the remote node registers again by itself.
  ASSERT_TRUE(Sh("ip -n " + n_ + " link set " + n_ + "v up"));
  EXPECT_TRUE(wait_until([&] { return Nodes() == 2; }, 30'000, 250))
      << testing::read_file(dir_.file("remote.log"));
}

}  // namespace
}  // namespace zgrid
