// Failover on one machine (docs/operations.md, "Failover"): heads sharing
// one data directory, one active and the others standby, with real
// processes on loopback. What a standby answers, who wins a race to start,
// takeover after SIGKILL with the journal recovered, a frozen head that
// stands down without writing, a clean stop that hands over at once, and the
// offline purge that respects a running head.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/zmq_util.hpp"
#include "services/factorize_kernel.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using testing::HeadProcess;
using testing::Process;
using testing::run_cli;
using testing::TempDir;
using testing::wait_until;

// One request/reply with a head, over a DEALER of its own: the raw protocol.
struct Raw {
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::dealer};
  explicit Raw(const std::string& ep) {
    sock.set(zmq::sockopt::linger, 0);
    sock.connect(ep);
  }
  // The reply's frame, or an empty one after 5 s.
  zmq::message_t call(zmq::message_t req) {
    (void)sock.send(req, zmq::send_flags::none);
    zmq::pollitem_t item{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0};
    zmq::message_t rep;
    if (zmq::poll(&item, 1, std::chrono::milliseconds(5000)) > 0)
      (void)sock.recv(rep, zmq::recv_flags::none);
    return rep;
  }
};

// Every file of the journal (LevelDB and segment files) with its size and
// modification time: equal snapshots mean nothing was written.
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

std::string Numbers(std::uint64_t first, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += std::to_string(first + i) + "\n";
  return s;
}

// Every line "N = factors" of a fetch, checked: each N of the input exactly
// once, each factorization multiplying back.
void ExpectExactlyOnce(const std::string& out, std::uint64_t first, std::size_t n) {
  std::multiset<std::uint64_t> seen;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find(" = ");
    ASSERT_NE(eq, std::string::npos) << line;
    std::uint64_t v = std::stoull(line.substr(0, eq));
    EXPECT_TRUE(testing::is_factorization(v, line.substr(eq + 3))) << line;
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), n);
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(seen.count(first + i), 1u) << first + i;
}

class Failover : public ::testing::Test {
 protected:
  std::string data() const { return dir_.file("data"); }
  std::unique_ptr<HeadProcess> Head(const std::string& name, std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"--http", "off", "--heartbeat", "250ms"});
    return std::make_unique<HeadProcess>(dir_, name, data(), extra);
  }
  std::unique_ptr<Process> Node(const std::string& backend, const std::string& log) {
    return std::make_unique<Process>(
        std::vector<std::string>{ZGRID_NODE_BIN, "--head", backend, "--workers", "2"},
        dir_.file(log));
  }
  TempDir dir_;
};

TEST_F(Failover, AStandbyAnswersStatusAndNamesTheActiveHeadToEverythingElse) {
  auto a = Head("a");
  a->start();
  ASSERT_TRUE(a->wait_role("active", 5'000)) << a->log();
  auto b = Head("b");
  b->start();
  EXPECT_EQ(b->role(), "standby") << b->log();
  EXPECT_EQ(a->epoch(), 1u);

  Raw raw(b->frontend());
  {
    zmq::message_t rep = raw.call(proto::encode_query(proto::kStatus, 7, ""));
    Envelope env;
    ASSERT_TRUE(decode_envelope(rep.data(), rep.size(), &env).ok());
    ASSERT_EQ(env.type, proto::kStatusReply);
    EXPECT_EQ(env.corr, 7u);
    proto::GridStatus g;
    ASSERT_TRUE(proto::decode_grid_status(env, &g).ok());
    EXPECT_EQ(g.role, "standby");
    EXPECT_EQ(g.epoch, 1u);
    EXPECT_EQ(g.active, a->frontend());
    EXPECT_EQ(g.sessions, 0u);
  }
  for (int which = 0; which < 2; ++which) {
    zmq::message_t rep = raw.call(which == 0 ? proto::encode_hello(8, "test")
                                             : proto::encode_query(proto::kSessions, 8, ""));
    Envelope env;
    ASSERT_TRUE(decode_envelope(rep.data(), rep.size(), &env).ok());
    ASSERT_EQ(env.type, proto::kError);
    EXPECT_EQ(env.corr, 8u);
    proto::Error e;
    ASSERT_TRUE(proto::decode_error(env, &e).ok());
    EXPECT_EQ(e.code, Code::kNotActive);
    EXPECT_EQ(e.epoch, 1u);
    EXPECT_EQ(e.active_frontend, a->frontend());
    EXPECT_EQ(e.active_backend, a->backend());
    EXPECT_NE(e.message.find("standby"), std::string::npos) << e.message;
  }
  // A node registering with the standby is told where to go.
  Raw node(b->backend());
  proto::Register r;
  r.node_id = "n1";
  r.host = "h";
  r.pid = 1;
  r.workers = 1;
  r.capacity = 1;
  r.services = {"factorize@1"};
  zmq::message_t rep = node.call(proto::encode_register(9, r));
  Envelope env;
  ASSERT_TRUE(decode_envelope(rep.data(), rep.size(), &env).ok());
  ASSERT_EQ(env.type, proto::kError);
  proto::Error e;
  ASSERT_TRUE(proto::decode_error(env, &e).ok());
  EXPECT_EQ(e.code, Code::kNotActive);
  EXPECT_EQ(e.active_backend, a->backend());
  // The active head says its epoch.
  Raw to_a(a->frontend());
  rep = to_a.call(proto::encode_hello(3, "test"));
  ASSERT_TRUE(decode_envelope(rep.data(), rep.size(), &env).ok());
  proto::HelloOk ok;
  ASSERT_TRUE(proto::decode_hello_ok(env, &ok).ok());
  EXPECT_EQ(ok.epoch, 1u);
}

TEST_F(Failover, OfTwoHeadsStartedAtOnceExactlyOneIsActive) {
  for (int round = 0; round < 4; ++round) {
    std::filesystem::remove_all(data());
    auto a = Head("a" + std::to_string(round));
    auto b = Head("b" + std::to_string(round));
    a->start(/*wait=*/false);
    b->start(/*wait=*/false);
    ASSERT_TRUE(a->wait_started(10'000)) << a->log();
    ASSERT_TRUE(b->wait_started(10'000)) << b->log();
    std::set<std::string> roles{a->role(), b->role()};
    EXPECT_EQ(roles, (std::set<std::string>{"active", "standby"})) << a->log() << "\n---\n"
                                                                   << b->log();
    EXPECT_EQ(a->epoch(), 1u);
    EXPECT_EQ(b->epoch(), 1u);
  }
}

TEST_F(Failover, AKilledStandbyLeavesTheActiveHeadServing) {
  auto a = Head("a");
  a->start();
  ASSERT_TRUE(a->wait_role("active", 5'000));
  auto b = Head("b");
  b->start();
  ASSERT_EQ(b->role(), "standby");
  auto n = Node(a->backend(), "node.log");
  b->kill_now();
  auto r = run_cli(
      {"--head", a->frontend(), "submit", "--durable", "--service", "factorize", "--file", "-"},
      Numbers(1000, 300));
  ASSERT_EQ(r.code, 0) << r.err;
  auto f = run_cli({"--head", a->frontend(), "fetch", r.out.substr(0, 32)});
  ASSERT_EQ(f.code, 0) << f.err;
  ExpectExactlyOnce(f.out, 1000, 300);
  EXPECT_EQ(a->role(), "active");
  EXPECT_EQ(a->epoch(), 1u);
}

// SIGKILL of the active head with a durable session half done: the standby
// takes over, recovers the journal, and the session finishes there with
// every request answered once.
TEST_F(Failover, TheStandbyTakesOverAKilledHeadAndFinishesItsDurableSession) {
  auto a = Head("a");
  a->start();
  ASSERT_TRUE(a->wait_role("active", 5'000));
  auto b = Head("b");
  b->start();
  ASSERT_EQ(b->role(), "standby");
  constexpr std::size_t kN = 20'000;
  constexpr std::uint64_t kFirst = 1'000'000'007;
  auto r = run_cli(
      {"--head", a->frontend(), "submit", "--durable", "--service", "factorize", "--file", "-"},
      Numbers(kFirst, kN));
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, 32);
  // Some work done by A, the rest journaled and waiting.
  auto na = Node(a->backend(), "node-a.log");
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = run_cli({"--head", a->frontend(), "status", sid, "--json"}, "", 5'000);
        auto p = s.out.find("\"done\":");
        return p != std::string::npos && std::stoull(s.out.substr(p + 7)) >= 200;
      },
      20'000, 20));
  Millis t0 = SteadyClock::instance().now_ms();
  a->kill_now();
  na->kill_now();
  ASSERT_TRUE(b->wait_role("active", 10'000)) << b->log();
  Millis took = SteadyClock::instance().now_ms() - t0;
  EXPECT_LT(took, 5'000) << b->log();
  EXPECT_EQ(b->epoch(), 2u);
  EXPECT_NE(b->log().find("taken over from"), std::string::npos) << b->log();
  auto nb = Node(b->backend(), "node-b.log");
  auto f = run_cli({"--head", b->frontend(), "fetch", sid}, "", 120'000);
  ASSERT_EQ(f.code, 0) << f.err;
  ExpectExactlyOnce(f.out, kFirst, kN);
  // The status says who is who.
  auto st = run_cli({"--head", b->frontend(), "status", "--json"});
  EXPECT_NE(st.out.find("\"role\": \"active\""), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("\"takeovers\": 1"), std::string::npos) << st.out;
}

// A head frozen (SIGSTOP) while a client streams a durable batch at it: the
// standby takes over; woken, the old head finds its lease gone and exits
// before handling what waited in its sockets — not one journal write.
TEST_F(Failover, AFrozenHeadThatComesBackStandsDownWithoutWriting) {
  auto a = Head("a");
  a->start();
  ASSERT_TRUE(a->wait_role("active", 5'000));
  auto b = Head("b");
  b->start();
  ASSERT_EQ(b->role(), "standby");
  std::string in = dir_.file("in");
  {
    std::ofstream f(in);
    f << Numbers(5'000'000, 400'000);
  }
  Process submit({ZGRID_CLI_BIN, "--head", a->frontend(), "--timeout", "60s", "submit", "--durable",
                  "--service", "factorize", "--file", in},
                 dir_.file("submit.log"));
  // Let the stream start: the journal grows.
  auto before = JournalFiles(data());
  ASSERT_TRUE(wait_until([&] { return JournalFiles(data()) != before; }, 10'000, 10));
  a->process().signal(SIGSTOP);
  ASSERT_TRUE(b->wait_role("active", 10'000)) << b->log();
  // B is idle once recovered: its journal stops changing.
  auto frozen = JournalFiles(data());
  ASSERT_TRUE(wait_until(
      [&] {
        auto now = JournalFiles(data());
        bool same = now == frozen;
        frozen = now;
        return same;
      },
      10'000, 300));
  a->process().signal(SIGCONT);
  EXPECT_EQ(a->process().wait(10'000), 2) << a->log();
  EXPECT_EQ(JournalFiles(data()), frozen) << "the old head wrote after it lost its lease";
  std::string log = a->log();
  EXPECT_NE(log.find("standing down"), std::string::npos) << log;
  EXPECT_EQ(b->role(), "active");
  submit.kill_now();
}

// Frozen past its lease with no other head to take over: it renews when it
// wakes and serves on, its durable session intact.
TEST_F(Failover, AHeadFrozenWithNoStandbyRenewsAndServesOn) {
  auto a = Head("a", {"--lease-timeout", "600ms", "--lease-renew", "100ms"});
  a->start();
  ASSERT_TRUE(a->wait_role("active", 5'000));
  auto n = Node(a->backend(), "node.log");
  auto r = run_cli(
      {"--head", a->frontend(), "submit", "--durable", "--service", "factorize", "--file", "-"},
      Numbers(500, 100));
  ASSERT_EQ(r.code, 0) << r.err;
  a->process().signal(SIGSTOP);
  // Three lease timeouts, measured by the lease's own clock.
  Millis t0 = SteadyClock::instance().now_ms();
  wait_until([&] { return SteadyClock::instance().now_ms() - t0 >= 1'800; }, 5'000, 50);
  a->process().signal(SIGCONT);
  auto f = run_cli({"--head", a->frontend(), "fetch", r.out.substr(0, 32)});
  ASSERT_EQ(f.code, 0) << f.err << a->log();
  ExpectExactlyOnce(f.out, 500, 100);
  EXPECT_TRUE(a->running());
  EXPECT_NE(a->log().find("no other head claimed it: renewed"), std::string::npos) << a->log();
}

TEST_F(Failover, ACleanStopHandsTheLeaseOverAtOnce) {
  auto a = Head("a", {"--lease-timeout", "30s", "--lease-renew", "1s"});
  a->start();
  ASSERT_TRUE(a->wait_role("active", 5'000));
  auto b = Head("b", {"--lease-timeout", "30s", "--lease-renew", "1s"});
  b->start();
  ASSERT_EQ(b->role(), "standby");
  a->process().signal(SIGTERM);
  EXPECT_EQ(a->process().wait(10'000), 0) << a->log();
  // Far sooner than the 30 s lease timeout: the lease was released.
  EXPECT_TRUE(b->wait_role("active", 5'000)) << b->log();
  EXPECT_NE(b->log().find("released it"), std::string::npos) << b->log();
}

TEST_F(Failover, TheOfflinePurgeWaitsForNoHead) {
  auto a = Head("a");
  a->start();
  ASSERT_TRUE(a->wait_role("active", 5'000));
  auto r = run_cli(
      {"--head", a->frontend(), "submit", "--durable", "--service", "factorize", "--file", "-"},
      Numbers(10, 10));
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, 32);
  Process purge({ZGRID_HEAD_BIN, "--data-dir", data(), "--purge-session", sid},
                dir_.file("purge.log"));
  EXPECT_EQ(purge.wait(10'000), 2);
  EXPECT_NE(testing::read_file(dir_.file("purge.log")).find("in use by a running head"),
            std::string::npos)
      << testing::read_file(dir_.file("purge.log"));
  a->kill_now();  // its lease is left behind, its process gone: taken at once
  Process purge2({ZGRID_HEAD_BIN, "--data-dir", data(), "--purge-session", sid},
                 dir_.file("purge2.log"));
  EXPECT_EQ(purge2.wait(10'000), 0) << testing::read_file(dir_.file("purge2.log"));
  a->start();
  ASSERT_TRUE(a->wait_role("active", 5'000));
  auto f = run_cli({"--head", a->frontend(), "fetch", sid});
  EXPECT_EQ(f.code, 2);
  EXPECT_NE(f.err.find("was purged"), std::string::npos) << f.err;
}

}  // namespace
}  // namespace zgrid
