// head/tasks in-process: sending and settling tasks, results of every kind,
// retries and their limit, lost nodes (poison isolation), backstops, and
// which task timeout applies.
#include <gtest/gtest.h>

#include "support/head_rooms.hpp"

namespace zgrid::head {
namespace {

using testing::Rooms;

proto::Results ResultsOf(const std::vector<std::pair<std::uint64_t, std::string>>& items) {
  proto::Results m;
  for (const auto& [id, fault] : items)
    m.items.push_back({id, fault, fault.empty() ? std::string_view("ok") : "why"});
  return m;
}

TEST(Tasks, SentTasksAreInFlightAndResultsSettleAndAnswerThem) {
  Rooms r;
  NodeState& n = r.add_node("a", 4);
  Session& s = r.session(false, 6);
  auto sent = r.dispatch();
  std::uint64_t total = 0;
  for (auto [node, count] : sent) {
    EXPECT_EQ(node, n.ordinal);
    total += count;
  }
  EXPECT_EQ(total, 4u);  // the node's credit
  EXPECT_EQ(n.inflight, 4u);
  EXPECT_EQ(s.running(), 4u);
  EXPECT_EQ(s.queue().size(), 2u);
  EXPECT_EQ(r.inflight.size(), 4u);
  r.tasks.on_results(n, ResultsOf({{1, ""}, {2, "bad_input"}, {99, ""}}));  // 99: foreign
  EXPECT_EQ(n.inflight, 2u);
  EXPECT_EQ(s.running(), 2u);
  EXPECT_EQ(s.done(), 1u);
  EXPECT_EQ(s.faulted(), 1u);
  EXPECT_EQ(n.done, 1u);
  EXPECT_EQ(n.faulted, 1u);
  EXPECT_EQ(s.out_pending(), 2u);  // interactive: to the client's outbox
  // A second report of the same task changes nothing.
  r.tasks.on_results(n, ResultsOf({{1, ""}}));
  EXPECT_EQ(s.done(), 1u);
}

TEST(Tasks, RetryableAndTimedOutAreChargedNotRunIsNot) {
  Rooms r;
  NodeState& n = r.add_node("a", 3);
  Session& s = r.session(false, 3);
  r.dispatch();
  r.tasks.on_results(n, ResultsOf({{1, std::string(proto::fault::kRetryable)},
                                   {2, std::string(proto::fault::kTaskTimeout)},
                                   {3, std::string(proto::fault::kNotRun)}}));
  ASSERT_EQ(s.queue().size(), 3u);
  // Each goes to the front: the last requeued runs first.
  EXPECT_EQ(s.queue()[0].id, 3u);
  EXPECT_EQ(s.queue()[0].tries, 0u);
  EXPECT_EQ(s.queue()[1].tries, 1u);
  EXPECT_EQ(s.queue()[2].tries, 1u);
  EXPECT_EQ(n.faulted, 2u);  // not_run is not a run of the node
  EXPECT_EQ(s.done() + s.faulted(), 0u);
}

TEST(Tasks, PastItsRetriesARequestFaultsRetryLimitExceeded) {
  Rooms r;  // max_retries 2
  Session& s = r.session(false, 1);
  Request q = s.take_front();
  for (int i = 0; i < 2; ++i) {
    r.tasks.requeue(s, std::move(q), true);
    ASSERT_EQ(s.queue().size(), 1u);
    q = s.take_front();
  }
  r.tasks.requeue(s, std::move(q), true, -1, "ran past its task timeout");
  EXPECT_TRUE(s.queue().empty());
  EXPECT_EQ(s.faulted(), 1u);
  // A service's registered max retries overrides the head's.
  Session& t = r.session(false, 1);
  Request u = t.take_front();
  r.tasks.requeue(t, std::move(u), true, 0);
  EXPECT_EQ(t.faulted(), 1u);
}

TEST(Tasks, ALostNodeChargesOnlyARequestItHeldAloneAndIsolatesABatch) {
  Rooms r;
  NodeState& a = r.add_node("a", 3);
  Session& s = r.session(false, 3);
  r.dispatch();
  r.tasks.lose_node(a.ordinal, NodeLoss::kSilent);
  EXPECT_EQ(r.nodes.size(), 0u);
  EXPECT_EQ(r.inflight.size(), 0u);
  EXPECT_EQ(s.running(), 0u);
  ASSERT_EQ(s.queue().size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(s.queue()[i].id, i + 1);  // order kept
    EXPECT_TRUE(s.queue()[i].solo);     // a batch's requests run alone from now on
    EXPECT_EQ(s.queue()[i].tries, 0u);  // not charged: the node held others too
  }
  // Alone on a node that crashes: charged.
  NodeState& b = r.add_node("b", 3);
  auto sent = r.dispatch();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].second, 1u);  // solo: one task
  r.tasks.lose_node(b.ordinal, NodeLoss::kUnreachable);
  EXPECT_EQ(s.queue().front().tries, 1u);
  // A node that said bye: nothing charged.
  NodeState& c = r.add_node("c", 3);
  r.dispatch();
  r.tasks.lose_node(c.ordinal, NodeLoss::kLeft);
  EXPECT_EQ(s.queue().front().tries, 1u);
}

TEST(Tasks, LargePayloadsAreSplitToStayUnderTheFrameLimit) {
  Rooms r;
  NodeState& n = r.add_node("a", 100);
  Session& s = r.session(false);
  for (int i = 0; i < 6; ++i) {
    Request q;
    q.id = s.new_request_id();
    q.payload.assign(1u << 20, 'x');  // 1 MiB each
    s.requeue_front(std::move(q));
  }
  Tasks::Prepared p = r.tasks.prepare(n, s, 6);
  EXPECT_EQ(p.count, 3u);  // 4 MiB per message
  EXPECT_LT(p.body.size(), 4u << 20);
  Envelope env;
  ASSERT_TRUE(decode_envelope(p.body.data(), p.body.size(), &env).ok());
  proto::Tasks t;
  ASSERT_TRUE(proto::decode_tasks(env, &t).ok());
  EXPECT_EQ(t.items.size(), 3u);
  EXPECT_EQ(t.service, "factorize");
}

TEST(Tasks, TaskTimeoutPrecedenceAndTheBackstop) {
  HeadOptions o = testing::TestOptions();
  o.task_timeout_ms = 9'000;
  o.service_task_timeout_ms["sleep"] = 7'000;
  Rooms r(o);
  proto::ServiceAd ad{"sleep@1", 5'000, 1};
  NodeState& n = r.add_node("a", 2, {"sleep@1"});
  n.service_info = {ad};
  Session& s = r.session(false, 2, "sleep");
  EXPECT_EQ(r.tasks.task_timeout_for(s, &ad), 7'000);  // the head's for the service
  Session& t = r.session(false, 0, "sleep@1/op");
  EXPECT_EQ(r.tasks.task_timeout_for(t, &ad), 7'000);  // by its name
  Session& u = r.session(false, 0, "other");
  EXPECT_EQ(r.tasks.task_timeout_for(u, &ad), 5'000);  // the registration's
  EXPECT_EQ(r.tasks.task_timeout_for(u, nullptr), 9'000);
  s.task_timeout_ms = 3'000;
  EXPECT_EQ(r.tasks.task_timeout_for(s, &ad), 3'000);  // the session's first
  EXPECT_EQ(Tasks::registration_on(n, "sleep"), &n.service_info[0]);
  EXPECT_EQ(Tasks::registration_on(n, "other"), nullptr);

  r.dispatch();
  ASSERT_EQ(s.running(), 2u);
  // Never reported: past the backstop (2 tasks × 3 s, plus a grace of two
  // heartbeat timeouts) they are lost and charged.
  r.ctx.now += 2 * 3'000 + 2 * 3 * 1'000 + 1;
  r.tasks.check_backstops();
  EXPECT_EQ(s.running(), 0u);
  EXPECT_EQ(n.inflight, 0u);
  ASSERT_EQ(s.queue().size(), 2u);
  EXPECT_EQ(s.queue()[0].tries, 1u);
}

TEST(Tasks, AnswersOfARemovedClientOrAPurgingSessionAreNotRecorded) {
  Rooms r;
  Session& s = r.session(false);
  s.remove_client(0);
  Request q;
  q.id = 1;
  r.tasks.answer(s, q, "", "x");
  EXPECT_EQ(s.done(), 0u);
  EXPECT_EQ(s.out_pending(), 0u);
  Session& t = r.session(false);
  t.purging = 1;
  Request u;
  u.id = 1;
  r.tasks.answer(t, u, "", "x");
  EXPECT_EQ(t.done(), 0u);
  EXPECT_EQ(t.queue().size(), 1u);  // runs again should the purge fail
}

}  // namespace
}  // namespace zgrid::head
