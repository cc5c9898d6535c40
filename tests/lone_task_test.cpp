// Lone tasks run inline on the node's I/O thread (docs/architecture.md,
// "Lone tasks run inline"), with real processes: one request at a time of
// echo and factorize (services that declare it) is answered exactly, most
// of them by the I/O thread (the node's count at stop), while a service that
// does not declare it (sleep) still runs on the workers, its task timeout
// still stopping and faulting it without hurting a lone request after it.
#include <gtest/gtest.h>
#include <signal.h>
#include <zgrid/client.hpp>

#include <regex>
#include <string>

#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::Grid;

// Sends `payload` alone and waits for its answer.
proto::Response Lone(BrokerClient& bc, const std::string& payload, const std::string& tag) {
  proto::Response r;
  EXPECT_TRUE(bc.send(payload, tag).ok());
  EXPECT_TRUE(bc.flush().ok());
  auto ok = bc.next_response(&r, 10'000);
  EXPECT_TRUE(ok.ok() && *ok) << tag << " not answered";
  EXPECT_EQ(r.user_data, tag);
  return r;
}

TEST(LoneTask, LoneRequestsRunInlineExactlyAndTimeoutsStillFault) {
  Grid g;
  g.start_head({"--max-retries", "1"});
  std::size_t node = g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();

  auto echo = conn->create_session({"echo", false, 0});
  ASSERT_TRUE(echo.ok());
  auto be = BrokerClient::open(*conn, echo->session_id, "e");
  ASSERT_TRUE(be.ok());
  for (int i = 0; i < 30; ++i) {
    std::string p = "hello " + std::to_string(i);
    auto r = Lone(**be, p, "e" + std::to_string(i));
    EXPECT_TRUE(r.ok()) << r.fault_code;
    EXPECT_EQ(r.data, p);
  }

  auto fact = conn->create_session({"factorize", false, 0});
  ASSERT_TRUE(fact.ok());
  auto bf = BrokerClient::open(*conn, fact->session_id, "f");
  ASSERT_TRUE(bf.ok());
  const std::pair<const char*, const char*> kFactors[] = {
      {"91", "7 * 13"},
      {"97", "97"},
      {"1", "1"},
      {"1024", "2 * 2 * 2 * 2 * 2 * 2 * 2 * 2 * 2 * 2"},
      {"2147483647", "2147483647"},
      {"600851475143", "71 * 839 * 1471 * 6857"},
      {"1000000007", "1000000007"},
      {"30", "2 * 3 * 5"},
      {"4294967297", "641 * 6700417"},
      {"121", "11 * 11"}};
  for (const auto& [n, want] : kFactors) {
    auto r = Lone(**bf, n, n);
    EXPECT_TRUE(r.ok()) << n << ": " << r.fault_code;
    EXPECT_EQ(r.data, want) << n;
  }
  auto bad = Lone(**bf, "not a number", "bad");
  EXPECT_EQ(bad.fault_code, "invalid_argument");

  // sleep does not declare run_inline: the workers run it, and its task
  // timeout stops and faults it as before; the lone request after it is
  // answered.
  proto::CreateSession cs;
  cs.service = "sleep";
  cs.task_timeout_ms = 300;
  auto sl = conn->create_session(cs);
  ASSERT_TRUE(sl.ok());
  auto bs = BrokerClient::open(*conn, sl->session_id, "s");
  ASSERT_TRUE(bs.ok());
  auto slow = Lone(**bs, "3000", "slow");
  EXPECT_EQ(slow.fault_code, "retry_limit_exceeded");
  auto quick = Lone(**bs, "1", "quick");
  EXPECT_TRUE(quick.ok()) << quick.fault_code;
  auto after = Lone(**be, "after", "after");
  EXPECT_EQ(after.data, "after");

  // The node's count at a graceful stop: every lone echo and factorize but
  // each service's first (not measured yet) may run inline; none of sleep.
  g.node(node).signal(SIGTERM);
  ASSERT_EQ(g.node(node).wait(10'000), 0);
  std::string log = testing::read_file(g.dir().file("node" + std::to_string(node) + ".log"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(tasks run inline on the I/O thread: (\d+))")))
      << log;
  const int ran_inline = std::stoi(m[1]);
  EXPECT_GE(ran_inline, 25) << log;           // most: a loaded machine may measure a few long
  EXPECT_LE(ran_inline, 31 + 11 - 2) << log;  // never a service's first, never sleep
}

}  // namespace
}  // namespace zgrid
