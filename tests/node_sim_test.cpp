// node/sim_nodes.hpp against a fake head (tests/support/fake_head.hpp): the
// simulated node answers every task exactly once, a lone task at once, and
// the results of task messages that come together — read in one pass, or
// while the head runs ahead of its answers — in ONE results message, as a
// real node would (docs/protocol.md "Nodes").
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "node/sim_nodes.hpp"
#include "tests/support/fake_head.hpp"

namespace zgrid::node {
namespace {

using zgrid::testing::FakeHead;
using zgrid::testing::Got;

// Reads results until every id of `want` was answered (echoed: "p<id>");
// returns how many messages they came in.
int ResultsMessages(FakeHead& head, const std::set<std::uint64_t>& want) {
  std::set<std::uint64_t> got;
  int messages = 0;
  Got m;
  while (got.size() < want.size() && head.recv_type(proto::kResults, &m, 10'000)) {
    ++messages;
    for (const auto& r : m.results) {
      EXPECT_TRUE(want.count(r.task_id)) << r.task_id;
      EXPECT_TRUE(r.fault_code.empty()) << r.task_id;
      EXPECT_EQ(r.data, std::string("p").append(std::to_string(r.task_id)));
      EXPECT_TRUE(got.insert(r.task_id).second) << "answered twice: " << r.task_id;
    }
  }
  EXPECT_EQ(got, want);
  return messages;
}

std::vector<std::string> Payloads(std::uint64_t first, std::uint64_t n) {
  std::vector<std::string> v;
  for (std::uint64_t i = 0; i < n; ++i)
    v.push_back(std::string("p").append(std::to_string(first + i)));
  return v;
}

TEST(SimNodes, TaskMessagesThatComeTogetherShareOneResultsMessage) {
  zmq::context_t ctx(1);
  FakeHead head(ctx);
  SimNodes sim(head.endpoint(), 1, /*credit=*/8);
  sim.start();
  Got reg;
  ASSERT_TRUE(head.recv_type(proto::kRegister, &reg, 10'000));
  head.registered(reg, 1, /*hb_ms=*/60'000);
  const std::string rid = reg.rid;
  std::uint64_t id = 1;
  // A lone task: answered at once, alone.
  head.tasks(rid, "echo", id, Payloads(id, 1));
  EXPECT_EQ(ResultsMessages(head, {id}), 1);
  ++id;
  // Two messages of two sent back to back: the node reads them in one pass,
  // or holds the first's results (the head ran ahead) for the second's. A
  // stalled machine may split a round: a few rounds.
  int fewest = 100;
  for (int round = 0; round < 10 && fewest > 1; ++round, id += 4) {
    head.tasks(rid, "echo", id, Payloads(id, 2));
    head.tasks(rid, "echo", id + 2, Payloads(id + 2, 2));
    fewest = std::min(fewest, ResultsMessages(head, {id, id + 1, id + 2, id + 3}));
  }
  EXPECT_EQ(fewest, 1);
  // Whatever it held, a message of one task sends it, and everything is
  // answered exactly once.
  head.tasks(rid, "echo", id, Payloads(id, 3));
  head.tasks(rid, "echo", id + 3, Payloads(id + 3, 1));
  ResultsMessages(head, {id, id + 1, id + 2, id + 3});
  id += 4;
  sim.stop();
  EXPECT_EQ(sim.tasks_done(), id - 1);
  EXPECT_LT(sim.results_messages(), sim.task_messages());
}

}  // namespace
}  // namespace zgrid::node
