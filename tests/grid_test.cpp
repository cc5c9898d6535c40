// Integration tests: real zgrid-head and zgrid-node processes on loopback.
#include <gtest/gtest.h>
#include <signal.h>
#include <zgrid/client.hpp>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "services/factorize_kernel.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::Grid;

::testing::AssertionResult IsFactorization(std::uint64_t n, const std::string& text) {
  if (testing::is_factorization(n, text)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << n << " is not " << text;
}

// Sends `inputs` through one interactive client and collects every response,
// checking each request id is answered exactly once.
std::map<std::uint64_t, proto::Response> RunInteractive(client::Connection& conn,
                                                        const std::string& service,
                                                        const std::vector<std::string>& inputs,
                                                        Millis timeout_ms = 60'000) {
  auto info = conn.create_session({service, false, 0});
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  if (!info.ok()) return {};
  auto bc = BrokerClient::open(conn, info->session_id, "test-client");
  EXPECT_TRUE(bc.ok()) << bc.status().ToString();
  if (!bc.ok()) return {};
  std::map<std::uint64_t, proto::Response> got;
  proto::Response r;
  auto take = [&](const proto::Response& x) {
    EXPECT_TRUE(got.emplace(x.request_id, x).second)
        << "request " << x.request_id << " answered twice";
  };
  for (const auto& in : inputs) {
    EXPECT_TRUE((*bc)->send(in, in).ok());
    while ((*bc)->poll_response(&r)) take(r);
  }
  Status st = (*bc)->end_requests();
  EXPECT_TRUE(st.ok()) << st.ToString();
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + timeout_ms;
  while (got.size() < inputs.size() && clock.now_ms() < deadline) {
    auto n = (*bc)->next_response(&r, 1000);
    if (!n.ok()) {
      ADD_FAILURE() << n.status().ToString();
      break;
    }
    if (*n) take(r);
  }
  return got;
}

TEST(Grid, TenThousandRequestsThroughTwoNodesAllCorrect) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2"});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(2));
  auto conn = g.connect();
  std::mt19937_64 rng(12345);
  std::vector<std::string> inputs;
  for (int i = 0; i < 10'000; ++i) {
    std::uint64_t v = i % 2 ? rng() % (1ULL << 31) + 1 : rng() | 1;
    inputs.push_back(std::to_string(v));
  }
  auto got = RunInteractive(*conn, "factorize", inputs);
  ASSERT_EQ(got.size(), inputs.size());
  std::set<std::string> seen_inputs;
  for (const auto& [id, r] : got) {
    ASSERT_TRUE(r.ok()) << r.fault_code << ": " << r.data;
    EXPECT_TRUE(IsFactorization(std::stoull(r.user_data), r.data));
    seen_inputs.insert(r.user_data);
  }
  // Request ids are 1..N and each input came back with its own result.
  EXPECT_EQ(got.begin()->first, 1u);
  EXPECT_EQ(got.rbegin()->first, inputs.size());
  EXPECT_EQ(seen_inputs, std::set<std::string>(inputs.begin(), inputs.end()));
  // Both nodes took part.
  auto nodes = conn->nodes();
  ASSERT_TRUE(nodes.ok());
  for (const auto& n : *nodes) EXPECT_GT(n.u64("done"), 0u) << n.to_json();
}

// Connection::request_ok: a client message by its name in the protocol
// table, with one id field and the reply ok — a small command's whole call
// (docs/architecture.md, "Adding a client command"). drain with the node id
// alone is such a message.
TEST(Grid, RequestOkSendsAMessageOfTheTableByName) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1", "--node-id", "n1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  Status st = conn->request_ok("drain", "n1");
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto nodes = conn->nodes();
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].str("state"), "draining");
  EXPECT_EQ(conn->request_ok("drain", "nope").code(), Code::kNotFound);
  EXPECT_EQ(conn->request_ok("status", "").code(), Code::kInvalidArgument);  // not answered by ok
  EXPECT_EQ(conn->request_ok("ok", "").code(), Code::kInvalidArgument);      // a reply
  EXPECT_EQ(conn->request_ok("no_such", "x").code(), Code::kInvalidArgument);
}

TEST(Grid, MalformedNumbersFaultOnlyThemselves) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  std::vector<std::string> inputs = {
      "12", "abc", "-5", "0", "18446744073709551616", "18446744073709551615", "", "1", " 7 "};
  auto got = RunInteractive(*conn, "factorize", inputs);
  ASSERT_EQ(got.size(), inputs.size());
  std::map<std::string, proto::Response> by_input;
  for (auto& [id, r] : got) by_input[r.user_data] = r;
  EXPECT_EQ(by_input["12"].data, "2 * 2 * 3");
  EXPECT_EQ(by_input["18446744073709551615"].data, "3 * 5 * 17 * 257 * 641 * 65537 * 6700417");
  EXPECT_EQ(by_input["1"].data, "1");
  EXPECT_EQ(by_input[" 7 "].data, "7");
  for (const char* bad : {"abc", "-5", "0", "18446744073709551616", ""})
    EXPECT_EQ(by_input[bad].fault_code, "invalid_argument") << bad;
}

TEST(Grid, LoadSplitsByWorkerCount) {
  Grid g;
  g.start_head();
  // Prefetch 1: credit equals workers, so the split follows processing speed.
  g.add_node({"--workers", "1", "--prefetch", "1", "--node-id", "one"});
  g.add_node({"--workers", "3", "--prefetch", "1", "--node-id", "three"});
  ASSERT_TRUE(g.wait_nodes(2));
  auto conn = g.connect();
  std::vector<std::string> inputs(400, "10");  // 10 ms each
  auto got = RunInteractive(*conn, "sleep", inputs);
  ASSERT_EQ(got.size(), inputs.size());
  for (auto& [id, r] : got) ASSERT_TRUE(r.ok()) << r.data;
  auto nodes = conn->nodes();
  ASSERT_TRUE(nodes.ok());
  std::map<std::string, std::uint64_t> done;
  for (const auto& n : *nodes) done[n.str("node_id")] = n.u64("done");
  ASSERT_EQ(done["one"] + done["three"], 400u);
  double ratio = static_cast<double>(done["three"]) /
                 static_cast<double>(std::max<std::uint64_t>(1, done["one"]));
  EXPECT_GT(ratio, 2.0) << "one=" << done["one"] << " three=" << done["three"];
  EXPECT_LT(ratio, 4.5) << "one=" << done["one"] << " three=" << done["three"];
}

// Adaptive prefetch: a node without --prefetch asks for about 5 ms of work
// per worker at its measured task time. Microsecond echoes raise its credit
// from the starting 64 per worker to hundreds or thousands; 20 ms sleeps
// bring it down to the floor of 4. A node with --prefetch keeps its credit.
TEST(Grid, AdaptivePrefetchFollowsTaskTime) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2", "--node-id", "adaptive"});
  g.add_node({"--workers", "2", "--prefetch", "3", "--node-id", "fixed"});
  ASSERT_TRUE(g.wait_nodes(2));
  auto conn = g.connect();
  auto capacity = [&](const std::string& id) -> std::uint64_t {
    auto nodes = conn->nodes();
    if (!nodes.ok()) return 0;
    for (const auto& n : *nodes)
      if (n.str("node_id") == id) return n.u64("capacity");
    return 0;
  };
  EXPECT_EQ(capacity("adaptive"), 2u * 64);
  EXPECT_EQ(capacity("fixed"), 2u * 3);

  std::vector<std::string> micro;
  for (int i = 0; i < 200'000; ++i) micro.push_back(std::to_string(i));
  auto got = RunInteractive(*conn, "echo", micro);
  ASSERT_EQ(got.size(), micro.size());
  for (auto& [id, r] : got) ASSERT_EQ(r.data, micro[id - 1]);
  // Echo takes well under 10 us even under sanitizers: at least 500 per worker.
  EXPECT_TRUE(testing::wait_until([&] { return capacity("adaptive") >= 2u * 500; }, 5'000))
      << "capacity " << capacity("adaptive");
  EXPECT_LE(capacity("adaptive"), 2u * 4096);
  EXPECT_EQ(capacity("fixed"), 2u * 3);

  std::vector<std::string> slow(60, "20");  // 20 ms each
  got = RunInteractive(*conn, "sleep", slow);
  ASSERT_EQ(got.size(), slow.size());
  for (auto& [id, r] : got) ASSERT_TRUE(r.ok()) << r.data;
  EXPECT_TRUE(testing::wait_until([&] { return capacity("adaptive") == 2u * 4; }, 5'000))
      << "capacity " << capacity("adaptive");
  EXPECT_EQ(capacity("fixed"), 2u * 3);
}

TEST(Grid, NodeKilledMidRunLosesNothing) {
  Grid g;
  g.start_head({"--heartbeat", "200ms", "--heartbeat-misses", "3"});
  std::size_t victim = g.add_node({"--workers", "2", "--prefetch", "4"});
  g.add_node({"--workers", "2", "--prefetch", "4"});
  ASSERT_TRUE(g.wait_nodes(2));
  auto conn = g.connect();
  auto info = conn->create_session({"sleep", false, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "c1");
  ASSERT_TRUE(bc.ok());
  const int kN = 1500;
  for (int i = 0; i < kN; ++i) ASSERT_TRUE((*bc)->send("2", std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  std::map<std::uint64_t, int> seen;
  proto::Response r;
  bool killed = false;
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + 60'000;
  while (seen.size() < static_cast<std::size_t>(kN) && clock.now_ms() < deadline) {
    auto n = (*bc)->next_response(&r, 1000);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (!*n) continue;
    ASSERT_TRUE(r.ok()) << r.fault_code << " " << r.data;
    ++seen[r.request_id];
    if (!killed && seen.size() >= 300) {
      g.node(victim).kill_now();  // SIGKILL with work in flight
      killed = true;
    }
  }
  ASSERT_TRUE(killed);
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kN));
  for (auto& [id, count] : seen) EXPECT_EQ(count, 1) << "request " << id;
  EXPECT_TRUE(testing::wait_until(
      [&] {
        auto n = conn->nodes();
        return n.ok() && n->size() == 1;
      },
      5000));
  EXPECT_NE(g.head_log().find("node lost"), std::string::npos);
}

TEST(Grid, SlowReaderGetsEveryResult) {
  Grid g;
  g.start_head({"--response-window", "500", "--response-queue-max", "1000"});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"echo", false, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "slow");
  ASSERT_TRUE(bc.ok());
  const int kN = 20'000;
  for (int i = 0; i < kN; ++i) ASSERT_TRUE((*bc)->send(std::to_string(i), std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  // Read nothing for a while: the head must pause this session, not drop results.
  auto watcher = g.connect();
  bool paused = testing::wait_until(
      [&] {
        auto st = watcher->session_status(info->session_id);
        return st.ok() && st->u64("queued") > 0 && st->u64("running") == 0 &&
               st->u64("responses_queued") >= 1000;
      },
      10'000);
  EXPECT_TRUE(paused) << "the session did not pause for its slow reader";
  std::set<std::string> got;
  proto::Response r;
  int n = 0;
  while (got.size() < static_cast<std::size_t>(kN)) {
    auto ok = (*bc)->next_response(&r, 10'000);
    ASSERT_TRUE(ok.ok()) << ok.status().ToString();
    ASSERT_TRUE(*ok) << "stalled after " << got.size();
    ASSERT_EQ(r.data, r.user_data);
    ASSERT_TRUE(got.insert(r.user_data).second);
    if (++n % 2000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(got.size(), static_cast<std::size_t>(kN));
}

TEST(Grid, SecondLiveClientWithSameIdRefused) {
  Grid g;
  g.start_head();
  auto a = g.connect();
  auto b = g.connect();
  auto info = a->create_session({"echo", false, 0});
  ASSERT_TRUE(info.ok());
  auto c1 = BrokerClient::open(*a, info->session_id, "same");
  ASSERT_TRUE(c1.ok());
  auto c2 = BrokerClient::open(*b, info->session_id, "same");
  ASSERT_FALSE(c2.ok());
  EXPECT_EQ(c2.status().code(), Code::kAlreadyExists);
  auto c3 = BrokerClient::open(*b, info->session_id, "other");
  EXPECT_TRUE(c3.ok());
}

// sent() counts requests, not the two strings (user_data, payload) queued per request.
TEST(Grid, BrokerClientCountsRequestsSentAckedAndReceived) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"factorize", false, 0});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto bc = BrokerClient::open(*conn, info->session_id, "counter");
  ASSERT_TRUE(bc.ok()) << bc.status().ToString();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*bc)->send("91", "n").ok());
  EXPECT_EQ((*bc)->sent(), 0u) << "queued in the batch, not sent yet";
  ASSERT_TRUE((*bc)->send_pending().ok());
  EXPECT_EQ((*bc)->sent(), 3u);
  ASSERT_TRUE((*bc)->send("91", "n").ok());
  EXPECT_EQ((*bc)->sent(), 3u);
  Status st = (*bc)->end_requests();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ((*bc)->sent(), 4u);
  EXPECT_EQ((*bc)->acked(), 4u);
  proto::Response r;
  for (int i = 0; i < 4; ++i) {
    auto got = (*bc)->next_response(&r, 30'000);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_TRUE(*got) << "response " << i << " did not come";
    EXPECT_EQ(r.data, "7 * 13");
  }
  EXPECT_EQ((*bc)->received(), 4u);
  EXPECT_EQ((*bc)->rejected(), 0u);
}

TEST(Grid, UnknownSessionIsNotFound) {
  Grid g;
  g.start_head();
  auto conn = g.connect();
  auto st = conn->session_status("00000000000000000000000000000000");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), Code::kNotFound);
  auto bc = BrokerClient::open(*conn, "nope", "c");
  ASSERT_FALSE(bc.ok());
  EXPECT_EQ(bc.status().code(), Code::kNotFound);
}

TEST(Grid, NodeReregistersAfterHeadRestart) {
  Grid g;
  g.start_head({"--heartbeat", "200ms"});
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  g.kill_head();
  g.restart_head();
  ASSERT_TRUE(g.wait_nodes(1, 15'000)) << "node did not re-register";
  auto conn = g.connect();
  auto got = RunInteractive(*conn, "factorize", {"91"});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got.begin()->second.data, "7 * 13");
}

TEST(Grid, ServiceErrorsAreFaultsNotCrashes) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto got = RunInteractive(*conn, "fail", {"ok:fine", "throw", "fault:custom_code", "ok:after"});
  ASSERT_EQ(got.size(), 4u);
  std::map<std::string, proto::Response> by;
  for (auto& [id, r] : got) by[r.user_data] = r;
  EXPECT_EQ(by["ok:fine"].data, "fine");
  EXPECT_EQ(by["throw"].fault_code, "service_error");
  EXPECT_EQ(by["fault:custom_code"].fault_code, "custom_code");
  EXPECT_EQ(by["ok:after"].data, "after");
  // The node is still alive.
  auto nodes = conn->nodes();
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ(nodes->size(), 1u);
}

TEST(Grid, OversizedPayloadIsRefusedAloneAndBigResultsArriveWhole) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"echo", false, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "big");
  ASSERT_TRUE(bc.ok());
  // 40 results of 900 KiB: far more than one 8 MiB frame if sent together.
  std::string big(900 << 10, 'b');
  for (int i = 0; i < 40; ++i) ASSERT_TRUE((*bc)->send(big, std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->send(std::string((1 << 20) + 1, 'x'), "too-big").ok());  // over the limit
  ASSERT_TRUE((*bc)->send("small", "after").ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  EXPECT_EQ((*bc)->rejected(), 1u);
  std::set<std::string> got;
  proto::Response r;
  while (got.size() < 41) {
    auto ok = (*bc)->next_response(&r, 20'000);
    ASSERT_TRUE(ok.ok() && *ok) << "stalled after " << got.size();
    ASSERT_TRUE(r.ok());
    if (r.user_data == "after")
      EXPECT_EQ(r.data, "small");
    else
      EXPECT_EQ(r.data.size(), big.size());
    got.insert(r.user_data);
  }
  EXPECT_EQ(got.count("too-big"), 0u);
}

TEST(Grid, LongFaultCodeDoesNotWedgeTheNode) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto got = RunInteractive(*conn, "fail", {"fault:" + std::string(300, 'c'), "ok:next"}, 20'000);
  ASSERT_EQ(got.size(), 2u);
  for (auto& [id, r] : got) {
    if (r.user_data == "ok:next")
      EXPECT_EQ(r.data, "next");
    else
      EXPECT_EQ(r.fault_code, std::string(64, 'c'));
  }
}

// A call that finds the head gone fails within the connection's timeout: its
// resends wait for a connection only as long as the call has left.
TEST(Grid, ACallOnADeadHeadEndsWithinTheTimeout) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect(2'000);
  ASSERT_NE(conn, nullptr);
  auto info = conn->create_session({.service = "echo", .durable = true});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  g.kill_head();
  auto t0 = std::chrono::steady_clock::now();
  auto page = conn->fetch(info->session_id, 0, 100, 0);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), Code::kUnavailable) << page.status().ToString();
  EXPECT_LT(s, 2.8) << page.status().ToString();
}

}  // namespace
}  // namespace zgrid
