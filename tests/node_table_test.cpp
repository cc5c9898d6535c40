// head/node_table: registration and replacement, loss with orphaned tasks,
// liveness and quarantine, in-process.
#include <gtest/gtest.h>

#include "head/node_table.hpp"

namespace zgrid::head {
namespace {

proto::Register Reg(const std::string& id, std::uint64_t capacity = 8) {
  proto::Register m;
  m.node_id = id;
  m.host.assign(1, 'h');
  m.workers = 2;
  m.capacity = capacity;
  m.services = {"factorize@1"};
  return m;
}

TEST(NodeTable, RegisterFindAndHearFrom) {
  NodeTable t(1000, 3);
  NodeState& a = t.add("rid-a", Reg("a"), 10);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.find(a.ordinal)->id, "a");
  EXPECT_EQ(t.find_id("a"), &a);
  EXPECT_EQ(t.find_id("zz"), nullptr);
  EXPECT_EQ(t.workers(), 2u);
  a.blocked = true;
  NodeState* heard = t.heard_from("rid-a", 500);
  ASSERT_EQ(heard, &a);
  EXPECT_EQ(a.last_seen, 500);
  EXPECT_FALSE(a.blocked);  // it spoke: it can take work again
  EXPECT_EQ(t.heard_from("rid-unknown", 500), nullptr);
}

TEST(NodeTable, ARestartedNodeOrAReusedConnectionReplacesTheOldRegistration) {
  NodeTable t(1000, 3);
  std::uint64_t a = t.add("rid-a", Reg("a"), 0).ordinal;
  std::uint64_t b = t.add("rid-b", Reg("b"), 0).ordinal;
  EXPECT_TRUE(t.replaced_by("rid-new", "new").empty());
  EXPECT_EQ(t.replaced_by("rid-new", "a"), std::vector<std::uint64_t>{a});  // same id
  EXPECT_EQ(t.replaced_by("rid-b", "new"), std::vector<std::uint64_t>{b});  // same connection
  EXPECT_EQ(t.replaced_by("rid-a", "a"), std::vector<std::uint64_t>{a});    // both: once
  EXPECT_EQ(t.replaced_by("rid-b", "a"), (std::vector<std::uint64_t>{a, b}));
}

TEST(NodeTable, LosingANodeReturnsItsTasksAndForgetsItsConnection) {
  NodeTable t(1000, 3);
  InflightTable inflight;
  std::uint64_t a = t.add("rid-a", Reg("a"), 0).ordinal;
  std::uint64_t b = t.add("rid-b", Reg("b"), 0).ordinal;
  inflight.add_batch(1, 2, a, 0);
  inflight.add(1, InFlight{7, a, 0, 0, {}, -1});
  inflight.add(2, InFlight{7, a, 0, 0, {}, -1});
  inflight.add_batch(3, 1, b, 0);
  inflight.add(3, InFlight{7, b, 0, 0, {}, -1});
  auto lost = t.lose(a, inflight, 0);
  ASSERT_TRUE(lost.has_value());
  EXPECT_EQ(lost->node.id, "a");
  ASSERT_EQ(lost->orphans.size(), 2u);
  EXPECT_EQ(lost->orphans[0].first, 1u);
  EXPECT_EQ(lost->orphans[1].first, 2u);
  EXPECT_EQ(inflight.size(), 1u);  // b's task stays
  EXPECT_EQ(t.heard_from("rid-a", 1), nullptr);
  EXPECT_EQ(t.find(a), nullptr);
  EXPECT_FALSE(t.lose(a, inflight, 0).has_value());
  EXPECT_EQ(t.size(), 1u);
}

TEST(NodeTable, SilentPastItsMissedHeartbeats) {
  NodeTable t(1000, 3);
  NodeState& a = t.add("rid-a", Reg("a"), 0);
  EXPECT_FALSE(t.silent(a, 3000));
  EXPECT_TRUE(t.silent(a, 3001));
  t.heard_from("rid-a", 3001);
  EXPECT_FALSE(t.silent(a, 6000));
}

// A tick looks only at the nodes it will find silent: the liveness order is
// the order they were last heard from, kept as they speak, join and go.
TEST(NodeTable, SilentNodesComeOldestFirstFromTheLivenessOrder) {
  NodeTable t(1000, 3);
  InflightTable inflight;
  for (int i = 0; i < 5; ++i)
    t.add(std::string("rid-").append(std::to_string(i)),
          Reg(std::string(1, 'n').append(std::to_string(i))), i);
  // n0..n4 joined at 0..4; n1 and n3 speak at 2000.
  t.heard_from("rid-1", 2000);
  t.heard_from("rid-3", 2000);
  auto ids = [&](Millis now) {
    std::vector<std::string> out;
    for (std::uint64_t o : t.silent_nodes(now)) out.push_back(t.find(o)->id);
    return out;
  };
  EXPECT_TRUE(ids(3000).empty());
  EXPECT_EQ(ids(3003), (std::vector<std::string>{"n0", "n2"}));
  EXPECT_EQ(ids(5001), (std::vector<std::string>{"n0", "n2", "n4", "n1", "n3"}));
  t.lose(t.find_id("n2")->ordinal, inflight, 0);
  EXPECT_EQ(ids(3005), (std::vector<std::string>{"n0", "n4"}));
  EXPECT_EQ(t.find_id("n2"), nullptr);
  EXPECT_NE(t.find_id("n4"), nullptr);
  EXPECT_TRUE(t.verify());
}

TEST(NodeTable, QuarantineNeedsEvidenceAndPeersThatDoBetter) {
  NodeTable t(1000, 3);
  NodeState& bad = t.add("r1", Reg("bad"), 0);
  NodeState& good = t.add("r2", Reg("good"), 0);
  double rate = 0, peers = 0;
  bad.done = 5;
  bad.faulted = 14;
  bad.bad = 14;  // 19 runs: too few to judge
  EXPECT_FALSE(t.check_quarantine(bad, &rate, &peers));
  bad.faulted = bad.bad = 15;
  EXPECT_FALSE(t.check_quarantine(bad, &rate, &peers));  // no peer has run enough
  good.done = 100;
  good.bad = good.faulted = 20;  // peers fault too: 1/6, not 5 times better
  EXPECT_FALSE(t.check_quarantine(bad, &rate, &peers));
  good.bad = good.faulted = 5;
  EXPECT_TRUE(t.check_quarantine(bad, &rate, &peers));
  EXPECT_TRUE(bad.quarantined);
  EXPECT_NEAR(rate, 0.75, 1e-9);
  EXPECT_FALSE(t.check_quarantine(bad, &rate, &peers));  // once
  EXPECT_FALSE(good.quarantined);
}

// Who offers a service, for the session status field `paused` (issue 27,
// review of item 8): how many nodes, how many of them take no new work
// (draining, quarantined), when the last one went; and the list of what the
// nodes offer, built once per change of the groups, not per session.
TEST(NodeTable, OfferCountsIdleNodesAndWhenTheLastWent) {
  NodeTable t(1000, 3);
  InflightTable inflight;
  proto::Register e = Reg("e");
  e.services = {"echo@1"};
  t.add("re", e, 0);
  NodeState& a = t.add("ra", Reg("a"), 0);
  NodeState& b = t.add("rb", Reg("b"), 0);
  NodeIndex& ix = t.index();
  auto o = ix.offer("factorize", false);
  EXPECT_EQ(o.nodes, 2u);
  EXPECT_EQ(o.draining + o.quarantined, 0u);
  EXPECT_EQ(o.vacated_at, NodeIndex::kNever);
  EXPECT_EQ(ix.offer("nosuch", false).nodes, 0u);
  EXPECT_EQ(ix.offer("nosuch", false).vacated_at, NodeIndex::kNever);
  const std::string& list = ix.offered_list();
  EXPECT_EQ(list, "echo@1, factorize@1");
  // Draining, then quarantined (counted once, as quarantined).
  a.draining = true;
  t.touch(a);
  b.draining = true;
  t.touch(b);
  o = ix.offer("factorize", false);
  EXPECT_EQ(o.draining, 2u);
  b.quarantined = true;
  t.touch(b);
  o = ix.offer("factorize", false);
  EXPECT_EQ(o.draining, 1u);
  EXPECT_EQ(o.quarantined, 1u);
  EXPECT_TRUE(t.verify());
  a.draining = false;
  t.touch(a);
  EXPECT_EQ(ix.offer("factorize", false).draining, 0u);
  // The last node of the service goes at 700: when, and the list changes.
  ASSERT_TRUE(t.lose(a.ordinal, inflight, 500).has_value());
  EXPECT_EQ(ix.offer("factorize", false).vacated_at, NodeIndex::kNever);  // b is still there
  ASSERT_TRUE(t.lose(b.ordinal, inflight, 700).has_value());
  o = ix.offer("factorize", false);
  EXPECT_EQ(o.nodes, 0u);
  EXPECT_EQ(o.quarantined, 0u);
  EXPECT_EQ(o.vacated_at, 700);
  EXPECT_EQ(ix.offered_list(), "echo@1");
  EXPECT_TRUE(t.verify());
  // Many services: eight named, then how many more.
  proto::Register many = Reg("m");
  many.services.clear();
  for (int i = 0; i < 11; ++i)
    many.services.push_back(std::string(1, 's').append(std::to_string(i)).append("@1"));
  t.add("rm", many, 800);
  EXPECT_EQ(ix.offered_list(), "echo@1, s0@1, s10@1, s1@1, s2@1, s3@1, s4@1, s5@1, and 4 more");
  EXPECT_TRUE(t.verify());
}

}  // namespace
}  // namespace zgrid::head
