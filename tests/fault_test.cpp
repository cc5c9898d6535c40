// Fault tolerance and client lifecycle with real processes (docs/architecture.md: idle timeouts,
// heartbeats and node loss): hung and killed nodes, task timeouts and deadlines, poison isolation,
// quarantine, idle timeouts (real and with an injected clock), back-pressure
// and graceful stops.
#include <gtest/gtest.h>
#include <signal.h>
#include <zgrid/client.hpp>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "common/clock.hpp"
#include "head/head.hpp"
#include "tests/support/grid_process.hpp"
#include "tests/support/http_client.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::Grid;
using testing::run_cli;
using testing::wait_until;

std::map<std::string, proto::Response> Collect(BrokerClient& bc, std::size_t n, Millis timeout_ms) {
  std::map<std::string, proto::Response> got;
  proto::Response r;
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + timeout_ms;
  while (got.size() < n && clock.now_ms() < deadline) {
    auto ok = bc.next_response(&r, 1000);
    if (!ok.ok()) {
      ADD_FAILURE() << ok.status().ToString();
      break;
    }
    if (*ok) {
      EXPECT_TRUE(got.emplace(r.user_data, r).second) << r.user_data << " answered twice";
    }
  }
  return got;
}

std::uint64_t RssKib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  return 0;
}

// A hung node (SIGSTOP) is declared dead after the missed heartbeats; its work
// runs elsewhere within (misses + 1) intervals; once it wakes up it finds
// itself unknown and registers again.
TEST(Fault, HungNodeWorkMovesOnAndItRejoinsAfterwards) {
  Grid g;
  g.start_head({"--heartbeat", "200ms", "--heartbeat-misses", "3"});
  std::size_t hung = g.add_node({"--workers", "1", "--node-id", "hung"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"sleep", false, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE((*bc)->send("50", std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  ASSERT_TRUE(
      wait_until([&] { return conn->session_status(info->session_id)->u64("running") > 0; }, 5000));
  g.node(hung).signal(SIGSTOP);
  const Clock& clock = SteadyClock::instance();
  Millis stopped_at = clock.now_ms();
  g.add_node({"--workers", "2", "--node-id", "healthy"});
  auto got = Collect(**bc, 20, 30'000);
  EXPECT_EQ(got.size(), 20u);
  for (auto& [k, r] : got) EXPECT_TRUE(r.ok()) << r.fault_code;
  // (misses + 1) intervals plus the healthy node's start-up.
  EXPECT_LT(clock.now_ms() - stopped_at, 5'000);
  EXPECT_NE(g.head_log().find("node lost node=hung"), std::string::npos);
  g.node(hung).signal(SIGCONT);
  EXPECT_TRUE(wait_until(
      [&] {
        auto nodes = conn->nodes();
        return nodes.ok() && nodes->size() == 2;
      },
      10'000, 50))
      << "the woken node did not register again";
}

TEST(Fault, TaskTimeoutRetriesThenFaultsWithoutHurtingNeighbours) {
  Grid g;
  g.start_head({"--max-retries", "1"});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  proto::CreateSession cs;
  cs.service = "sleep";
  cs.task_timeout_ms = 300;
  auto info = conn->create_session(cs);
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  ASSERT_TRUE((*bc)->send("3000", "slow").ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*bc)->send("10", std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  auto got = Collect(**bc, 11, 30'000);
  ASSERT_EQ(got.size(), 11u);
  EXPECT_EQ(got["slow"].fault_code, "retry_limit_exceeded");
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(got[std::to_string(i)].ok());
  EXPECT_NE(g.head_log().find("task timeout"), std::string::npos);
}

// Issue 13.1: one hung request among short ones on a one-worker node. The
// timeout counts from when the worker starts a task, so the requests queued
// behind the hung one are never charged: 20 answers and one fault.
TEST(Fault, HungTaskFaultsOnlyItselfNotItsQueuedNeighbours) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  std::string input = "600000\n";
  for (int i = 0; i < 20; ++i) input += "10\n";
  const Clock& clock = SteadyClock::instance();
  Millis t0 = clock.now_ms();
  auto sub = run_cli({"--head", g.frontend(), "submit", "--durable", "--task-timeout", "500ms",
                      "--service", "sleep", "--file", "-"},
                     input);
  ASSERT_EQ(sub.code, 0) << sub.err;
  std::string id = sub.out.substr(0, sub.out.find('\n'));
  auto f = run_cli({"--head", g.frontend(), "fetch", id}, "", 60'000);
  EXPECT_EQ(f.code, 1) << f.err;
  std::size_t ok = 0, p = 0;
  while ((p = f.out.find("10 = 10\n", p)) != std::string::npos) ++ok, ++p;
  EXPECT_EQ(ok, 20u) << f.out;
  EXPECT_NE(f.out.find("600000: error: retry_limit_exceeded: request ran past its task timeout 4 "
                       "times (max retries 3)"),
            std::string::npos)
      << f.out;
  // Four tries of 500 ms each, and nothing waits for the hung call itself.
  EXPECT_LT(clock.now_ms() - t0, 15'000);
}

// A worker stuck in a call that cannot be interrupted gets no more work: the
// node asks for less credit, `zgrid nodes` shows it, and when all its workers
// are stuck the tasks queued there go back to the head uncharged and run on
// the other node. With --max-retries 0 any charge of an innocent would fault it.
TEST(Fault, StuckWorkerTakesNoWorkAndItsQueueMovesUncharged) {
  Grid g;
  g.start_head({"--max-retries", "0"});
  g.add_node({"--workers", "1", "--node-id", "a"});
  g.add_node({"--workers", "1", "--node-id", "b"});
  ASSERT_TRUE(g.wait_nodes(2));
  std::string input = "hang:4000\n";
  for (int i = 0; i < 30; ++i) input += "ok:" + std::to_string(i) + "\n";
  std::atomic<bool> saw_stuck{false};
  std::thread watcher([&] {
    (void)wait_until(
        [&] {
          auto n = run_cli({"--head", g.frontend(), "nodes", "--json"}, "", 5'000);
          if (n.out.find("\"stuck\": 1") != std::string::npos) saw_stuck = true;
          return saw_stuck.load();
        },
        8'000, 50);
  });
  auto r = run_cli({"--head", g.frontend(), "submit", "--service", "fail", "--task-timeout",
                    "500ms", "--file", "-"},
                   input);
  watcher.join();
  EXPECT_EQ(r.code, 1) << r.err;
  for (int i = 0; i < 30; ++i) {
    std::string line = "ok:" + std::to_string(i) + " = " + std::to_string(i) + "\n";
    EXPECT_NE(r.out.find(line), std::string::npos) << line << r.out;
  }
  EXPECT_NE(r.out.find("hang:4000: error: retry_limit_exceeded: request ran past its task "
                       "timeout 1 time (max retries 0)"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(saw_stuck.load()) << "zgrid nodes never showed the stuck worker";
  // Once the call returns, the worker is free and the credit comes back.
  EXPECT_TRUE(wait_until(
      [&] {
        auto n = run_cli({"--head", g.frontend(), "nodes", "--json"}, "", 5'000);
        return n.code == 0 && n.out.find("\"stuck\": 1") == std::string::npos &&
               n.out.find("\"capacity\": 0,") == std::string::npos;
      },
      10'000, 100));
}

TEST(Fault, SessionDeadlineFaultsWhatHasNotRun) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1", "--prefetch", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  std::string input;
  for (int i = 0; i < 40; ++i) input += "100\n";  // 4 s of work for one worker
  auto r = run_cli({"--head", g.frontend(), "submit", "--service", "sleep", "--deadline", "600ms",
                    "--file", "-"},
                   input);
  EXPECT_EQ(r.code, 1) << r.err;
  std::size_t done = 0, timed_out = 0;
  std::size_t p = 0;
  while ((p = r.out.find("100 = 100\n", p)) != std::string::npos) ++done, ++p;
  p = 0;
  while ((p = r.out.find("100: error: timeout: ", p)) != std::string::npos) ++timed_out, ++p;
  EXPECT_EQ(done + timed_out, 40u) << r.out;
  EXPECT_GT(done, 0u);
  EXPECT_GT(timed_out, 20u);
}

// Poison isolation: a request that kills its node (abort) is faulted after
// max retries; its batch neighbours are re-run one at a time and complete.
TEST(Fault, PoisonRequestIsIsolatedAndNeighboursComplete) {
  Grid g;
  g.start_head({"--heartbeat", "200ms", "--max-retries", "2"});
  g.add_node({"--workers", "2", "--prefetch", "8"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"fail", false, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  const int kN = 60;
  for (int i = 0; i < kN; ++i) {
    std::string in = i == 17 ? "crash" : "ok:" + std::to_string(i);
    ASSERT_TRUE((*bc)->send(in, in).ok());
  }
  ASSERT_TRUE((*bc)->end_requests().ok());
  // Whoever launched the node restarts it (here: the test, like grid-local.sh).
  std::atomic<bool> done{false};
  std::thread supervisor([&] {
    std::size_t current = 0;
    while (!done.load()) {
      if (!g.node(current).running()) current = g.add_node({"--workers", "2", "--prefetch", "8"});
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto got = Collect(**bc, kN, 60'000);
  done = true;
  supervisor.join();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kN));
  EXPECT_EQ(got["crash"].fault_code, "retry_limit_exceeded");
  for (int i = 0; i < kN; ++i) {
    if (i == 17) continue;
    std::string in = "ok:" + std::to_string(i);
    EXPECT_TRUE(got[in].ok()) << in << " faulted: " << got[in].fault_code;
  }
}

TEST(Fault, BrokenNodeIsQuarantined) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1", "--node-id", "good"});
  g.add_node({"--workers", "1", "--node-id", "broken"}, {"ZGRID_NODE_TEST_FAULTY=1"});
  ASSERT_TRUE(g.wait_nodes(2));
  auto conn = g.connect();
  auto info = conn->create_session({"echo", false, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  for (int i = 0; i < 400; ++i) ASSERT_TRUE((*bc)->send(std::to_string(i), std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  auto got = Collect(**bc, 400, 30'000);
  ASSERT_EQ(got.size(), 400u);
  // Judged as results arrive, or at the next heartbeat when its faults came
  // before the good node had done enough to compare with.
  std::map<std::string, client::Fields> by;
  EXPECT_TRUE(wait_until(
      [&] {
        auto nodes = conn->nodes();
        if (!nodes.ok()) return false;
        for (auto& n : *nodes) by[n.str("node_id")] = n;
        return by["broken"].str("state") == "quarantined";
      },
      5'000));
  EXPECT_EQ(by["broken"].str("state"), "quarantined");
  EXPECT_EQ(by["good"].str("state"), "ok");
  EXPECT_GT(by["good"].u64("done"), by["broken"].u64("faulted"));
  // Faults that come back at once do not count as fast work: the broken node
  // keeps its starting credit (64 per worker) instead of earning a deep queue
  // (it would ask for one within 20 ms of measuring; give it ten times that).
  EXPECT_FALSE(wait_until(
      [&] {
        auto now = conn->nodes();
        if (!now.ok()) return false;
        for (auto& n : *now)
          if (n.str("node_id") == "broken") return n.u64("capacity") != 64u;
        return false;
      },
      200, 10))
      << "the broken node raised its credit";
  auto r = run_cli({"--head", g.frontend(), "nodes"});
  EXPECT_NE(r.out.find("quarantined"), std::string::npos) << r.out;
  EXPECT_NE(g.head_log().find("node quarantined node=broken"), std::string::npos);
  // The dashboard's event list and the nodes gauge say so too.
  testing::Got ev = testing::Get(g.http_url(), "/api/events");
  EXPECT_NE(
      ev.body.find("\"kind\":\"node_quarantined\",\"message\":\"node quarantined node=broken"),
      std::string::npos)
      << ev.body;
  EXPECT_NE(
      testing::Get(g.http_url(), "/metrics").body.find("zgrid_nodes{state=\"quarantined\"} 1\n"),
      std::string::npos);
}

// Idle timeout with real processes: the uncommitted client's requests are
// gone, a committed session beside it is intact, a throttled client stays.
TEST(Fault, IdleClientRemovedWithItsRequestsCommittedIntact) {
  Grid g;
  g.start_durable_head({"--client-idle-timeout", "2s"});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto committed = run_cli(
      {"--head", g.frontend(), "submit", "--durable", "--service", "factorize", "--random", "500"});
  ASSERT_EQ(committed.code, 0) << committed.err;
  std::string ok_sid = committed.out.substr(0, 32);
  auto idle = run_cli({"--head", g.frontend(), "submit", "--durable", "--service", "factorize",
                       "--random", "300", "--no-end"});
  ASSERT_EQ(idle.code, 0) << idle.err;
  std::string idle_sid = idle.out.substr(0, 32);
  auto conn = g.connect();
  EXPECT_TRUE(wait_until(
      [&] {
        auto st = conn->session_status(idle_sid);
        return st.ok() && st->u64("clients_removed") == 1;
      },
      10'000, 100));
  auto st = conn->session_status(idle_sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("removed"), 300u);
  EXPECT_EQ(st->u64("done"), 0u);
  EXPECT_TRUE(st->boolean("complete"));
  auto ok = conn->session_status(ok_sid);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->u64("done"), 500u);
  EXPECT_EQ(ok->u64("removed"), 0u);
  auto f = run_cli({"--head", g.frontend(), "fetch", ok_sid});
  EXPECT_EQ(f.code, 0);
  EXPECT_EQ(std::count(f.out.begin(), f.out.end(), '\n'), 500);
  auto fi = run_cli({"--head", g.frontend(), "fetch", idle_sid});
  EXPECT_EQ(fi.code, 1) << "removed requests make the exit status 1: " << fi.err;
  EXPECT_TRUE(fi.out.empty()) << fi.out;
  EXPECT_NE(g.head_log().find("client removed"), std::string::npos);
}

TEST(Fault, ThrottledClientIsNotIdle) {
  Grid g;
  g.start_head({"--client-idle-timeout", "1s", "--queue-hwm", "100"});
  auto conn = g.connect();
  auto info = conn->create_session({"echo", false, 0});
  ASSERT_TRUE(info.ok());
  const std::string sid = info->session_id;
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    auto c2 = g.connect();
    auto bc = BrokerClient::open(*c2, sid, "throttled");
    ASSERT_TRUE(bc.ok());
    for (int i = 0; i < 3000; ++i) ASSERT_TRUE((*bc)->send("x", std::to_string(i)).ok());
    ASSERT_TRUE((*bc)->end_requests().ok());
    sent = true;
    auto got = Collect(**bc, 3000, 30'000);
    EXPECT_EQ(got.size(), 3000u);
  });
  // No node: acknowledgements are held back for 3 s, three idle timeouts.
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("clients_removed"), 0u);
  EXPECT_FALSE(sent.load()) << "back-pressure should have held the sender";
  g.add_node({"--workers", "2"});
  sender.join();
}

// Idle-timeout boundaries with an injected clock: no test waits 5 minutes.
class IdleClock : public ::testing::Test {
 protected:
  void SetUp() override {
    head::HeadOptions o;
    o.frontend = "tcp://127.0.0.1:0";
    o.backend = "tcp://127.0.0.1:0";
    o.endpoints_file = dir_.file("ep");
    o.client_idle_timeout_ms = 300'000;
    o.session_idle_timeout_ms = 100 * 3'600'000;  // only the client timeout is under test
    thread_ = std::thread([this, o] { (void)head::run_head(o, stop_, clock_); });
    ASSERT_TRUE(wait_until(
        [&] { return testing::read_file(dir_.file("ep")).find("pid=") != std::string::npos; },
        5000));
    std::string s = testing::read_file(dir_.file("ep"));
    endpoint_ = s.substr(9, s.find('\n') - 9);
    client::ClientOptions co;
    co.head = endpoint_;
    conn_ = std::move(client::Connection::open(co)).value();
    auto info = conn_->create_session({"echo", false, 0});
    ASSERT_TRUE(info.ok());
    sid_ = info->session_id;
  }
  void TearDown() override {
    stop_ = true;
    thread_.join();
  }
  // Lets the head's loop see the clock (it ticks at least every 250 ms).
  void Advance(Millis ms) {
    clock_.advance(ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }
  std::uint64_t Removed() {
    auto st = conn_->session_status(sid_);
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    return st.ok() ? st->u64("clients_removed") : 0;
  }

  testing::TempDir dir_;
  FakeClock clock_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::string endpoint_, sid_;
  std::unique_ptr<client::Connection> conn_;
};

TEST_F(IdleClock, AliveJustBeforeRemovedJustAfter) {
  auto bc = BrokerClient::open(*conn_, sid_, "c");
  ASSERT_TRUE(bc.ok());
  ASSERT_TRUE((*bc)->send("x", "x").ok());
  ASSERT_TRUE((*bc)->wait_acked().ok());
  Advance(299'000);
  EXPECT_EQ(Removed(), 0u);
  Advance(2'000);
  EXPECT_TRUE(wait_until([&] { return Removed() == 1; }, 3000));
  auto st = conn_->session_status(sid_);
  EXPECT_EQ(st->u64("removed"), 1u);
  EXPECT_EQ(st->u64("queued"), 0u);
}

TEST_F(IdleClock, ActivityResetsTheTimer) {
  auto bc = BrokerClient::open(*conn_, sid_, "c");
  ASSERT_TRUE(bc.ok());
  ASSERT_TRUE((*bc)->send("x", "x").ok());
  ASSERT_TRUE((*bc)->wait_acked().ok());
  Advance(200'000);
  ASSERT_TRUE((*bc)->send("y", "y").ok());  // activity
  ASSERT_TRUE((*bc)->wait_acked().ok());
  Advance(200'000);  // 400 s since the first message, 200 s since the last
  EXPECT_EQ(Removed(), 0u);
  Advance(101'000);
  EXPECT_TRUE(wait_until([&] { return Removed() == 1; }, 3000));
}

TEST_F(IdleClock, EndRequestsExemptsTheClient) {
  auto bc = BrokerClient::open(*conn_, sid_, "c");
  ASSERT_TRUE(bc.ok());
  ASSERT_TRUE((*bc)->send("x", "x").ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  Advance(3'600'000);
  EXPECT_EQ(Removed(), 0u);
  EXPECT_EQ(conn_->session_status(sid_)->u64("committed"), 1u);
}

TEST(IdleSessions, InteractiveClosedDurableKept) {
  testing::TempDir dir;
  FakeClock clock;
  std::atomic<bool> stop{false};
  head::HeadOptions o;
  o.frontend = "tcp://127.0.0.1:0";
  o.backend = "tcp://127.0.0.1:0";
  o.endpoints_file = dir.file("ep");
  o.data_dir = dir.file("data");
  std::thread t([&] { (void)head::run_head(o, stop, clock); });
  ASSERT_TRUE(wait_until(
      [&] { return testing::read_file(dir.file("ep")).find("pid=") != std::string::npos; }, 5000));
  std::string s = testing::read_file(dir.file("ep"));
  client::ClientOptions co;
  co.head = s.substr(9, s.find('\n') - 9);
  auto conn = std::move(client::Connection::open(co)).value();
  auto inter = conn->create_session({"echo", false, 0});
  auto dur = conn->create_session({"echo", true, 0});
  ASSERT_TRUE(inter.ok() && dur.ok());
  clock.advance(299'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_TRUE(conn->session_status(inter->session_id).ok()) << "closed before its idle timeout";
  clock.advance(2'000);
  EXPECT_TRUE(wait_until([&] { return !conn->session_status(inter->session_id).ok(); }, 3000));
  clock.advance(24 * 3'600'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_TRUE(conn->session_status(dur->session_id).ok())
      << "a durable session is never dropped by idleness";
  conn.reset();
  stop = true;
  t.join();
}

TEST(Fault, PerServiceTaskTimeout) {
  Grid g;
  g.start_head({"--service-timeout", "sleep=300ms", "--max-retries", "0"});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto r = run_cli({"--head", g.frontend(), "submit", "--service", "sleep", "--file", "-"},
                   "2000\n10\n");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.out.find("2000: error: retry_limit_exceeded"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("10 = 10"), std::string::npos) << r.out;
  auto bad = run_cli({"--head", g.frontend(), "nodes"});
  EXPECT_EQ(bad.code, 0);
  testing::TempDir d;
  testing::Process p(
      {ZGRID_HEAD_BIN, "--service-timeout", "sleep", "--frontend", "tcp://127.0.0.1:0"},
      d.file("log"));
  EXPECT_EQ(p.wait(10'000), 2);
  EXPECT_NE(testing::read_file(d.file("log")).find("--service-timeout"), std::string::npos);
}

// Back-pressure: with the high-water mark at 10,000, a client sending far more
// than a slowed node can take is held back; head memory stays bounded and
// every request is answered.
TEST(Fault, BackPressureBoundsHeadMemory) {
  Grid g;
  g.start_head({"--queue-hwm", "10000"});
  g.add_node({"--workers", "1", "--prefetch", "4"});  // slowed on purpose
  ASSERT_TRUE(g.wait_nodes(1));
  const int kN = 1'000'000;  // about a minute at the slowed node
  std::atomic<bool> finished{false};
  std::uint64_t peak_kib = 0, max_queued = 0;
  std::thread watcher([&] {
    auto conn = g.connect();
    while (!finished.load()) {
      peak_kib = std::max(peak_kib, RssKib(g.head().pid()));
      auto st = conn->grid_status();
      if (st.ok()) max_queued = std::max(max_queued, st->u64("queued"));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  auto conn = g.connect();
  auto info = conn->create_session({"echo", false, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "flood");
  ASSERT_TRUE(bc.ok());
  std::set<std::uint64_t> ids;
  proto::Response r;
  for (int i = 0; i < kN; ++i) {
    ASSERT_TRUE((*bc)->send(std::to_string(i), "").ok());
    while ((*bc)->poll_response(&r)) ids.insert(r.request_id);
  }
  ASSERT_TRUE((*bc)->end_requests().ok());
  while (ids.size() < static_cast<std::size_t>(kN)) {
    auto ok = (*bc)->next_response(&r, 30'000);
    ASSERT_TRUE(ok.ok() && *ok) << "stalled at " << ids.size();
    ids.insert(r.request_id);
  }
  finished = true;
  watcher.join();
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kN));
  // The queue never grew far past the mark: one client window above it.
  EXPECT_LT(max_queued, 10'000u + 16 * 1024 + 1024);
#ifndef ZGRID_SANITIZED
  EXPECT_LT(peak_kib, 128u * 1024) << "head RSS " << peak_kib << " KiB";
#endif
}

TEST(Fault, GracefulStops) {
  Grid g;
  g.start_durable_head();
  std::size_t n = g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"sleep", true, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  for (int i = 0; i < 30; ++i) ASSERT_TRUE((*bc)->send("50", std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  ASSERT_TRUE(
      wait_until([&] { return conn->session_status(info->session_id)->u64("done") >= 2; }, 10'000));
  // SIGTERM to a node: it returns its work (the head re-queues it at once) and exits.
  g.node(n).signal(SIGTERM);
  EXPECT_EQ(g.node(n).wait(10'000), 0);
  EXPECT_TRUE(wait_until([&] { return conn->nodes()->empty(); }, 2000))
      << "the head missed the node's goodbye";
  g.add_node({"--workers", "2"});
  // SIGTERM to the head: it syncs the journal and exits 0; nothing is lost.
  ASSERT_TRUE(wait_until([&] { return conn->session_status(info->session_id)->u64("done") >= 10; },
                         10'000));
  bc->reset();  // a BrokerClient goes before its Connection
  conn.reset();
  g.head().signal(SIGTERM);
  EXPECT_EQ(g.head().wait(10'000), 0);
  g.restart_head();
  auto conn2 = g.connect();
  std::size_t count = 0;
  client::ResponseStream rs(*conn2, info->session_id);
  proto::Response r;
  std::set<std::string> seen;
  while (rs.next(&r, 30'000).value()) {
    EXPECT_TRUE(r.ok());
    EXPECT_TRUE(seen.insert(r.user_data).second);
    ++count;
  }
  EXPECT_EQ(count, 30u);
}

}  // namespace
}  // namespace zgrid
