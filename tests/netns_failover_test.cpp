// Failover across hosts on this machine (docs/operations.md, "Failover"):
// two heads, each in a network namespace of its own acting as a host, on one
// shared data directory; nodes and the CLI on a third host, given both heads.
// SIGKILL of the active head during a million-request durable submit and
// again during its fetch; a machine lost without a crash (SIGSTOP and its
// link down), which comes back and stands down without writing; ten
// takeovers in a row under load; a takeover with CURVE on.
//
// Needs root (ip netns). Skips otherwise, except under CI=true, where it
// must run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "common/curve.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using testing::Process;
using testing::read_file;
using testing::wait_until;

bool Sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

std::string Numbers(std::uint64_t first, std::size_t n) {
  std::string s;
  s.reserve(n * 12);
  for (std::size_t i = 0; i < n; ++i) s += std::to_string(first + i) + "\n";
  return s;
}

// Each of first..first+n-1 answered exactly once in a fetch's output, with
// a factorization that multiplies back. Returns what is wrong ("" if none).
std::string CheckExactlyOnce(const std::string& out, std::uint64_t first, std::size_t n) {
  std::vector<std::uint8_t> seen(n, 0);
  std::istringstream in(out);
  std::string line;
  std::size_t lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    auto eq = line.find(" = ");
    if (eq == std::string::npos) return "not a result: " + line;
    std::uint64_t v = std::strtoull(line.c_str(), nullptr, 10);
    if (v < first || v >= first + n) return "not asked: " + line;
    if (!testing::is_factorization(v, std::string_view(line).substr(eq + 3)))
      return "wrong: " + line;
    if (seen[v - first]++) return "twice: " + line;
  }
  if (lines != n) return std::to_string(lines) + " results for " + std::to_string(n) + " requests";
  return "";
}

// Every journal file with its size and modification time.
std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> JournalFiles(const std::string& d) {
  std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> out;
  for (const char* sub : {"/journal", "/segments"}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(d + sub, ec)) {
      struct stat st {};
      if (::stat(e.path().c_str(), &st) != 0) continue;
      out[e.path().string()] = {static_cast<std::uintmax_t>(st.st_size),
                                st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
    }
  }
  return out;
}

// Hosts "1" and "2" (a head each) and "w" (nodes and the user's shell) on a
// bridge in a fourth namespace.
class FailoverHosts : public ::testing::Test {
 protected:
  void SetUp() override {
    bool ci = std::getenv("CI") && std::string(std::getenv("CI")) == "true";
    std::string tag = std::to_string(getpid() % 100000);
    sw_ = "zgf" + tag + "s";
    ns_[0] = "zgf" + tag + "1";
    ns_[1] = "zgf" + tag + "2";
    w_ = "zgf" + tag + "w";
    std::string net = "10.214." + std::to_string(getpid() % 250) + ".";
    addr_[0] = net + "1";
    addr_[1] = net + "2";
    addr_w_ = net + "3";
    bool ok = geteuid() == 0 && Sh("ip netns add " + sw_) &&
              Sh("ip -n " + sw_ + " link add br0 type bridge") &&
              Sh("ip -n " + sw_ + " link set br0 up");
    for (const auto& [ns, addr] :
         {std::pair{ns_[0], addr_[0]}, {ns_[1], addr_[1]}, {w_, addr_w_}}) {
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
    for (auto& h : heads_) h.reset();
    procs_.clear();  // SIGKILL and reap every process we started, by PID
    if (made_)
      for (const auto& ns : {ns_[0], ns_[1], w_, sw_}) Sh("ip netns del " + ns);
  }

  std::string data() const { return dir_.file("data"); }
  std::string frontends() const {
    return "tcp://" + addr_[0] + ":5555,tcp://" + addr_[1] + ":5555";
  }
  std::string backends() const { return "tcp://" + addr_[0] + ":5556,tcp://" + addr_[1] + ":5556"; }
  std::string ep_file(int i) const { return dir_.file("head" + std::to_string(i) + ".endpoints"); }

  std::unique_ptr<Process> InNs(const std::string& ns, std::vector<std::string> argv,
                                const std::string& log) {
    argv.insert(argv.begin(), {"/usr/sbin/ip", "netns", "exec", ns});
    return std::make_unique<Process>(argv, dir_.file(log));
  }
  // (Re)starts head i (0 or 1) on its host; with `wait`, waits until it
  // wrote its endpoints.
  void StartHead(int i, bool wait = true) {
    heads_[i].reset();
    std::remove(ep_file(i).c_str());
    std::vector<std::string> argv{ZGRID_HEAD_BIN,
                                  "--frontend",
                                  "tcp://" + addr_[i] + ":5555",
                                  "--backend",
                                  "tcp://" + addr_[i] + ":5556",
                                  "--data-dir",
                                  data(),
                                  "--endpoints-file",
                                  ep_file(i),
                                  "--http",
                                  "off"};
    argv.insert(argv.end(), head_flags_.begin(), head_flags_.end());
    heads_[i] = InNs(ns_[i], argv, "head" + std::to_string(i) + ".log");
    if (wait) WaitStarted(i);
  }
  void WaitStarted(int i) {
    ASSERT_TRUE(
        wait_until([&] { return read_file(ep_file(i)).find("pid=") != std::string::npos; }, 10'000))
        << HeadLog(i);
  }
  std::string Role(int i) {
    if (!heads_[i] || !heads_[i]->running()) return "";
    std::string s = read_file(ep_file(i));
    auto p = s.find("role=");
    return p == std::string::npos ? "" : s.substr(p + 5, s.find('\n', p) - p - 5);
  }
  bool WaitRole(int i, const std::string& role, Millis timeout) {
    return wait_until([&] { return Role(i) == role; }, timeout, 10);
  }
  int Active() { return Role(0) == "active" ? 0 : Role(1) == "active" ? 1 : -1; }
  std::string HeadLog(int i) { return read_file(dir_.file("head" + std::to_string(i) + ".log")); }
  void StartNodes(int n, const std::vector<std::string>& extra = {}) {
    for (int k = 0; k < n; ++k) {
      std::string id = std::to_string(k);
      std::vector<std::string> argv{ZGRID_NODE_BIN, "--head", backends(), "--workers", "2"};
      argv.push_back("--node-id");
      argv.push_back("w" + id);
      argv.insert(argv.end(), extra.begin(), extra.end());
      procs_.push_back(InNs(w_, argv, "node" + id + ".log"));
    }
  }
  // The CLI on host w, like a user logged in there; stdout to `out`.
  std::unique_ptr<Process> CliBg(std::vector<std::string> args, const std::string& out,
                                 const std::string& in = "") {
    std::string cmd = std::string("exec ") + ZGRID_CLI_BIN + " --head '" + frontends() + "'";
    for (const auto& a : cli_flags_) cmd += " '" + a + "'";
    for (const auto& a : args) cmd += " '" + a + "'";
    if (!in.empty()) cmd += " <" + in;
    cmd += " >" + dir_.file(out);
    return InNs(w_, {"/bin/sh", "-c", cmd}, out + ".err");
  }
  testing::CliResult Cli(std::vector<std::string> args, Millis timeout = 60'000) {
    auto p = CliBg(std::move(args), "cli.out");
    testing::CliResult r;
    r.code = p->wait(timeout);
    r.out = read_file(dir_.file("cli.out"));
    r.err = read_file(dir_.file("cli.out.err"));
    return r;
  }
  std::size_t Nodes() {
    auto r = Cli({"nodes", "--json"}, 10'000);
    std::size_t n = 0;
    for (std::size_t p = 0; (p = r.out.find("node_id", p)) != std::string::npos; ++p) ++n;
    return n;
  }
  // Lines in a file being written.
  std::size_t Lines(const std::string& file) {
    std::ifstream f(dir_.file(file));
    return static_cast<std::size_t>(
        std::count(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>(), '\n'));
  }
  std::string WriteInput(const std::string& name, std::uint64_t first, std::size_t n) {
    std::ofstream f(dir_.file(name));
    f << Numbers(first, n);
    return dir_.file(name);
  }

  testing::TempDir dir_;
  std::string sw_, ns_[2], w_, addr_[2], addr_w_;
  bool made_ = false;
  std::unique_ptr<Process> heads_[2];
  std::vector<std::unique_ptr<Process>> procs_;
  std::vector<std::string> head_flags_, cli_flags_;
};

// A million-request durable submit, its head SIGKILLed midway; then its
// fetch, the other head SIGKILLed midway. Each command runs once and
// finishes by itself; every request is answered exactly once.
TEST_F(FailoverHosts, KilledDuringAMillionRequestSubmitAndAgainDuringItsFetch) {
  StartHead(0);
  ASSERT_TRUE(WaitRole(0, "active", 5'000)) << HeadLog(0);
  StartHead(1);
  ASSERT_EQ(Role(1), "standby") << HeadLog(1);
  StartNodes(2);
  ASSERT_TRUE(wait_until([&] { return Nodes() == 2; }, 20'000, 200)) << HeadLog(0);
  constexpr std::size_t kN = 1'000'000;
  constexpr std::uint64_t kFirst = 3'000'000'000ull;
  std::string in = WriteInput("in", kFirst, kN);
  auto submit = CliBg({"submit", "--durable", "--quiet", "--service", "factorize", "--file", in},
                      "submit.out");
  // Midway: the head has journaled part of it.
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = Cli({"status", "--json"}, 10'000);
        auto p = r.out.find("\"done\": ");
        return p != std::string::npos && std::stoull(r.out.substr(p + 8)) >= 100'000;
      },
      60'000, 50))
      << read_file(dir_.file("submit.out.err"));
  ASSERT_TRUE(submit->running()) << "the submit ended before the head could be killed";
  heads_[0]->kill_now();
  ASSERT_TRUE(WaitRole(1, "active", 10'000)) << HeadLog(1);
  StartHead(0);  // the machine is back: a standby
  EXPECT_EQ(Role(0), "standby") << HeadLog(0);
  ASSERT_EQ(submit->wait(300'000), 0) << read_file(dir_.file("submit.out.err"));
  std::string sid = read_file(dir_.file("submit.out")).substr(0, 32);
  auto fetch = CliBg({"fetch", sid}, "fetch.out");
  ASSERT_TRUE(
      wait_until([&] { return Lines("fetch.out") >= 200'000 || !fetch->running(); }, 300'000, 50));
  ASSERT_TRUE(fetch->running()) << "the fetch ended before the head could be killed";
  heads_[1]->kill_now();
  ASSERT_TRUE(WaitRole(0, "active", 10'000)) << HeadLog(0);
  EXPECT_EQ(fetch->wait(300'000), 0) << read_file(dir_.file("fetch.out.err"));
  EXPECT_EQ(CheckExactlyOnce(read_file(dir_.file("fetch.out")), kFirst, kN), "");
}

// The active head's machine lost without a crash: the head frozen
// (SIGSTOP) and its link down. The standby takes over and finishes the
// session. The old machine comes back: its head stands down at once without
// a single journal write, and no result is doubled.
TEST_F(FailoverHosts, AMachineLostWithoutACrashComesBackAndStandsDownWithoutWriting) {
  StartHead(0);
  ASSERT_TRUE(WaitRole(0, "active", 5'000)) << HeadLog(0);
  StartHead(1);
  StartNodes(2);
  ASSERT_TRUE(wait_until([&] { return Nodes() == 2; }, 20'000, 200)) << HeadLog(0);
  constexpr std::size_t kN = 200'000;
  constexpr std::uint64_t kFirst = 7'000'000'000ull;
  std::string in = WriteInput("in", kFirst, kN);
  auto r = Cli({"submit", "--durable", "--quiet", "--service", "factorize", "--file", in}, 120'000);
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, 32);
  auto fetch = CliBg({"fetch", sid}, "fetch.out");
  ASSERT_TRUE(wait_until([&] { return Lines("fetch.out") >= 20'000; }, 120'000, 20));
  Millis t0 = SteadyClock::instance().now_ms();
  heads_[0]->signal(SIGSTOP);
  ASSERT_TRUE(Sh("ip -n " + ns_[0] + " link set " + ns_[0] + "v down"));
  ASSERT_TRUE(WaitRole(1, "active", 10'000)) << HeadLog(1);
  Millis took = SteadyClock::instance().now_ms() - t0;
  EXPECT_LE(took, 5'000);
  EXPECT_EQ(fetch->wait(300'000), 0) << read_file(dir_.file("fetch.out.err"));
  EXPECT_EQ(CheckExactlyOnce(read_file(dir_.file("fetch.out")), kFirst, kN), "");
  // Everything done: the new head is idle and its journal still.
  auto still = JournalFiles(data());
  ASSERT_TRUE(wait_until(
      [&] {
        auto now = JournalFiles(data());
        bool same = now == still;
        still = now;
        return same;
      },
      20'000, 500));
  ASSERT_TRUE(Sh("ip -n " + ns_[0] + " link set " + ns_[0] + "v up"));
  heads_[0]->signal(SIGCONT);
  EXPECT_EQ(heads_[0]->wait(10'000), 2) << HeadLog(0);
  EXPECT_NE(HeadLog(0).find("standing down"), std::string::npos) << HeadLog(0);
  EXPECT_EQ(JournalFiles(data()), still) << "the old head wrote after it lost its lease";
  auto again = Cli({"fetch", sid}, 120'000);
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(CheckExactlyOnce(again.out, kFirst, kN), "");
}

// Ten takeovers in a row, alternating heads, while clients submit and
// fetch durable sessions one after another: every session exact.
TEST_F(FailoverHosts, TenTakeoversInARowUnderLoadLoseAndDoubleNothing) {
  StartHead(0);
  ASSERT_TRUE(WaitRole(0, "active", 5'000)) << HeadLog(0);
  StartHead(1);
  StartNodes(2);
  ASSERT_TRUE(wait_until([&] { return Nodes() == 2; }, 20'000, 200)) << HeadLog(0);
  std::atomic<bool> done{false};
  std::atomic<int> sessions{0};
  std::string failure;
  std::thread load([&] {
    for (int k = 0; !done.load() && failure.empty(); ++k) {
      std::uint64_t first = 10'000'000'000ull + static_cast<std::uint64_t>(k) * 1'000'000;
      constexpr std::size_t kN = 30'000;
      std::string in = WriteInput("load" + std::to_string(k), first, kN);
      auto s = CliBg({"submit", "--durable", "--quiet", "--service", "factorize", "--file", in},
                     "load.out");
      int code = s->wait(300'000);
      if (code != 0) {
        failure = "submit " + std::to_string(k) + " exit " + std::to_string(code) + ": " +
                  read_file(dir_.file("load.out.err"));
        break;
      }
      std::string sid = read_file(dir_.file("load.out")).substr(0, 32);
      auto f = CliBg({"fetch", sid}, "loadf.out");
      code = f->wait(300'000);
      if (code != 0) {
        failure = "fetch " + std::to_string(k) + " exit " + std::to_string(code) + ": " +
                  read_file(dir_.file("loadf.out.err"));
        break;
      }
      std::string bad = CheckExactlyOnce(read_file(dir_.file("loadf.out")), first, kN);
      if (!bad.empty()) {
        failure = "session " + std::to_string(k) + ": " + bad;
        break;
      }
      sessions.fetch_add(1);
    }
  });
  for (int t = 0; t < 10 && failure.empty(); ++t) {
    int active = Active();
    ASSERT_GE(active, 0) << HeadLog(0) << HeadLog(1);
    int other = 1 - active;
    ASSERT_EQ(Role(other), "standby");
    // A few seconds of work on this head before it dies.
    int before = sessions.load();
    wait_until([&] { return sessions.load() > before; }, 3'000, 20);
    heads_[active]->kill_now();
    ASSERT_TRUE(WaitRole(other, "active", 10'000)) << HeadLog(other);
    StartHead(active);
    ASSERT_TRUE(WaitRole(active, "standby", 5'000)) << HeadLog(active);
  }
  // The load finishes the session under way.
  int seen = sessions.load();
  ASSERT_TRUE(wait_until([&] { return sessions.load() > seen || !failure.empty(); }, 300'000, 50));
  done = true;
  load.join();
  EXPECT_EQ(failure, "");
  EXPECT_GE(sessions.load(), 2);
}

// Two hosts start their heads at the same moment: exactly one is active.
// Then the standby's host loses its head (SIGKILL): the active head serves
// on, unaffected.
TEST_F(FailoverHosts, OfTwoHeadsStartedAtOnceOneIsActiveAndAKilledStandbyChangesNothing) {
  for (int round = 0; round < 3; ++round) {
    std::filesystem::remove_all(data());
    StartHead(0, /*wait=*/false);
    StartHead(1, /*wait=*/false);
    WaitStarted(0);
    WaitStarted(1);
    std::set<std::string> roles{Role(0), Role(1)};
    ASSERT_EQ(roles, (std::set<std::string>{"active", "standby"})) << HeadLog(0) << HeadLog(1);
  }
  int active = Active();
  int standby = 1 - active;
  StartNodes(1);
  ASSERT_TRUE(wait_until([&] { return Nodes() == 1; }, 20'000, 200)) << HeadLog(active);
  heads_[standby]->kill_now();
  std::string in = WriteInput("in", 1'000'000, 5'000);
  auto r = Cli({"submit", "--durable", "--quiet", "--service", "factorize", "--file", in});
  ASSERT_EQ(r.code, 0) << r.err;
  auto f = Cli({"fetch", r.out.substr(0, 32)});
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(CheckExactlyOnce(f.out, 1'000'000, 5'000), "");
  EXPECT_EQ(Role(active), "active");
  EXPECT_EQ(HeadLog(active).find("standing down"), std::string::npos);
}

// CURVE on: both heads hold the same server key and authorized keys. A
// takeover works for listed clients and nodes; an unlisted key is admitted
// by neither head, before or after.
TEST_F(FailoverHosts, WithCurveATakeoverWorksAndNoHeadAdmitsAnUnlistedKey) {
  for (const char* d : {"clients", "nodes"}) std::filesystem::create_directories(dir_.file(d));
  std::map<std::string, curve::KeyPair> keys;
  for (const char* n : {"head", "alice", "node1", "mallory"}) {
    auto kp = curve::generate();
    ASSERT_TRUE(kp.ok());
    keys[n] = *kp;
    ASSERT_TRUE(curve::write_pair(dir_.path(), n, *kp, false).ok());
  }
  std::filesystem::copy_file(dir_.file("alice.pub"), dir_.file("clients/alice.pub"));
  std::filesystem::copy_file(dir_.file("node1.pub"), dir_.file("nodes/node1.pub"));
  head_flags_ = {"--curve-secret",     dir_.file("head.key"), "--authorized-clients",
                 dir_.file("clients"), "--authorized-nodes",  dir_.file("nodes")};
  StartHead(0);
  ASSERT_TRUE(WaitRole(0, "active", 5'000)) << HeadLog(0);
  StartHead(1);
  ASSERT_EQ(Role(1), "standby") << HeadLog(1);
  StartNodes(1, {"--head-key", dir_.file("head.pub"), "--key", dir_.file("node1.key")});
  cli_flags_ = {"--head-key", dir_.file("head.pub"), "--key", dir_.file("alice.key")};
  ASSERT_TRUE(wait_until([&] { return Nodes() == 1; }, 20'000, 200)) << HeadLog(0);
  std::string in = WriteInput("in", 1000, 2000);
  auto r = Cli({"submit", "--durable", "--quiet", "--service", "factorize", "--file", in});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, 32);
  heads_[0]->kill_now();
  ASSERT_TRUE(WaitRole(1, "active", 10'000)) << HeadLog(1);
  auto f = Cli({"fetch", sid}, 120'000);
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(CheckExactlyOnce(f.out, 1000, 2000), "");
  StartHead(0);
  ASSERT_EQ(Role(0), "standby");
  // Mallory is listed nowhere: refused by the active head and the standby.
  cli_flags_ = {"--head-key", dir_.file("head.pub"), "--key", dir_.file("mallory.key"), "--timeout",
                "3s"};
  auto m = Cli({"status"}, 30'000);
  EXPECT_EQ(m.code, 2);
  // The heads table says each refused the key; no status of the grid.
  EXPECT_EQ(m.out.find("active"), std::string::npos) << m.out;
  EXPECT_EQ(m.out.find("nodes:"), std::string::npos) << m.out;
  for (int i = 0; i < 2; ++i)
    EXPECT_NE(m.out.find("tcp://" + addr_[i] + ":5555  no answer"), std::string::npos) << m.out;
  for (int i = 0; i < 2; ++i) {
    std::string cmd = std::string("exec ") + ZGRID_CLI_BIN + " --head tcp://" + addr_[i] +
                      ":5555 --head-key " + dir_.file("head.pub") + " --key " +
                      dir_.file("mallory.key") + " --timeout 3s status";
    auto p = InNs(w_, {"/bin/sh", "-c", cmd + " >" + dir_.file("m.out")}, "m.err");
    EXPECT_EQ(p->wait(30'000), 2) << i;
    EXPECT_EQ(read_file(dir_.file("m.out")), "") << i;
    EXPECT_NE(read_file(dir_.file("m.err")).find("unauthenticated: the head refused this key"),
              std::string::npos)
        << i << ": " << read_file(dir_.file("m.err"));
  }
}

}  // namespace
}  // namespace zgrid
