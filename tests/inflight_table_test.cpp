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

// One record per task message: part of a message answered, the rest lost
// with its node; a duplicate or late result of an answered task is ignored.
TEST(InflightTable, AMessagePartlyAnsweredLosesOnlyItsUnansweredTasks) {
  InflightTable t;
  Send(t, 1, 64, 1);
  EXPECT_EQ(t.messages(), 1u);
  for (std::uint64_t task : {1, 2, 10, 63, 64}) ASSERT_TRUE(t.release(task, 1).has_value());
  for (std::uint64_t task : {1, 10, 64}) EXPECT_FALSE(t.release(task, 1).has_value());  // again
  EXPECT_FALSE(t.release(65, 1).has_value());  // past the message
  EXPECT_FALSE(t.release(0, 1).has_value());
  EXPECT_EQ(t.size(), 59u);
  auto lost = t.release_node(1);
  ASSERT_EQ(lost.size(), 59u);
  std::uint64_t prev = 0;
  for (const auto& [task, f] : lost) {
    EXPECT_TRUE(task != 1 && task != 2 && task != 10 && task != 63 && task != 64) << task;
    EXPECT_GT(task, prev);  // task order
    EXPECT_EQ(f.request.id, 1000 + task);
    prev = task;
  }
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.messages(), 0u);
  EXPECT_FALSE(t.release(3, 1).has_value());  // a late result of a lost task
}

// Messages of more than 64 tasks (the bitmap past one word), answered out
// of order; the record leaves with its last task.
TEST(InflightTable, BigMessagesAnsweredOutOfOrder) {
  InflightTable t;
  Send(t, 100, 1000, 4, /*backstop=*/10);
  Send(t, 1100, 3, 5);
  std::vector<std::uint64_t> order;
  for (std::uint64_t i = 0; i < 1000; ++i) order.push_back(100 + (i * 379) % 1000);
  for (std::size_t k = 0; k < order.size(); ++k) {
    if (k == 900) {  // the rest run past the backstop
      auto over = t.release_overdue(10);
      EXPECT_EQ(over.size(), 100u);
      for (const auto& [task, f] : over) EXPECT_EQ(f.request.id, 1000 + task);
    }
    auto f = t.release(order[k], 4);
    EXPECT_EQ(f.has_value(), k < 900) << k;
    if (f) {
      EXPECT_EQ(f->request.id, 1000 + order[k]);
    }
  }
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.messages(), 1u);
  EXPECT_EQ(t.on_node(4), 0u);
  EXPECT_EQ(t.on_node(5), 3u);
  // What a message shares comes back with each of its tasks.
  InflightTable u;
  u.add_batch(7, 2, 9, 55);
  InFlight f = Task(3, 9, 1, 55);
  f.started = 44;
  f.svc_max_retries = 2;
  u.add(7, f);
  u.add(8, Task(3, 9, 2, 55));
  auto g = u.release(8, 9);
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->session, 3u);
  EXPECT_EQ(g->node, 9u);
  EXPECT_EQ(g->started, 44);
  EXPECT_EQ(g->backstop, 55);
  EXPECT_EQ(g->svc_max_retries, 2);
  EXPECT_EQ(g->request.id, 2u);
}

// One results message may answer tasks of several task messages of its node
// (a node merges what finished together, docs/protocol.md "Nodes"), in any
// order, some of them only partly; another node's ids in it are refused.
TEST(InflightTable, OneResultsMessageAnswersSeveralTaskMessagesInterleaved) {
  InflightTable t;
  Send(t, 1, 4, 1);
  Send(t, 5, 4, 2);
  Send(t, 9, 4, 1);
  Send(t, 13, 4, 1);
  for (std::uint64_t m = 0; m < 12; ++m) Send(t, 100 + 4 * m, 4, 1);  // past the node's first 8
  EXPECT_EQ(t.messages(), 16u);
  // The results message: its items as the node merged them.
  for (std::uint64_t task : {9, 1, 13, 2, 10, 14, 3, 144, 100, 11})
    ASSERT_TRUE(t.release(task, 1).has_value()) << task;
  EXPECT_FALSE(t.release(5, 1).has_value());  // node 2's
  EXPECT_FALSE(t.release(9, 1).has_value());  // twice in the message
  EXPECT_EQ(t.on_node(1), 60u - 10u);
  EXPECT_EQ(t.messages(), 16u);  // none of them whole yet
  // The next one finishes them: each record leaves with its last task.
  for (std::uint64_t task : {4, 12, 15, 16}) ASSERT_TRUE(t.release(task, 1).has_value()) << task;
  EXPECT_EQ(t.messages(), 13u);  // 1..4, 9..12 and 13..16 left
  auto lost = t.release_node(1);
  EXPECT_EQ(lost.size(), 46u);
  EXPECT_EQ(t.on_node(2), 4u);
  EXPECT_EQ(t.messages(), 1u);
}

}  // namespace
}  // namespace zgrid::head
