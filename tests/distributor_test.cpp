// head/distributor: fairness between keys and sessions, node choice and
// chunk sizes, in-process against simulated sessions and nodes.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "head/distributor.hpp"

namespace zgrid::head {
namespace {

struct FakeSession {
  std::string owner, service = "factorize";
  std::uint64_t queued = 0;
  bool solo = false;
  SessionTurn::State hold = SessionTurn::State::kReady;  // anything else overrides
};

// Sessions and nodes as the reactor would hold them; an assignment is
// "sent" by moving credit and queue, as send_tasks does.
struct Sim {
  Distributor dist{4096};
  std::map<std::uint64_t, FakeSession> sessions;
  NodeMap nodes;
  NodeIndex index;
  std::vector<Assignment> sent;

  void add_node(std::uint64_t ord, std::uint64_t capacity,
                std::vector<std::string> services = {"factorize@1"}) {
    NodeState& n = nodes[ord];
    n.ordinal = ord;
    n.capacity = capacity;
    n.services = std::move(services);
  }
  void add_session(std::uint64_t ord, const std::string& owner, std::uint64_t queued,
                   const std::string& service = "factorize") {
    sessions[ord] = FakeSession{owner, service, queued};
    dist.activate(ord, owner);
  }
  SessionTurn ask(std::uint64_t ord) {
    auto it = sessions.find(ord);
    if (it == sessions.end() || it->second.queued == 0) return {SessionTurn::State::kIdle};
    const FakeSession& s = it->second;
    if (s.hold != SessionTurn::State::kReady) return {s.hold};
    return {SessionTurn::State::kReady, s.service, s.queued, s.solo};
  }
  // One dispatch round; returns what it assigned.
  std::vector<Assignment> round() {
    std::vector<Assignment> out;
    for (const auto& [o, n] : nodes) index.mark(n);  // tests change nodes directly
    dist.begin();
    auto a_fn = [this](std::uint64_t ord) { return ask(ord); };
    while (auto a = dist.next(a_fn, nodes, index)) {
      EXPECT_GE(a->count, 1u);
      NodeState& n = nodes.at(a->node);
      EXPECT_LE(a->count, n.free());
      n.inflight += a->count;
      index.mark(n);
      sessions.at(a->session).queued -= a->count;
      out.push_back(*a);
      sent.push_back(*a);
    }
    EXPECT_TRUE(index.verify(nodes));
    return out;
  }
  void finish_all() {
    for (auto& [o, n] : nodes) n.inflight = 0;
  }
};

std::vector<std::uint64_t> SessionsOf(const std::vector<Assignment>& as) {
  std::vector<std::uint64_t> v;
  for (const auto& a : as) v.push_back(a.session);
  return v;
}

// A node of capacity 1 takes one task per round: the order of rounds is the
// order of turns.
TEST(Distributor, KeysTakeTurnsThenTheirSessions) {
  Sim sim;
  sim.add_node(1, 1);
  sim.add_session(1, "alice", 100);
  sim.add_session(2, "alice", 100);
  sim.add_session(3, "alice", 100);
  sim.add_session(4, "bob", 100);
  std::vector<std::uint64_t> order;
  for (int i = 0; i < 8; ++i) {
    auto r = sim.round();
    ASSERT_EQ(r.size(), 1u);
    order.push_back(r[0].session);
    sim.finish_all();
  }
  // alice and bob alternate; alice's three sessions rotate in her turns.
  EXPECT_EQ(order, (std::vector<std::uint64_t>{1, 4, 2, 4, 3, 4, 1, 4}));
}

TEST(Distributor, ATurnIsLostOnlyWhenWorkWasSent) {
  Sim sim;
  sim.add_node(1, 1);
  sim.add_session(1, "alice", 10);
  sim.add_session(2, "bob", 10);
  sim.sessions[1].hold = SessionTurn::State::kWaiting;  // e.g. its journal is behind
  auto r = sim.round();
  EXPECT_EQ(SessionsOf(r), std::vector<std::uint64_t>{2});
  sim.finish_all();
  sim.sessions[1].hold = SessionTurn::State::kReady;
  // alice waited without being served: she is first now, bob's turn is used.
  r = sim.round();
  EXPECT_EQ(SessionsOf(r), std::vector<std::uint64_t>{1});
  sim.finish_all();
  EXPECT_EQ(SessionsOf(sim.round()), std::vector<std::uint64_t>{2});
}

TEST(Distributor, IdleAndPausedSessionsLeaveUntilActivatedAgain) {
  Sim sim;
  sim.add_node(1, 100);
  sim.add_session(1, "alice", 10);
  sim.add_session(2, "alice", 10);
  sim.sessions[2].hold = SessionTurn::State::kPaused;
  sim.round();
  EXPECT_FALSE(sim.dist.active(1));  // all of its work went: idle now
  EXPECT_FALSE(sim.dist.active(2));  // paused: out of the ring
  EXPECT_EQ(sim.sessions[2].queued, 10u);
  sim.sessions[2].hold = SessionTurn::State::kReady;
  EXPECT_TRUE(sim.round().empty());  // nobody asks for it until it is activated
  sim.dist.activate(2, "alice");
  EXPECT_EQ(SessionsOf(sim.round()), std::vector<std::uint64_t>{2});
  EXPECT_EQ(sim.sessions[2].queued, 0u);
  EXPECT_EQ(sim.dist.active_sessions(), 0u);
}

TEST(Distributor, SoloRequestsGoAloneToIdleNodesOnly) {
  Sim sim;
  sim.add_node(1, 8);
  sim.add_node(2, 8);
  sim.nodes[1].inflight = 1;
  sim.add_session(1, "alice", 5);
  sim.sessions[1].solo = true;
  auto r = sim.round();
  // One request per assignment, only to node 2 (node 1 is busy); then node 2
  // is busy too and nothing else may go.
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].node, 2u);
  EXPECT_EQ(r[0].count, 1u);
}

TEST(Distributor, BlockedDrainingQuarantinedAndFullNodesAreSkipped) {
  Sim sim;
  for (std::uint64_t o = 1; o <= 5; ++o) sim.add_node(o, 10);
  sim.nodes[1].blocked = true;
  sim.nodes[2].draining = true;
  sim.nodes[3].quarantined = true;
  sim.nodes[4].inflight = 10;  // no credit left
  sim.add_session(1, "alice", 1000);
  auto r = sim.round();
  ASSERT_FALSE(r.empty());
  for (const auto& a : r) EXPECT_EQ(a.node, 5u);
  EXPECT_EQ(sim.nodes[5].free(), 0u);
}

TEST(Distributor, OnlyNodesOfferingTheServiceGetIt) {
  Sim sim;
  sim.add_node(1, 10, {"echo@1"});
  sim.add_node(2, 10, {"montecarlo@1.9", "montecarlo@1.10"});
  sim.add_node(3, 10, {"factorize@1"});
  sim.add_session(1, "alice", 5, "montecarlo@1.10/pi");
  sim.add_session(2, "alice", 5, "factorize");
  sim.add_session(3, "alice", 5, "nothing-hosts-this");
  sim.add_session(4, "alice", 5, "bad name!");  // a journal of old: never routed
  sim.round();
  for (const auto& a : sim.sent) {
    if (a.session == 1) {
      EXPECT_EQ(a.node, 2u);
    }
    if (a.session == 2) {
      EXPECT_EQ(a.node, 3u);
    }
    EXPECT_NE(a.session, 3u);
    EXPECT_NE(a.session, 4u);
  }
  EXPECT_EQ(sim.sessions[1].queued, 0u);
  EXPECT_EQ(sim.sessions[2].queued, 0u);
  // Sessions no node can serve keep their places, waiting.
  EXPECT_TRUE(sim.dist.active(3));
  EXPECT_TRUE(sim.dist.active(4));
}

TEST(Distributor, ChunksAreHalfTheCreditCappedByQueueAndBatchAndGoToTheLeastLoaded) {
  Distributor d(64);
  NodeState n;
  n.capacity = 1000;
  EXPECT_EQ(d.chunk_for(n), 64u);  // --max-task-batch
  n.capacity = 10;
  EXPECT_EQ(d.chunk_for(n), 6u);  // capacity / 2 + 1
  n.capacity = 0;
  EXPECT_EQ(d.chunk_for(n), 1u);

  Sim sim;
  sim.add_node(1, 100);
  sim.add_node(2, 100);
  sim.nodes[1].inflight = 30;
  sim.add_session(1, "alice", 20);
  auto r = sim.round();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].node, 2u);    // the least loaded
  EXPECT_EQ(r[0].count, 20u);  // all that is queued (under 51)
}

TEST(Distributor, AThousandNodesAreAllFedAndNoCreditIsExceeded) {
  Sim sim;
  for (std::uint64_t o = 1; o <= 1000; ++o) sim.add_node(o, 16);
  for (std::uint64_t s = 1; s <= 10; ++s) sim.add_session(s, "key" + std::to_string(s % 3), 5000);
  sim.round();
  std::uint64_t queued = 0;
  for (auto& [o, s] : sim.sessions) queued += s.queued;
  EXPECT_EQ(queued, 50'000u - 16'000u);  // every credit used, nothing more
  for (auto& [o, n] : sim.nodes) EXPECT_EQ(n.inflight, 16u) << o;
  // Keys shared the grid: each got its share within one chunk per node.
  std::map<std::string, std::uint64_t> by_key;
  for (const auto& a : sim.sent) by_key[sim.sessions[a.session].owner] += a.count;
  for (auto& [k, n] : by_key) EXPECT_NEAR(static_cast<double>(n), 16'000.0 / 3, 9.0 * 3) << k;
}

}  // namespace
}  // namespace zgrid::head

namespace zgrid::head {
namespace {

// The old choice, a walk over every node in ordinal order: the index must
// choose the same node.
const NodeState* WalkPick(const NodeMap& nodes, std::string_view service, bool need_idle,
                          bool need_sessions) {
  const NodeState* best = nullptr;
  for (const auto& [o, n] : nodes) {
    if (n.blocked || n.quarantined || n.draining || n.free() == 0) continue;
    if (need_idle && n.inflight > 0) continue;
    bool offers = false, sessions = false;
    for (const auto& s : n.services) offers |= s.rfind(std::string(service) + "@", 0) == 0;
    for (const auto& a : n.service_info)
      sessions |= a.sessions && a.advertised.rfind(std::string(service) + "@", 0) == 0;
    if (!offers || (need_sessions && !sessions)) continue;
    if (!best || n.inflight * best->capacity < best->inflight * n.capacity) best = &n;
  }
  return best;
}

TEST(NodeIndex, ChoosesWhatAWalkOverEveryNodeChoosesThroughRandomChanges) {
  NodeMap nodes;
  NodeIndex index;
  std::mt19937 rng(18);
  const std::vector<std::vector<std::string>> offers{
      {"echo@1"}, {"echo@1", "running_sum@1"}, {"factorize@2"}};
  for (std::uint64_t o = 1; o <= 300; ++o) {
    NodeState& n = nodes[o];
    n.ordinal = o;
    n.capacity = 1 + rng() % 16;
    n.services = offers[o % 3];
    for (const auto& s : n.services) {
      proto::ServiceAd ad;
      ad.advertised = s;
      ad.sessions = s.rfind("running_sum", 0) == 0;
      n.service_info.push_back(ad);
    }
    index.mark(n);
  }
  const std::vector<std::string> services{"echo", "running_sum", "factorize", "nothing"};
  for (int step = 0; step < 20'000; ++step) {
    auto at = nodes.find(1 + rng() % 300);
    if (at == nodes.end()) continue;  // lost earlier
    NodeState& n = at->second;
    switch (rng() % 8) {
      case 0:
        n.blocked = !n.blocked;
        break;
      case 1:
        n.draining = rng() % 4 == 0;
        break;
      case 2:
        n.quarantined = rng() % 16 == 0;
        break;
      case 3:
        n.capacity = rng() % 17;
        break;
      default:
        n.inflight = rng() % (n.capacity + 2);
        break;
    }
    index.mark(n);
    if (step % 7 == 0) {
      // A node lost.
      auto gone = nodes.find(1 + rng() % 300);
      if (gone != nodes.end() && nodes.size() > 100) {
        index.erase(gone->second, 0);
        nodes.erase(gone);
      }
    }
    const std::string& svc = services[rng() % services.size()];
    bool idle = rng() % 4 == 0, sessions = svc == "running_sum" && rng() % 2 == 0;
    ASSERT_EQ(index.pick(svc, idle, sessions), WalkPick(nodes, svc, idle, sessions))
        << "step " << step << " service " << svc;
  }
  EXPECT_TRUE(index.verify(nodes));
  EXPECT_EQ(index.groups(), 3u);
}

TEST(NodeIndex, AVersionedServiceMatchesOnlyItsVersionAndUnknownServicesGetNobody) {
  NodeMap nodes;
  NodeIndex index;
  for (std::uint64_t o = 1; o <= 2; ++o) {
    NodeState& n = nodes[o];
    n.ordinal = o;
    n.capacity = 4;
    n.services = {o == 1 ? "picky@1" : "picky@2"};
    index.mark(n);
  }
  nodes[1].inflight = 3;  // the busier one: still the only picky@1
  index.mark(nodes[1]);
  EXPECT_EQ(index.pick("picky@1", false, false), &nodes[1]);
  EXPECT_EQ(index.pick("picky@2", false, false), &nodes[2]);
  EXPECT_EQ(index.pick("picky", false, false), &nodes[2]);
  EXPECT_EQ(index.pick("other", false, false), nullptr);
  EXPECT_EQ(index.pick("bad name!", false, false), nullptr);
  EXPECT_EQ(index.pick("picky@1", true, false), nullptr);  // not idle
}

}  // namespace
}  // namespace zgrid::head
