// The node's results of tasks that finish close together share ONE
// `results` message (node/result_hold.hpp, docs/protocol.md "Nodes"), also
// when they answer tasks of several task messages, while a lone task's
// answer still goes at once. The head is a fake (tests/support/fake_head.hpp);
// the node is run_node on a thread of this process with one worker, so the
// order the tasks run in is known.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "node/node.hpp"
#include "node/result_hold.hpp"
#include "services/service.hpp"
#include "tests/support/fake_head.hpp"

namespace zgrid::node {
namespace {

using zgrid::testing::FakeHead;
using zgrid::testing::Got;

// run_node on a thread with one worker, registered with `head`.
class OneWorkerNode {
 public:
  explicit OneWorkerNode(FakeHead& head) {
    svc::register_builtins(registry_);
    o_.head = head.endpoint();
    o_.workers = 1;
    o_.prefetch = 16;
    o_.node_id = "n1";
    thread_ = std::thread([this] { status_ = run_node(o_, registry_, stop_); });
    Got reg;
    EXPECT_TRUE(head.recv_type(proto::kRegister, &reg, 10'000));
    rid = reg.rid;
    head.registered(reg, 1, /*hb_ms=*/60'000);  // no reconnect while the test runs
  }
  ~OneWorkerNode() {
    stop_ = true;
    thread_.join();
    EXPECT_TRUE(status_.ok()) << status_.ToString();
  }
  std::string rid;

 private:
  svc::Registry registry_;
  NodeOptions o_;
  std::atomic<bool> stop_{false};
  Status status_;
  std::thread thread_;
};

// Reads results messages until every id of `want` was answered (ok, its
// payload echoed by sleep: empty); returns how many messages they came in.
int ResultsMessages(FakeHead& head, const std::set<std::uint64_t>& want) {
  std::set<std::uint64_t> got;
  int messages = 0;
  Got m;
  while (got.size() < want.size() && head.recv_type(proto::kResults, &m, 10'000)) {
    ++messages;
    for (const auto& r : m.results) {
      EXPECT_TRUE(want.count(r.task_id)) << r.task_id;
      EXPECT_TRUE(r.fault_code.empty()) << r.task_id << ": " << r.fault_code;
      EXPECT_TRUE(got.insert(r.task_id).second) << "answered twice: " << r.task_id;
    }
  }
  EXPECT_EQ(got, want);
  return messages;
}

TEST(NodeResultMerge, TasksFinishingTogetherComeBackInOneResultsMessage) {
  zmq::context_t ctx(1);
  FakeHead head(ctx);
  OneWorkerNode node(head);
  // The worker runs 1, 2, 3 one after the other, saying "more" after the
  // first two: one message for the three (it was three). A machine that
  // stalls the worker past the hold may split one round: a few rounds.
  int fewest = 100;
  std::uint64_t id = 1;
  for (int round = 0; round < 5 && fewest > 1; ++round, id += 3) {
    head.tasks(node.rid, "sleep", id, std::vector<std::string>{"0", "0", "0"});
    fewest = std::min(fewest, ResultsMessages(head, {id, id + 1, id + 2}));
  }
  EXPECT_EQ(fewest, 1);
  // Two task messages sent back to back: their four results share one
  // results message too (a results message answers tasks of several).
  fewest = 100;
  for (int round = 0; round < 5 && fewest > 1; ++round, id += 4) {
    head.tasks(node.rid, "sleep", id, std::vector<std::string>{"0", "0"});
    head.tasks(node.rid, "sleep", id + 2, std::vector<std::string>{"0", "0"});
    fewest = std::min(fewest, ResultsMessages(head, {id, id + 1, id + 2, id + 3}));
  }
  EXPECT_EQ(fewest, 1);
}

TEST(NodeResultMerge, ALoneTaskIsAnsweredWithoutWaitingForTheHold) {
  zmq::context_t ctx(1);
  FakeHead head(ctx);
  OneWorkerNode node(head);
  // Nothing more claimed: never held (the rule itself:
  // NodeResultHold.NothingMoreComingSendsAtOnceWithWhatIsHeld). End to end,
  // each lone task comes back alone, and the fastest of ten round trips
  // within a few milliseconds (a bound a loaded machine keeps).
  auto fastest = std::chrono::steady_clock::duration::max();
  for (std::uint64_t id = 1; id <= 10; ++id) {
    const auto t0 = std::chrono::steady_clock::now();
    head.tasks(node.rid, "sleep", id, "0");
    ASSERT_EQ(ResultsMessages(head, {id}), 1);
    fastest = std::min(fastest, std::chrono::steady_clock::now() - t0);
  }
  EXPECT_LT(fastest, std::chrono::milliseconds(5));
}

}  // namespace
}  // namespace zgrid::node
