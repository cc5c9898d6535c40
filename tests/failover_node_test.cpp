// Failover, the node's side, with real processes (docs/operations.md,
// "Failover: nodes"): two zgrid-heads on one data directory (the second a
// standby) and a zgrid-node given both backends, at the default heartbeat
// and lease. The active head is SIGKILLed, or frozen, while a durable
// session runs: the node registers with the head that took over within
// seconds, and every request of the session is answered exactly once.
#include <gtest/gtest.h>
#include <signal.h>
#include <zgrid/client.hpp>

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "tests/support/fetch_all.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::HeadProcess;
using testing::Process;
using testing::read_file;
using testing::wait_until;

class FailoverNode : public ::testing::Test {
 protected:
  // A active, B its standby, a node given both (A first).
  void SetUp() override {
    a_ = std::make_unique<HeadProcess>(dir_, "a", dir_.file("data"),
                                       std::vector<std::string>{"--http", "off"});
    a_->start();
    ASSERT_TRUE(a_->wait_role("active", 10'000)) << a_->log();
    b_ = std::make_unique<HeadProcess>(dir_, "b", dir_.file("data"),
                                       std::vector<std::string>{"--http", "off"});
    b_->start();
    ASSERT_EQ(b_->role(), "standby") << b_->log();
    node_ = std::make_unique<Process>(
        std::vector<std::string>{ZGRID_NODE_BIN, "--head", a_->backend() + "," + b_->backend(),
                                 "--workers", "2", "--prefetch", "4", "--node-id", "n1"},
        node_log());
  }

  std::string node_log() const { return dir_.file("node.log"); }

  std::unique_ptr<client::Connection> Connect(const std::string& frontend,
                                              Millis timeout_ms = 10'000) {
    client::ClientOptions o;
    o.head = frontend;
    o.timeout_ms = timeout_ms;
    auto c = client::Connection::open(o);
    if (!c.ok()) {
      ADD_FAILURE() << "cannot connect to " << frontend << ": " << c.status().ToString();
      return nullptr;
    }
    return std::move(c).value();
  }

  // On A, once the node registered there: a durable session of kN sleeps
  // of 10 ms (3 s of work on the node's two workers), committed, and waited
  // on until 100 are done — A then dies with tasks in flight at the node.
  std::string SubmitOnA() {
    auto conn = Connect(a_->frontend());
    if (!conn) return "";
    EXPECT_TRUE(wait_until(
        [&] {
          auto nodes = conn->nodes();
          return nodes.ok() && nodes->size() == 1;
        },
        15'000, 20))
        << read_file(node_log());
    auto info = conn->create_session({"sleep", true, 0});
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    if (!info.ok()) return "";
    auto bc = BrokerClient::open(*conn, info->session_id, "c");
    EXPECT_TRUE(bc.ok()) << bc.status().ToString();
    if (!bc.ok()) return "";
    for (int i = 0; i < kN; ++i) EXPECT_TRUE((*bc)->send("10", std::to_string(i)).ok());
    EXPECT_TRUE((*bc)->end_requests().ok());
    EXPECT_TRUE(wait_until(
        [&] {
          auto st = conn->session_status(info->session_id);
          return st.ok() && st->u64("done") >= 100;
        },
        30'000, 10));
    return info->session_id;
  }

  // Waits for the node's line that it went from A to B (epoch 2); returns
  // the milliseconds since `from`, or -1.
  Millis WaitNodeOnB(Millis from) {
    const std::string line = "; registered with " + b_->backend() + " (epoch 2)";
    if (!wait_until([&] { return read_file(node_log()).find(line) != std::string::npos; }, 20'000,
                    10)) {
      ADD_FAILURE() << read_file(node_log()) << "\nB: " << b_->log();
      return -1;
    }
    Millis took = SteadyClock::instance().now_ms() - from;
    std::printf("the node registered with the new head %lld ms after A stopped\n",
                static_cast<long long>(took));
    // One line says where it went, and why.
    EXPECT_NE(read_file(node_log()).find("head " + a_->backend() + " silent for "),
              std::string::npos)
        << read_file(node_log());
    return took;
  }

  // Every request of `sid` answered exactly once, fetched from B.
  void ExpectExactlyOnceOnB(const std::string& sid) {
    auto conn = Connect(b_->frontend(), 30'000);
    ASSERT_TRUE(conn);
    auto all = testing::fetch_all(*conn, sid, 120'000);
    ASSERT_EQ(all.size(), static_cast<std::size_t>(kN));
    std::set<std::string> seen;
    for (const auto& r : all) {
      EXPECT_TRUE(r.ok()) << r.fault_code << ": " << r.data;
      EXPECT_EQ(r.data, "10");
      EXPECT_TRUE(seen.insert(r.user_data).second) << r.user_data << " answered twice";
    }
    auto st = conn->session_status(sid);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    EXPECT_EQ(st->u64("total"), static_cast<std::uint64_t>(kN));
    EXPECT_EQ(st->u64("done"), static_cast<std::uint64_t>(kN));
    EXPECT_EQ(st->u64("faulted"), 0u);
    auto nodes = conn->nodes();
    ASSERT_TRUE(nodes.ok());
    ASSERT_EQ(nodes->size(), 1u);
    EXPECT_EQ((*nodes)[0].str("node_id"), "n1");
  }

  static constexpr int kN = 600;
  testing::TempDir dir_;
  std::unique_ptr<HeadProcess> a_, b_;
  std::unique_ptr<Process> node_;
};

// SIGKILL: B takes over (at once here: A's process is gone from this
// machine), and the node finds it after 1.5 heartbeats of A's silence,
// before it would have given A up.
TEST_F(FailoverNode, AKilledHeadsNodeRegistersWithTheStandbyThatTookOver) {
  std::string sid = SubmitOnA();
  ASSERT_EQ(sid.size(), 32u);
  Millis t0 = SteadyClock::instance().now_ms();
  a_->kill_now();
  Millis took = WaitNodeOnB(t0);
  ASSERT_GE(took, 0);
  EXPECT_LT(took, 5'000) << read_file(node_log());
  ExpectExactlyOnceOnB(sid);
}

// A frozen head (SIGSTOP: a machine that hangs): its lease expires after
// 2 s and B takes over; the node is with B within the 5 s. Woken,
// A finds its lease gone and exits without a write; the node stays with B.
TEST_F(FailoverNode, AFrozenHeadsNodeMovesToTheNewHeadAndStaysThereWhenItWakes) {
  std::string sid = SubmitOnA();
  ASSERT_EQ(sid.size(), 32u);
  Millis t0 = SteadyClock::instance().now_ms();
  a_->process().signal(SIGSTOP);
  Millis took = WaitNodeOnB(t0);
  ASSERT_GE(took, 0);
  EXPECT_LT(took, 5'000) << read_file(node_log()) << "\nB: " << b_->log();
  a_->process().signal(SIGCONT);
  EXPECT_GE(a_->process().wait(10'000), 0) << "A did not stand down: " << a_->log();
  ExpectExactlyOnceOnB(sid);
  // Registered twice in all: with A, then with B.
  std::string log = read_file(node_log());
  std::size_t lines = 0;
  for (std::size_t p = log.find("registered with"); p != std::string::npos;
       p = log.find("registered with", p + 1))
    ++lines;
  EXPECT_EQ(lines, 2u) << log;
}

}  // namespace
}  // namespace zgrid
