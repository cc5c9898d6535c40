// Stateful sessions with real processes (docs/services.md, "Stateful
// sessions"): the built-in running_sum over a grid of nodes, nodes
// SIGKILLed under a session (replay on a fresh instance, each answer
// recorded once), many sessions at once, a durable one across a head
// SIGKILL, and the refusal for a service without session support.
#include <gtest/gtest.h>
#include <signal.h>
#include <zgrid/client.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "tests/support/fetch_all.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::Grid;
using testing::run_cli;
using testing::wait_until;

std::string Triangular(std::uint64_t i) {
  return std::to_string(i * (i + 1) / 2);
}

proto::CreateSession Stateful(bool durable = false) {
  proto::CreateSession cs;
  cs.service = "running_sum";
  cs.durable = durable;
  cs.stateful = true;
  return cs;
}

// Sends 1..n (user data: the number) and commits.
void SendRange(BrokerClient& bc, std::uint64_t n) {
  for (std::uint64_t i = 1; i <= n; ++i) {
    std::string v = std::to_string(i);
    ASSERT_TRUE(bc.send(v, v).ok());
  }
  ASSERT_TRUE(bc.end_requests().ok());
}

// `count` nodes of 2 workers, named n0, n1, ... (IndexOf maps back).
void AddNodes(Grid& g, int count) {
  for (int i = 0; i < count; ++i)
    g.add_node({"--workers", "2", "--node-id", std::string(1, 'n').append(std::to_string(i))});
  ASSERT_TRUE(g.wait_nodes(static_cast<std::size_t>(count)));
}

// A durable stateful running_sum session sent 1..n and committed: its id.
std::string SubmitDurableRange(client::Connection& conn, std::uint64_t n) {
  auto info = conn.create_session(Stateful(true));
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  if (!info.ok()) return "";
  auto bc = BrokerClient::open(conn, info->session_id, "c");
  EXPECT_TRUE(bc.ok());
  if (bc.ok()) SendRange(**bc, n);
  return info->session_id;
}

// Waits until `done` of the session reaches `n`.
bool WaitDone(client::Connection& conn, const std::string& sid, std::uint64_t n) {
  return wait_until(
      [&] {
        auto st = conn.session_status(sid);
        return st.ok() && st->u64("done") >= n;
      },
      60'000);
}

// Reads responses until `n` arrived or the time is up; `each` sees every
// one as it arrives (the count so far included).
std::vector<proto::Response> Receive(BrokerClient& bc, std::size_t n, Millis timeout_ms,
                                     const std::function<void(std::size_t)>& each = {}) {
  std::vector<proto::Response> got;
  proto::Response r;
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + timeout_ms;
  while (got.size() < n && clock.now_ms() < deadline) {
    auto ok = bc.next_response(&r, 500);
    if (!ok.ok()) {
      ADD_FAILURE() << ok.status().ToString();
      break;
    }
    if (!*ok) continue;
    got.push_back(r);
    if (each) each(got.size());
  }
  return got;
}

// Every number 1..n answered exactly once with its triangular number, in
// request-id order.
void ExpectTriangular(const std::vector<proto::Response>& got, std::uint64_t n) {
  ASSERT_EQ(got.size(), n);
  std::uint64_t last_id = 0;
  for (std::uint64_t k = 0; k < n; ++k) {
    const proto::Response& r = got[k];
    std::uint64_t i = std::stoull(r.user_data);
    ASSERT_EQ(i, k + 1) << "answers out of order";
    ASSERT_TRUE(r.ok()) << i << ": " << r.fault_code << " " << r.data;
    ASSERT_EQ(r.data, Triangular(i)) << "request " << i;
    ASSERT_GT(r.request_id, last_id);
    last_id = r.request_id;
  }
}

// Every answer of durable session `sid` fetched: each request recorded
// once, the triangular numbers of 1..n in id order.
void ExpectFetchedOnceEach(client::Connection& conn, const std::string& sid, std::uint64_t n) {
  std::map<std::uint64_t, proto::Response> by_id;
  for (auto& r : testing::fetch_all(conn, sid, 120'000))
    ASSERT_TRUE(by_id.emplace(r.request_id, r).second) << "recorded twice: " << r.request_id;
  std::vector<proto::Response> got;
  for (auto& [id, r] : by_id) got.push_back(r);
  ExpectTriangular(got, n);
}

// The node now holding the session's one request in flight, or "".
std::string NodeRunning(client::Connection& conn) {
  auto nodes = conn.nodes();
  if (!nodes.ok()) return "";
  for (const auto& n : *nodes)
    if (n.u64("inflight") > 0) return n.str("node_id");
  return "";
}

std::size_t IndexOf(const std::string& node_id) {
  return static_cast<std::size_t>(std::stoul(node_id.substr(1)));
}

TEST(Stateful, RunningSumGivesTheTriangularNumbersInOrder) {
  Grid g;
  g.start_head();
  AddNodes(g, 3);
  auto conn = g.connect();
  auto info = conn->create_session(Stateful());
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(info->stateful);
  auto bc = BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  SendRange(**bc, 20'000);
  ExpectTriangular(Receive(**bc, 20'000, 120'000), 20'000);
  auto st = conn->session_status(info->session_id);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("done"), 20'000u);
  EXPECT_EQ(st->u64("faulted"), 0u);
}

// The node holding the instance is SIGKILLed twice mid-session: a fresh
// instance elsewhere replays what ran, and every answer is recorded once.
TEST(Stateful, NodeKilledTwiceMidSessionAnswersStayExact) {
  Grid g;
  g.start_head({"--heartbeat", "200ms", "--heartbeat-misses", "3"});
  AddNodes(g, 3);
  auto conn = g.connect();
  auto info = conn->create_session(Stateful());
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto bc = BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  SendRange(**bc, 20'000);
  std::vector<std::string> killed;
  auto kill_holder = [&] {
    std::string holder;
    ASSERT_TRUE(wait_until(
        [&] {
          holder = NodeRunning(*conn);
          return !holder.empty();
        },
        5'000));
    g.node(IndexOf(holder)).kill_now();
    killed.push_back(holder);
  };
  auto got = Receive(**bc, 20'000, 180'000, [&](std::size_t k) {
    if (k == 5'000 || k == 12'000) kill_holder();
  });
  ASSERT_EQ(killed.size(), 2u);
  EXPECT_NE(killed[0], killed[1]);
  ExpectTriangular(got, 20'000);
  auto st = conn->session_status(info->session_id);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("done"), 20'000u);
  EXPECT_NE(g.head_log().find("replays"), std::string::npos);
}

// 50 stateful sessions at once: each exact, none ever with more than one
// request running, and every worker of the grid used.
TEST(Stateful, FiftySessionsInParallelUseEveryWorker) {
  Grid g;
  g.start_head();
  AddNodes(g, 3);
  auto conn = g.connect();
  constexpr int kSessions = 50;
  constexpr std::uint64_t kEach = 400;
  std::vector<std::string> sids;
  std::vector<std::unique_ptr<BrokerClient>> clients;
  for (int i = 0; i < kSessions; ++i) {
    auto info = conn->create_session(Stateful());
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    auto bc = BrokerClient::open(*conn, info->session_id, "c");
    ASSERT_TRUE(bc.ok());
    sids.push_back(info->session_id);
    clients.push_back(std::move(*bc));
  }
  for (auto& bc : clients) SendRange(*bc, kEach);
  std::uint64_t max_running = 0, max_session_running = 0;
  std::vector<std::vector<proto::Response>> got(kSessions);
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + 120'000;
  std::size_t total = 0;
  while (total < kSessions * kEach && clock.now_ms() < deadline) {
    for (int i = 0; i < kSessions; ++i) {
      proto::Response r;
      while (got[i].size() < kEach) {
        auto ok = clients[i]->next_response(&r, 0);
        ASSERT_TRUE(ok.ok());
        if (!*ok) break;
        got[i].push_back(r);
        ++total;
      }
    }
    if (auto grid = conn->grid_status(); grid.ok())
      max_running = std::max(max_running, grid->u64("running"));
    if (auto all = conn->sessions(); all.ok())
      for (const auto& s : *all)
        max_session_running = std::max(max_session_running, s.u64("running"));
  }
  for (int i = 0; i < kSessions; ++i) ExpectTriangular(got[i], kEach);
  EXPECT_LE(max_session_running, 1u);
  EXPECT_GE(max_running, 6u) << "3 nodes of 2 workers: every worker should have had work";
  auto nodes = conn->nodes();
  ASSERT_TRUE(nodes.ok());
  for (const auto& n : *nodes) EXPECT_GT(n.u64("done"), 0u) << n.str("node_id");
}

TEST(Stateful, ServiceWithoutSessionSupportIsRefusedAtCreate) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  proto::CreateSession cs = Stateful();
  cs.service = "echo";
  auto info = conn->create_session(cs);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(info.status().message().find("does not support stateful sessions"), std::string::npos)
      << info.status().message();
  auto r = run_cli(
      {"--head", g.frontend(), "submit", "--service", "echo", "--stateful", "--file", "-"}, "1\n");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("does not support stateful sessions"), std::string::npos) << r.err;
  // Per-call use of running_sum faults each request with a clear message.
  auto p =
      run_cli({"--head", g.frontend(), "submit", "--service", "running_sum", "--file", "-"}, "1\n");
  EXPECT_EQ(p.code, 1) << p.err;
  EXPECT_NE(p.out.find("stateful"), std::string::npos) << p.out;
  // And through the CLI the stateful one works.
  auto ok = run_cli(
      {"--head", g.frontend(), "submit", "--service", "running_sum", "--stateful", "--file", "-"},
      "1\n2\n3\n4\n");
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(ok.out, "1 = 1\n2 = 3\n3 = 6\n4 = 10\n");
}

// A durable stateful session: the head is SIGKILLed and restarted
// mid-session; the instance is rebuilt by replay and the answers are exact.
TEST(Stateful, DurableSessionSurvivesHeadKill) {
  Grid g;
  g.start_durable_head();
  AddNodes(g, 2);
  auto conn = g.connect();
  const std::string sid = SubmitDurableRange(*conn, 5'000);
  ASSERT_FALSE(sid.empty());
  ASSERT_TRUE(WaitDone(*conn, sid, 1'500));
  conn.reset();
  g.kill_head();
  g.restart_head();
  ASSERT_TRUE(g.wait_nodes(2, 20'000));
  auto conn2 = g.connect();
  ExpectFetchedOnceEach(*conn2, sid, 5'000);
}

// Answer writes fail for a while (an injected journal fault) mid-session:
// the answers not written are recorded later by replay, none twice, and
// every later answer is still exact (the instance never sees a request
// twice).
TEST(Stateful, DurableSessionKeepsItsOrderWhenAnswerWritesFail) {
  Grid g;
  std::string fault = g.dir().file("journal-fault");
  g.start_durable_head();
  g.restart_head({"ZGRID_JOURNAL_FAULT_FILE=" + fault});
  g.add_node({"--workers", "2", "--node-id", "n0"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  const std::string sid = SubmitDurableRange(*conn, 3'000);
  ASSERT_FALSE(sid.empty());
  ASSERT_TRUE(WaitDone(*conn, sid, 500));
  { std::ofstream(fault) << "x"; }
  ASSERT_TRUE(wait_until([&] { return g.head_log().find("was not recorded") != std::string::npos; },
                         10'000));
  std::filesystem::remove(fault);
  ExpectFetchedOnceEach(*conn, sid, 3'000);
}

// Two clients of a durable stateful session: the first sends without
// flushing and goes idle; the second's requests wait behind it (request-id
// order) and run once it is removed, over a state without its requests.
TEST(Stateful, LaterClientRunsOnceAnUnflushedEarlierOneIsRemoved) {
  Grid g;
  g.start_durable_head({"--client-idle-timeout", "2s"});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session(Stateful(true));
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  const std::string sid = info->session_id;
  auto a = BrokerClient::open(*conn, sid, "a");
  ASSERT_TRUE(a.ok());
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE((*a)->send(std::to_string(i), "a").ok());
  ASSERT_TRUE((*a)->send_pending().ok());
  ASSERT_TRUE((*a)->wait_acked().ok());  // journaled, not flushed: not eligible
  a->reset();
  {
    auto b = BrokerClient::open(*conn, sid, "b");
    ASSERT_TRUE(b.ok());
    for (int i = 6; i <= 10; ++i) ASSERT_TRUE((*b)->send(std::to_string(i), "b").ok());
    ASSERT_TRUE((*b)->end_requests().ok());
  }
  std::vector<std::string> sums;
  for (auto& r : testing::fetch_all(*conn, sid, 30'000)) {
    EXPECT_EQ(r.user_data, "b");
    EXPECT_TRUE(r.ok()) << r.fault_code << " " << r.data;
    sums.push_back(r.data);
  }
  EXPECT_EQ(sums, (std::vector<std::string>{"6", "13", "21", "30", "40"}));
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("removed"), 5u);
}

}  // namespace
}  // namespace zgrid
