// The typed status tables (common/protocol.hpp): every field round-trips,
// the map's size is its field count, unknown keys are skipped and a known
// key with a value of the wrong type is refused.
#include <gtest/gtest.h>

#include "common/protocol.hpp"

namespace zgrid::proto {
namespace {

template <class T>
std::size_t CountFields(const T& t) {
  std::size_t n = 0;
  for_each_field(t, [&n](std::string_view, const auto&) { ++n; });
  return n;
}

TEST(StatusTables, SessionStatusRoundTripsEveryField) {
  SessionStatus m;
  m.session_id = std::string(32, 'a');
  m.service = "factorize";
  m.durable = true;
  m.owner = "alice";
  m.state = "sealed";
  m.total = 10, m.committed = 9, m.queued = 8, m.running = 7, m.done = 6, m.faulted = 5;
  m.removed = 4, m.clients = 3, m.clients_open = 2, m.clients_removed = 1;
  m.created = 1'700'000'000, m.complete = true, m.responses_queued = 11;
  m.idle_ms = -3, m.client_idle_timeout_ms = 300'000;
  m.stateful = true, m.removals = "client c removed", m.waiting_for = "d", m.removal_in_ms = 1500;
  m.paused = "no node offers service factorize";
  m.unoffered = true;
  zmq::message_t msg = encode_session_status(42, m);
  Envelope e;
  ASSERT_TRUE(decode_envelope(msg.data(), msg.size(), &e).ok());
  EXPECT_EQ(e.type, kStatusReply);
  EXPECT_EQ(e.corr, 42u);
  Reader peek = e.fields;  // a copy: decoding below reads from the start
  Reader map = peek.map();
  ASSERT_TRUE(peek.ok());
  EXPECT_EQ(map.remaining() / 2, CountFields(m));
  EXPECT_EQ(CountFields(m), 26u);  // the wire's count (docs/protocol.md)
  SessionStatus out;
  ASSERT_TRUE(decode_session_status(e, &out).ok());
  EXPECT_EQ(out.session_id, m.session_id);
  EXPECT_EQ(out.owner, "alice");
  EXPECT_EQ(out.state, "sealed");
  EXPECT_EQ(out.total, 10u);
  EXPECT_EQ(out.clients_removed, 1u);
  EXPECT_EQ(out.created, 1'700'000'000);
  EXPECT_TRUE(out.complete);
  EXPECT_EQ(out.idle_ms, -3);
  EXPECT_EQ(out.client_idle_timeout_ms, 300'000);
  EXPECT_TRUE(out.stateful);
  EXPECT_EQ(out.removals, "client c removed");
  EXPECT_EQ(out.waiting_for, "d");
  EXPECT_EQ(out.removal_in_ms, 1500);
  EXPECT_EQ(out.paused, "no node offers service factorize");
  EXPECT_TRUE(out.unoffered);
}

TEST(StatusTables, GridAndNodeListsRoundTrip) {
  GridStatus g;
  g.nodes = 3, g.rate = 1234.5, g.instance = "i1", g.journal = "ok", g.data_loss = 2;
  g.dashboard = "http://127.0.0.1:9755/";
  zmq::message_t msg = encode_grid_status(1, g);
  Envelope e;
  ASSERT_TRUE(decode_envelope(msg.data(), msg.size(), &e).ok());
  GridStatus go;
  ASSERT_TRUE(decode_grid_status(e, &go).ok());
  EXPECT_EQ(go.nodes, 3u);
  EXPECT_DOUBLE_EQ(go.rate, 1234.5);
  EXPECT_EQ(go.journal, "ok");
  EXPECT_EQ(go.data_loss, 2u);
  EXPECT_EQ(go.dashboard, "http://127.0.0.1:9755/");
  EXPECT_EQ(CountFields(g), 23u);

  std::vector<NodeStatus> nodes(2);
  nodes[0].node_id = "a", nodes[0].services = "factorize@1,echo@1", nodes[0].uptime_ms = 5;
  nodes[1].node_id = "b", nodes[1].state = "draining";
  msg = encode_nodes_reply(2, nodes);
  ASSERT_TRUE(decode_envelope(msg.data(), msg.size(), &e).ok());
  std::vector<NodeStatus> no;
  ASSERT_TRUE(decode_nodes_reply(e, &no).ok());
  ASSERT_EQ(no.size(), 2u);
  EXPECT_EQ(no[0].services, "factorize@1,echo@1");
  EXPECT_EQ(no[0].uptime_ms, 5);
  EXPECT_EQ(no[1].state, "draining");
  EXPECT_EQ(CountFields(nodes[0]), 14u);
}

TEST(StatusTables, UnknownKeysAreSkippedWrongTypesRefused) {
  Writer w = begin(kStatusReply, 7, 1);
  w.map(3).kv("nodes", std::uint64_t{4}).kv("from_the_future", "x").kv("rate", std::uint64_t{9});
  zmq::message_t msg = w.finish();
  Envelope e;
  ASSERT_TRUE(decode_envelope(msg.data(), msg.size(), &e).ok());
  GridStatus g;
  ASSERT_TRUE(decode_grid_status(e, &g).ok());
  EXPECT_EQ(g.nodes, 4u);
  EXPECT_DOUBLE_EQ(g.rate, 9.0);  // an integer rate is still a number

  Writer bad = begin(kStatusReply, 8, 1);
  bad.map(1).kv("nodes", "four");
  msg = bad.finish();
  ASSERT_TRUE(decode_envelope(msg.data(), msg.size(), &e).ok());
  Status st = decode_grid_status(e, &g);
  EXPECT_EQ(st.code(), Code::kProtocol);
  EXPECT_NE(st.message().find("nodes"), std::string::npos);

  Writer notmap = begin(kStatusReply, 9, 1);
  notmap.u64(1);
  msg = notmap.finish();
  ASSERT_TRUE(decode_envelope(msg.data(), msg.size(), &e).ok());
  EXPECT_EQ(decode_grid_status(e, &g).code(), Code::kProtocol);
}

TEST(StatusTables, DrainRoundTripsAndAnOlderClientsDrainIsAccepted) {
  zmq::message_t msg = encode_drain(3, {"node-1", true});
  Envelope e;
  ASSERT_TRUE(decode_envelope(msg.data(), msg.size(), &e).ok());
  Drain d;
  ASSERT_TRUE(decode_drain(e, &d).ok());
  EXPECT_EQ(d.node_id, "node-1");
  EXPECT_TRUE(d.undo);
  Writer w = begin(kDrain, 4, 1);
  w.str("node-2");
  msg = w.finish();
  ASSERT_TRUE(decode_envelope(msg.data(), msg.size(), &e).ok());
  ASSERT_TRUE(decode_drain(e, &d).ok());
  EXPECT_EQ(d.node_id, "node-2");
  EXPECT_FALSE(d.undo);
}

}  // namespace
}  // namespace zgrid::proto
