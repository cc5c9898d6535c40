// head/inflight_table: each task leaves exactly once — finished, with its
// node, or overdue — in-process.
#include <gtest/gtest.h>

#include <set>

#include "head/inflight_table.hpp"

namespace zgrid::head {
namespace {

InFlight Task(std::uint64_t session, std::uint64_t node, std::uint64_t request,
              Millis backstop = 0) {
  InFlight f;
  f.session = session;
  f.node = node;
  f.backstop = backstop;
  f.request.id = request;
  return f;
}

// Sends `count` tasks from `first` to `node` as one batch.
void Send(InflightTable& t, std::uint64_t first, std::uint64_t count, std::uint64_t node,
          Millis backstop = 0) {
  t.add_batch(first, count, node, backstop);
  for (std::uint64_t i = 0; i < count; ++i)
    t.add(first + i, Task(1, node, 1000 + first + i, backstop));
}

std::vector<std::uint64_t> Ids(const std::vector<InflightTable::Task>& v) {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, f] : v) ids.push_back(id);
  return ids;
}

TEST(InflightTable, AFinishedTaskLeavesOnceAndOnlyFromItsNode) {
  InflightTable t;
  Send(t, 1, 3, 7);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_FALSE(t.release(2, 8).has_value());  // another node's report
  auto f = t.release(2, 7);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->request.id, 1002u);
  EXPECT_FALSE(t.release(2, 7).has_value());  // a late duplicate
  EXPECT_FALSE(t.release(99, 7).has_value());
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.on_node(7), 2u);
}

TEST(InflightTable, LosingANodeReturnsExactlyItsTasksInOrder) {
  InflightTable t;
  Send(t, 1, 4, 1);
  Send(t, 5, 2, 2);
  Send(t, 7, 3, 1);
  ASSERT_TRUE(t.release(2, 1).has_value());
  ASSERT_TRUE(t.release(8, 1).has_value());
  EXPECT_EQ(Ids(t.release_node(1)), (std::vector<std::uint64_t>{1, 3, 4, 7, 9}));
  EXPECT_EQ(t.on_node(1), 0u);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_TRUE(t.release_node(1).empty());
  EXPECT_EQ(Ids(t.release_node(2)), (std::vector<std::uint64_t>{5, 6}));
  EXPECT_EQ(t.size(), 0u);
  // The table works on after batches came and went.
  Send(t, 10, 2, 1);
  EXPECT_EQ(t.on_node(1), 2u);
  EXPECT_TRUE(t.release(10, 1).has_value());
  EXPECT_TRUE(t.release(11, 1).has_value());
  EXPECT_EQ(t.on_node(1), 0u);
}

TEST(InflightTable, OverdueTasksLeaveAtTheirBackstopAndOthersNever) {
  InflightTable t;
  Send(t, 1, 2, 1, /*backstop=*/100);
  Send(t, 3, 2, 2, /*backstop=*/50);
  Send(t, 5, 2, 3);  // no task timeout: no backstop
  EXPECT_TRUE(t.release_overdue(49).empty());
  ASSERT_TRUE(t.release(4, 2).has_value());  // reported in time
  EXPECT_EQ(Ids(t.release_overdue(50)), std::vector<std::uint64_t>{3});
  EXPECT_EQ(Ids(t.release_node(1)), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_TRUE(t.release_overdue(1'000'000).empty());  // lost with the node already
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.on_node(3), 2u);
}

TEST(InflightTable, AThousandNodesEachLoseOnlyTheirOwn) {
  InflightTable t;
  std::uint64_t id = 1;
  for (int round = 0; round < 10; ++round)
    for (std::uint64_t node = 1; node <= 1000; ++node) {
      Send(t, id, 8, node);
      id += 8;
    }
  EXPECT_EQ(t.size(), 80'000u);
  // Half of every batch finishes.
  for (std::uint64_t task = 1; task < id; task += 2) {
    std::uint64_t node = ((task - 1) / 8) % 1000 + 1;
    ASSERT_TRUE(t.release(task, node).has_value()) << task;
  }
  auto lost = t.release_node(500);
  EXPECT_EQ(lost.size(), 40u);
  std::set<std::uint64_t> seen;
  for (const auto& [task, f] : lost) {
    EXPECT_EQ(f.node, 500u);
    EXPECT_EQ(task % 2, 0u);
    EXPECT_TRUE(seen.insert(task).second);
  }
  EXPECT_EQ(t.size(), 40'000u - 40u);
}

}  // namespace
}  // namespace zgrid::head
