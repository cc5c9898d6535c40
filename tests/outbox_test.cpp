// head/outbox: response windows, whole chunks, slow clients, pausing and
// resuming a session, and held acknowledgements, in-process (sends are
// recorded, not made).
#include <gtest/gtest.h>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "head/outbox.hpp"

namespace zgrid::head {
namespace {

struct Sent {
  std::string rid;
  std::vector<proto::Response> items;
};

struct Harness {
  SessionTable sessions;
  Outbox box;
  std::vector<Sent> sent;
  std::vector<std::string> acks;  // routing ids that got an ack
  zmqu::SendStatus result = zmqu::SendStatus::kOk;

  explicit Harness(Outbox::Limits l) : box(l) {}

  Outbox::Flushed flush(Millis now = 0) {
    return box.flush(sessions, now, [this](const std::string& rid, zmq::message_t& body) {
      if (result != zmqu::SendStatus::kOk) return result;
      Envelope env;
      EXPECT_TRUE(decode_envelope(body.data(), body.size(), &env).ok());
      if (env.type == proto::kAck) {
        acks.push_back(rid);
        return result;
      }
      EXPECT_EQ(env.type, proto::kResponses);
      env.fields.skip();
      env.fields.skip();
      Reader items = env.fields.array(proto::kMaxBatchItems);
      Sent s{rid, {}};
      EXPECT_TRUE(proto::decode_response_items(items, &s.items).ok());
      sent.push_back(std::move(s));
      return result;
    });
  }
};

Session& WithClient(SessionTable& t, const std::string& rid) {
  Session& s = t.create("k");
  Client c;
  c.id = "c1";
  c.rid = rid;
  s.add_client(std::move(c));
  return s;
}

TEST(Outbox, WholeChunksGoWhileTheWindowAllowsInOrder) {
  Harness h({/*response_window=*/3, /*response_queue_max=*/100, /*queue_hwm=*/100});
  Session& s = WithClient(h.sessions, "r1");
  Client& c = s.client(0);
  for (std::uint64_t id = 1; id <= 5; ++id)
    h.box.add(s, c, id, "u", id == 4 ? "service_error" : "",
              std::string(1, 'd').append(std::to_string(id)));
  EXPECT_EQ(s.out_pending(), 5u);
  EXPECT_TRUE(h.box.responses_pending());
  h.flush();
  ASSERT_EQ(h.sent.size(), 1u);  // 3 fill the window; 2 wait
  ASSERT_EQ(h.sent[0].items.size(), 3u);
  EXPECT_EQ(h.sent[0].rid, "r1");
  EXPECT_EQ(h.sent[0].items[0].request_id, 1u);
  EXPECT_EQ(h.sent[0].items[2].data, "d3");
  EXPECT_EQ(c.delivery().unacked_out, 3u);
  h.flush();
  EXPECT_EQ(h.sent.size(), 1u);  // nothing until acknowledged
  h.box.acked(c, 3);
  auto f = h.flush();
  ASSERT_EQ(h.sent.size(), 2u);
  ASSERT_EQ(h.sent[1].items.size(), 2u);
  EXPECT_EQ(h.sent[1].items[0].fault_code, "service_error");
  EXPECT_EQ(s.out_pending(), 0u);
  EXPECT_EQ(f.delivered, std::vector<Session*>{&s});
}

TEST(Outbox, ASlowClientKeepsItsResponsesForALaterFlush) {
  Harness h({100, 100, 100});
  Session& s = WithClient(h.sessions, "r1");
  h.box.add(s, s.client(0), 1, "", "", "x");
  h.result = zmqu::SendStatus::kWouldBlock;
  h.flush();
  EXPECT_TRUE(h.sent.empty());
  EXPECT_TRUE(h.box.responses_pending());  // tried again soon
  EXPECT_EQ(s.out_pending(), 1u);
  h.result = zmqu::SendStatus::kOk;
  h.flush();
  ASSERT_EQ(h.sent.size(), 1u);
  EXPECT_FALSE(h.box.responses_pending());
}

TEST(Outbox, ASessionPausesPastItsQueueMaxAndMayResumeAtHalf) {
  Harness h({/*response_window=*/2, /*response_queue_max=*/4, 100});
  Session& s = WithClient(h.sessions, "r1");
  for (std::uint64_t id = 1; id <= 5; ++id) h.box.add(s, s.client(0), id, "", "", "x");
  EXPECT_TRUE(h.box.must_pause(s));
  auto f = h.flush();  // 2 sent, 3 left: above half of 4
  EXPECT_TRUE(f.may_resume.empty());
  h.box.acked(s.client(0), 2);
  f = h.flush();  // 2 more, 1 left
  EXPECT_FALSE(h.box.must_pause(s));
  EXPECT_EQ(f.may_resume, std::vector<Session*>{&s});
  EXPECT_TRUE(f.delivered.empty());
}

TEST(Outbox, AcknowledgementsAreHeldAboveTheMarkAndReleasedBelowIt) {
  Harness h({100, 100, /*queue_hwm=*/2});
  Session& s = WithClient(h.sessions, "r1");
  Client& c = s.client(0);
  s.accept(0, std::vector<Request>(3));
  EXPECT_TRUE(h.box.must_hold(s, c));
  proto::Ack ack;
  ack.session_id = s.id;
  h.box.hold(c, {ack, 7});
  EXPECT_TRUE(h.box.must_hold(s, c));  // an ack waits: later ones wait behind it
  h.flush(100);
  EXPECT_TRUE(h.acks.empty());
  EXPECT_EQ(c.last_activity, 100);  // back-pressure is not idleness
  s.take_front();
  h.flush(200);
  EXPECT_EQ(h.acks, std::vector<std::string>{"r1"});
  EXPECT_TRUE(c.delivery().held_acks.empty());
  EXPECT_FALSE(h.box.must_hold(s, c));
}

TEST(Outbox, ARemovedClientsResponsesAreForgotten) {
  Harness h({100, 100, 100});
  Session& s = WithClient(h.sessions, "r1");
  for (std::uint64_t id = 1; id <= 3; ++id) h.box.add(s, s.client(0), id, "", "", "x");
  h.box.forget(s, s.client(0));
  EXPECT_EQ(s.out_pending(), 0u);
  h.flush();
  EXPECT_TRUE(h.sent.empty());
}

}  // namespace
}  // namespace zgrid::head
