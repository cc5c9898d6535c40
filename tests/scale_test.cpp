// One head, 10,000 nodes (issue 18): simulated nodes in three zgrid-node
// --simulate processes register with a durable head; a durable session is
// spread across them; the process holding 100 of them is SIGKILLed while
// they hold work; every request is answered exactly once, with its own
// payload, and the head notices all 100 losses within its heartbeat misses.
#include <gtest/gtest.h>
#include <zgrid/client.hpp>

#include <map>
#include <string>
#include <vector>

#include "tests/support/fetch_all.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid::testing {
namespace {

std::uint64_t NodeCount(client::Connection& conn) {
  auto st = conn.grid_status();
  return st.ok() ? st->u64("nodes") : 0;
}

// The head's "node lost" lines for nodes whose id starts with `prefix`, by
// node id, leaving out registrations a node replaced itself (a simulator
// that did not hear "registered" in time registers again).
std::map<std::string, int> LossesOf(const std::string& log, const std::string& prefix) {
  std::map<std::string, int> out;
  const std::string mark = "node lost node=" + prefix;
  for (auto at = log.find(mark); at != std::string::npos; at = log.find(mark, at + 1)) {
    std::string line = log.substr(at, log.find('\n', at) - at);
    if (line.find("reason=re-registered") != std::string::npos) continue;
    ++out[line.substr(15, line.find(' ', 15) - 15)];
  }
  return out;
}

TEST(Scale, TenThousandNodesTakeADurableSessionAndLoseAHundredAtOnce) {
  Grid g;
  g.start_durable_head({"--heartbeat", "1s", "--heartbeat-misses", "3"});
  // Task messages are held 400 ms, and 60 s by the victims: they still hold
  // their work when they are killed, however slowly this test looks.
  auto sims = [&](const std::string& prefix, int n, const char* hold) {
    return g.add_node({"--simulate", std::to_string(n), "--prefetch", "8", "--node-id", prefix,
                       "--heartbeat", "1s", "--simulate-hold", hold, "--log-level", "warn"});
  };
  sims("a", 4950, "400ms");
  sims("b", 4950, "400ms");
  std::size_t victims = sims("v", 100, "60s");
  auto conn = g.connect(30'000);
  ASSERT_TRUE(wait_until([&] { return NodeCount(*conn) == 10'000; }, 120'000, 50))
      << "registered: " << NodeCount(*conn);

  const std::uint64_t kRequests = 60'000;
  auto info = conn->create_session({"echo", true, 0});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto bc = client::BrokerClient::open(*conn, info->session_id, "sweep");
  ASSERT_TRUE(bc.ok());
  for (std::uint64_t i = 1; i <= kRequests; ++i) {
    std::string p = std::to_string(i);
    ASSERT_TRUE((*bc)->send(p, p).ok());
  }
  ASSERT_TRUE((*bc)->end_requests().ok());  // committed

  // Wait until the victims hold work, then kill their process.
  auto victims_inflight = [&] {
    auto nodes = conn->nodes();
    std::uint64_t held = 0, with_work = 0;
    if (nodes.ok())
      for (const auto& n : *nodes) {
        if (n.str("node_id").rfind("v-", 0) == 0) held += n.u64("inflight");
        with_work += n.u64("inflight") + n.u64("done") > 0;
      }
    return std::make_pair(held, with_work);
  };
  std::pair<std::uint64_t, std::uint64_t> seen{0, 0};
  ASSERT_TRUE(wait_until(
      [&] {
        seen = victims_inflight();
        return seen.first >= 100;
      },
      60'000, 100));
  EXPECT_GT(seen.second, 9'000u) << "the work did not spread across the nodes";
  g.node(victims).kill_now();
  ASSERT_TRUE(wait_until([&] { return NodeCount(*conn) == 9'900; }, 10'000, 50))
      << "nodes after the kill: " << NodeCount(*conn);

  // Every request answered once, by its own payload.
  auto all = fetch_all(*conn, info->session_id, 300'000);
  ASSERT_EQ(all.size(), kRequests);
  std::vector<char> seen_id(kRequests + 1, 0);
  for (const auto& r : all) {
    ASSERT_GE(r.request_id, 1u);
    ASSERT_LE(r.request_id, kRequests);
    EXPECT_EQ(seen_id[r.request_id]++, 0) << "request " << r.request_id << " answered twice";
    EXPECT_TRUE(r.ok()) << r.fault_code << ": " << r.data;
    EXPECT_EQ(r.data, std::to_string(r.request_id));
    EXPECT_EQ(r.user_data, std::to_string(r.request_id));
  }
  auto st = conn->session_status(info->session_id);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("done"), kRequests);
  auto losses = LossesOf(g.head_log(), "v-");
  EXPECT_EQ(losses.size(), 100u);
  for (const auto& [id, times] : losses) EXPECT_EQ(times, 1) << id;
  EXPECT_TRUE(LossesOf(g.head_log(), "a-").empty());
  EXPECT_TRUE(LossesOf(g.head_log(), "b-").empty());
}

}  // namespace
}  // namespace zgrid::testing
