// head/rooms in-process: the wiring the daemon runs (HeadRooms), driven
// through its entries as the reactor drives it — client and node messages
// as received, the round after the drains, the tick — with what leaves
// recorded, and sends to a node made to block or fail. What these check
// lives in head/rooms.cpp alone: a change there that the daemon would run
// is what the tests run.
#include <gtest/gtest.h>

#include "support/head_rooms.hpp"

namespace zgrid::head {
namespace {

using testing::Rooms;

std::uint64_t Total(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& sent) {
  std::uint64_t n = 0;
  for (const auto& [node, count] : sent) n += count;
  return n;
}

std::size_t CountOf(const std::vector<testing::Reply>& sent, std::uint32_t type,
                    const std::string& rid) {
  std::size_t n = 0;
  for (const testing::Reply& m : sent)
    if (m.rid == rid && m.type() == type) ++n;
  return n;
}

// The task ids of every tasks message sent to `rid`.
std::vector<std::uint64_t> TaskIdsSentTo(const std::vector<testing::Reply>& sent,
                                         const std::string& rid) {
  std::vector<std::uint64_t> ids;
  for (const testing::Reply& m : sent) {
    Envelope e = m.envelope();
    if (m.rid != rid || e.type != proto::kTasks) continue;
    proto::Tasks t;
    EXPECT_TRUE(proto::decode_tasks(e, &t).ok());
    for (const proto::Task& task : t.items) ids.push_back(task.task_id);
  }
  return ids;
}

// An interactive factorize session with client "c" on connection "rid-c",
// made through the client entry.
void OpenInteractive(Rooms& r, proto::SessionInfo* info) {
  proto::CreateSession cm;
  cm.service = "factorize";
  ASSERT_TRUE(r.call(proto::encode_create_session(1, cm)).ok());
  Envelope e = r.last_reply().envelope();
  ASSERT_TRUE(proto::decode_session_info(e, info).ok());
  ASSERT_TRUE(r.call(proto::encode_open_client(2, {info->session_id, "c"})).ok());
}

TEST(HeadRooms, ASendThatWouldBlockKeepsTheTasksQueuedUntilTheNodeSpeaks) {
  Rooms r;
  NodeState& n = r.add_node("a", 4);
  Session& s = r.session(false, 6);
  r.node_send[n.rid] = zmqu::SendStatus::kWouldBlock;
  EXPECT_TRUE(r.dispatch().empty());
  EXPECT_TRUE(n.blocked);  // nothing more for it this round, nor the next
  EXPECT_EQ(n.inflight, 0u);
  EXPECT_EQ(s.running(), 0u);
  EXPECT_EQ(s.queue().size(), 6u);
  EXPECT_EQ(r.inflight.size(), 0u);
  r.node_send.erase(n.rid);
  EXPECT_TRUE(r.dispatch().empty());  // blocked until it speaks again
  ASSERT_TRUE(r.node(proto::encode_node_heartbeat("a", 4, 0), n.rid).ok());
  EXPECT_FALSE(n.blocked);
  EXPECT_EQ(Total(r.dispatch()), 4u);
  EXPECT_EQ(n.inflight, 4u);
  EXPECT_EQ(s.running(), 4u);
  EXPECT_EQ(s.queue().size(), 2u);
}

TEST(HeadRooms, ANodeThatCannotBeReachedIsLostAndItsWorkGoesToAnother) {
  Rooms r;
  NodeState& a = r.add_node("a", 4);
  std::string a_rid = a.rid;
  NodeState& b = r.add_node("b", 4);
  std::uint64_t b_ord = b.ordinal;
  Session& s = r.session(false, 4);
  r.node_send[a_rid] = zmqu::SendStatus::kUnreachable;
  auto sent = r.dispatch();
  EXPECT_EQ(r.nodes.find_id("a"), nullptr);  // lost: a's state is gone
  EXPECT_EQ(r.nodes.size(), 1u);
  ASSERT_FALSE(sent.empty());
  for (const auto& [node, count] : sent) EXPECT_EQ(node, b_ord);
  EXPECT_EQ(Total(sent), 4u);
  EXPECT_EQ(s.running(), 4u);
  EXPECT_EQ(r.ctx.observed.nodes_lost["unreachable"], 1u);
}

TEST(HeadRooms, NodeMessagesGoThroughTheNodeEntry) {
  Rooms r;
  NodeState& n = r.add_node("a", 2);
  std::string rid = n.rid;
  // The registration was answered, and the grid heard of the node.
  ASSERT_EQ(CountOf(r.to_nodes, proto::kRegistered, rid), 1u);
  ASSERT_EQ(r.ctx.observed.events.events().size(), 1u);
  EXPECT_EQ(r.ctx.observed.events.events().back().kind, "node_registered");
  Session& s = r.session(false, 5);
  EXPECT_EQ(Total(r.dispatch()), 2u);
  // More credit: the node gets more at once.
  ASSERT_TRUE(r.node(proto::encode_node_heartbeat("a", 3, 0), rid).ok());
  EXPECT_EQ(n.capacity, 3u);
  EXPECT_EQ(Total(r.dispatch()), 1u);
  // Results settle and answer through the same entry.
  ASSERT_TRUE(r.results(n, {{1, ""}, {2, std::string(proto::fault::kRetryable)}}).ok());
  EXPECT_EQ(s.done(), 1u);
  EXPECT_EQ(s.running(), 1u);
  EXPECT_EQ(s.queue().size(), 3u);  // the retryable one is back in the queue
  // Junk is counted and answered; a message type the head does not know too.
  std::size_t before = r.to_nodes.size();
  EXPECT_EQ(r.node(zmq::message_t(std::string("junk")), rid).code(), Code::kProtocol);
  EXPECT_EQ(r.node(proto::encode_query(proto::kStatus, 3, ""), rid).code(), Code::kProtocol);
  EXPECT_EQ(r.ctx.observed.bad_node_messages, 2u);
  EXPECT_EQ(CountOf(r.to_nodes, proto::kError, rid), 2u);
  EXPECT_EQ(r.to_nodes.size(), before + 2);
  // Bye: the node is gone and its task is queued again, not charged.
  Writer w = proto::begin(proto::kBye, 0, 1);
  w.str("node-instance");
  ASSERT_TRUE(r.node(w.finish(), rid).ok());
  EXPECT_EQ(r.nodes.size(), 0u);
  EXPECT_EQ(s.running(), 0u);
  EXPECT_EQ(s.queue().size(), 4u);
  // A node the head does not know (lost, or the head restarted) must register.
  EXPECT_EQ(r.node(proto::encode_node_heartbeat("a", 3, 0), rid).code(), Code::kNotFound);
  EXPECT_EQ(r.to_nodes.back().error().code, Code::kNotFound);
}

TEST(HeadRooms, AnInteractiveSessionRunsThroughTheEntriesAndTheRound) {
  Rooms r;
  NodeState& n = r.add_node("a", 8);
  proto::SessionInfo info;
  ASSERT_NO_FATAL_FAILURE(OpenInteractive(r, &info));
  proto::Send sm;
  sm.session_id = info.session_id;
  sm.client_id = "c";
  sm.first_seq = 1;
  for (int i = 0; i < 3; ++i) sm.items.push_back({"", "1001"});
  ASSERT_TRUE(r.call(proto::encode_send(3, sm)).ok());
  EXPECT_EQ(Total(r.round()), 3u);
  ASSERT_TRUE(r.results(n, {{1, ""}, {2, ""}, {3, ""}}).ok());
  EXPECT_EQ(CountOf(r.replies, proto::kResponses, "rid-c"), 0u);  // not before the round
  r.round();
  EXPECT_EQ(CountOf(r.replies, proto::kResponses, "rid-c"), 1u);
  Session* s = r.sessions.find(info.session_id);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->done(), 3u);
}

// The reactor defers a round's client replies until after its dispatch, so
// a lone request's task does not wait for its batch's `ack` to be sent; the
// ack then waits (AckHold) to go right before the client's next message —
// its responses — or alone after AckHold::kHoldMs, never after a later
// message to the same client.
TEST(HeadRooms, TheTaskLeavesBeforeTheAckAndTheAckTravelsWithTheResponses) {
  Rooms r;
  NodeState& n = r.add_node("a", 8);
  proto::SessionInfo info;
  ASSERT_NO_FATAL_FAILURE(OpenInteractive(r, &info));
  proto::Send sm;
  sm.session_id = info.session_id;
  sm.client_id = "c";
  sm.first_seq = 1;
  sm.flush = true;
  sm.items.push_back({"u", "1001"});
  auto send = [&](std::uint64_t seq) {
    sm.first_seq = seq;
    r.defer_client_replies();  // as the reactor does before draining the client socket
    ASSERT_TRUE(r.call(proto::encode_send(seq + 2, sm)).ok());
  };
  send(1);
  EXPECT_EQ(Total(r.round()), 1u);
  EXPECT_EQ(CountOf(r.replies, proto::kAck, "rid-c"), 0u);  // held: the task went alone
  EXPECT_TRUE(r.acks_held());
  ASSERT_EQ(r.to_nodes.back().type(), proto::kTasks);
  // The answer: the ack goes right before the responses.
  ASSERT_TRUE(r.results(n, {{1, ""}}).ok());
  r.round();
  ASSERT_GE(r.replies.size(), 2u);
  EXPECT_EQ(r.replies[r.replies.size() - 2].type(), proto::kAck);
  EXPECT_EQ(r.replies.back().type(), proto::kResponses);
  EXPECT_LT(r.to_nodes.back().order, r.replies[r.replies.size() - 2].order);
  EXPECT_FALSE(r.acks_held());
  // No answer yet: the ack goes alone once it has waited kHoldMs.
  send(2);
  r.round();
  EXPECT_EQ(CountOf(r.replies, proto::kAck, "rid-c"), 1u);
  r.ctx.now += AckHold::kHoldMs;
  r.round();
  EXPECT_EQ(CountOf(r.replies, proto::kAck, "rid-c"), 2u);
  EXPECT_EQ(r.replies.back().type(), proto::kAck);
  // Anything else sent to the client goes after the held ack.
  send(3);
  r.round();
  EXPECT_EQ(CountOf(r.replies, proto::kAck, "rid-c"), 2u);
  ASSERT_TRUE(r.call(proto::begin(proto::kPing, 9, 0).finish()).ok());
  ASSERT_GE(r.replies.size(), 2u);
  EXPECT_EQ(r.replies[r.replies.size() - 2].type(), proto::kAck);
  EXPECT_EQ(r.replies.back().envelope().corr, 9u);
  EXPECT_FALSE(r.acks_held());
}

TEST(HeadRooms, ClientJunkIsCountedAndAnsweredWithinABudget) {
  Rooms r;
  for (int i = 0; i < 150; ++i)
    EXPECT_EQ(r.call(zmq::message_t(std::string("junk")), "rid-flood").code(), Code::kProtocol);
  EXPECT_EQ(r.ctx.observed.bad_client_messages, 150u);
  EXPECT_EQ(r.ctx.counters.bad_messages, 150u);
  EXPECT_EQ(r.replies.size(), 100u);  // kErrorBudget a second
  r.ctx.now += 1'000;
  (void)r.call(zmq::message_t(std::string("junk")), "rid-flood");
  EXPECT_EQ(r.replies.size(), 101u);
  // A handler's error is answered whatever the budget.
  EXPECT_EQ(r.call(proto::encode_attach(9, std::string(32, 'z')), "rid-flood").code(),
            Code::kNotFound);
  EXPECT_EQ(r.last_reply().error().code, Code::kNotFound);
}

TEST(HeadRooms, HeartbeatsAreAnsweredAndTheTickLosesSilentNodes) {
  HeadOptions o = testing::TestOptions();
  o.heartbeat_ms = 1'000;
  o.heartbeat_misses = 3;
  o.hooks.verify_tables = true;  // each tick checks the tables, as in every test head
  Rooms r(o);
  NodeState& a = r.add_node("a", 4);
  std::string a_rid = a.rid;
  r.add_node("b", 4);
  Session& s = r.session(false, 8);
  EXPECT_EQ(Total(r.dispatch()), 8u);
  // The head sends no heartbeats of its own: it answers each node's, with
  // the interval to use (--heartbeat on a small grid).
  ASSERT_TRUE(r.tick(r.ctx.now + 1'000).ok());
  EXPECT_EQ(CountOf(r.to_nodes, proto::kHeartbeat, a_rid), 0u);
  EXPECT_EQ(CountOf(r.to_nodes, proto::kHeartbeat, "rid-b"), 0u);
  ASSERT_TRUE(r.node(proto::encode_node_heartbeat("b", 8, 0, 1'000), "rid-b").ok());
  ASSERT_EQ(CountOf(r.to_nodes, proto::kHeartbeat, "rid-b"), 1u);
  for (const testing::Reply& m : r.to_nodes) {
    if (m.type() != proto::kHeartbeat) continue;
    Envelope env = m.envelope();
    proto::HeadHeartbeat h;
    ASSERT_TRUE(proto::decode_head_heartbeat(env, &h).ok());
    EXPECT_EQ(h.heartbeat_ms, 1'000u);
  }
  // b keeps speaking, a says nothing: past its misses it is lost, and its
  // tasks are queued again, each to run alone on an idle node.
  for (int i = 0; i < 4; ++i) {
    r.ctx.now += 1'000;
    ASSERT_TRUE(r.node(proto::encode_node_heartbeat("b", 8, 0), "rid-b").ok());
    ASSERT_TRUE(r.tick(r.ctx.now).ok());
  }
  EXPECT_EQ(r.nodes.find_id("a"), nullptr);
  EXPECT_EQ(r.ctx.observed.nodes_lost["silent"], 1u);
  NodeState& b = *r.nodes.find_id("b");
  EXPECT_EQ(b.inflight, 4u);
  ASSERT_EQ(s.queue().size(), 4u);
  for (const Request& q : s.queue()) EXPECT_TRUE(q.solo);
  EXPECT_TRUE(r.round().empty());  // b is busy
  // b answers: idle, it takes one of them, alone.
  std::vector<std::pair<std::uint64_t, std::string>> done;
  for (std::uint64_t id : TaskIdsSentTo(r.to_nodes, "rid-b")) done.push_back({id, ""});
  ASSERT_EQ(done.size(), 4u);
  ASSERT_TRUE(r.results(b, done).ok());
  EXPECT_EQ(s.done(), 4u);
  auto sent = r.round();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0], std::make_pair(b.ordinal, std::uint64_t{1}));
}

}  // namespace
}  // namespace zgrid::head
