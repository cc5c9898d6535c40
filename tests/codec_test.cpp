// Codec and protocol: round trips, and rejection of malformed input.
#include <gtest/gtest.h>

#include <random>

#include "common/codec.hpp"
#include "common/protocol.hpp"

namespace zgrid {
namespace {

Envelope Decode(const zmq::message_t& m) {
  Envelope env;
  Status st = decode_envelope(m.data(), m.size(), &env);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(env.version, proto::kVersion);
  return env;
}

TEST(Codec, SendRoundTrip) {
  proto::Send s;
  s.session_id = "sess";
  s.client_id = "cli";
  s.first_seq = 42;
  s.flush = true;
  std::string big(1000, 'z');
  s.items = {{"u1", "p1"}, {"", big}, {std::string_view("\0\1", 2), "x"}};
  zmq::message_t m = proto::encode_send(9, s);
  Envelope env = Decode(m);
  EXPECT_EQ(env.type, proto::kSend);
  EXPECT_EQ(env.corr, 9u);
  proto::Send d;
  ASSERT_TRUE(proto::decode_send(env, &d).ok());
  EXPECT_EQ(d.session_id, "sess");
  EXPECT_EQ(d.client_id, "cli");
  EXPECT_EQ(d.first_seq, 42u);
  EXPECT_TRUE(d.flush);
  ASSERT_EQ(d.items.size(), 3u);
  EXPECT_EQ(d.items[0].user_data, "u1");
  EXPECT_EQ(d.items[1].payload, big);
  EXPECT_EQ(d.items[2].user_data, std::string_view("\0\1", 2));
}

TEST(Codec, AckRegisterResultsRoundTrip) {
  proto::Ack a{"s", "c", 5, 3, 100, std::string("\0\1\0", 3)};
  zmq::message_t m = proto::encode_ack(1, a);
  Envelope env = Decode(m);
  proto::Ack da;
  ASSERT_TRUE(proto::decode_ack(env, &da).ok());
  EXPECT_EQ(da.first_request_id, 100u);
  EXPECT_EQ(da.statuses, a.statuses);

  proto::Register r{"node-1", "host", 77, 4, 256, {"factorize", "echo"}};
  zmq::message_t rm = proto::encode_register(2, r);
  Envelope renv = Decode(rm);
  proto::Register dr;
  ASSERT_TRUE(proto::decode_register(renv, &dr).ok());
  EXPECT_EQ(dr.node_id, "node-1");
  EXPECT_EQ(dr.capacity, 256u);
  EXPECT_EQ(dr.services, r.services);
  EXPECT_TRUE(dr.service_info.empty());

  // Since service registration: per-service timeout and retries (field 7).
  proto::Register r2 = r;
  r2.services = {"montecarlo@1"};
  r2.service_info = {{"montecarlo@1", 30'000, 2}, {"echo@1", 0, -1}};
  zmq::message_t rm2 = proto::encode_register(3, r2);
  Envelope renv2 = Decode(rm2);
  proto::Register dr2;
  ASSERT_TRUE(proto::decode_register(renv2, &dr2).ok());
  ASSERT_EQ(dr2.service_info.size(), 2u);
  EXPECT_EQ(dr2.service_info[0].advertised, "montecarlo@1");
  EXPECT_EQ(dr2.service_info[0].task_timeout_ms, 30'000u);
  EXPECT_EQ(dr2.service_info[0].max_retries, 2);
  EXPECT_EQ(dr2.service_info[1].max_retries, -1);
  // The older six-field form still decodes.
  Writer old = proto::begin(proto::kRegister, 4, 6);
  old.str("n").str("h").u64(1).u64(1).u64(64).array(1).str("factorize");
  zmq::message_t om = old.finish();
  Envelope oenv = Decode(om);
  proto::Register od;
  ASSERT_TRUE(proto::decode_register(oenv, &od).ok());
  EXPECT_EQ(od.services, std::vector<std::string>{"factorize"});
  EXPECT_TRUE(od.service_info.empty());

  // Heartbeats: the node's carries its credit (adaptive prefetch; 0 when every
  // worker is stuck) and its stuck workers; the head's only the id.
  for (std::uint64_t cap : {0u, 1u, 8192u}) {
    zmq::message_t hm = proto::encode_node_heartbeat("node-1", cap, cap == 0 ? 2 : 0);
    Envelope henv = Decode(hm);
    proto::Heartbeat dh;
    ASSERT_TRUE(proto::decode_heartbeat(henv, &dh).ok());
    EXPECT_EQ(dh.id, "node-1");
    EXPECT_TRUE(dh.has_capacity);
    EXPECT_EQ(dh.capacity, cap);
    EXPECT_EQ(dh.stuck, cap == 0 ? 2u : 0u);
  }
  {
    zmq::message_t hm = proto::encode_heartbeat("head-1");
    Envelope henv = Decode(hm);
    proto::Heartbeat dh;
    ASSERT_TRUE(proto::decode_heartbeat(henv, &dh).ok());
    EXPECT_FALSE(dh.has_capacity);
  }
  {  // scaled heartbeats: the node says its interval, the head's answer sets it
    zmq::message_t hm = proto::encode_node_heartbeat("node-1", 8, 0, 5'000);
    Envelope henv = Decode(hm);
    proto::Heartbeat dh;
    ASSERT_TRUE(proto::decode_heartbeat(henv, &dh).ok());
    EXPECT_EQ(dh.capacity, 8u);
    EXPECT_EQ(dh.heartbeat_ms, 5'000u);
    zmq::message_t old = proto::encode_node_heartbeat("node-1", 8, 0);
    Envelope oenv = Decode(old);
    ASSERT_TRUE(proto::decode_heartbeat(oenv, &dh).ok());
    EXPECT_EQ(dh.heartbeat_ms, 0u);  // an older node: not said
    zmq::message_t am = proto::encode_heartbeat("head-1", 5'000);
    Envelope aenv = Decode(am);
    proto::HeadHeartbeat ah;
    ASSERT_TRUE(proto::decode_head_heartbeat(aenv, &ah).ok());
    EXPECT_EQ(ah.head_instance, "head-1");
    EXPECT_EQ(ah.heartbeat_ms, 5'000u);
    zmq::message_t bare = proto::encode_heartbeat("head-1");
    Envelope benv = Decode(bare);
    ASSERT_TRUE(proto::decode_head_heartbeat(benv, &ah).ok());
    EXPECT_EQ(ah.heartbeat_ms, 0u);  // an older head: keep the interval
  }
  {  // the older two-field form: a non-zero credit
    Writer hb = proto::begin(proto::kHeartbeat, 0, 2);
    hb.str("node-1").u64(64);
    zmq::message_t hm = hb.finish();
    Envelope henv = Decode(hm);
    proto::Heartbeat dh;
    ASSERT_TRUE(proto::decode_heartbeat(henv, &dh).ok());
    EXPECT_TRUE(dh.has_capacity);
    EXPECT_EQ(dh.capacity, 64u);
  }
  for (auto [bad, code] : {std::pair<std::uint64_t, Code>{0u, Code::kProtocol},
                           {1'000'001u, Code::kInvalidArgument}}) {
    Writer hb = proto::begin(proto::kHeartbeat, 0, 2);
    hb.str("node-1").u64(bad);
    zmq::message_t hm = hb.finish();
    Envelope henv = Decode(hm);
    proto::Heartbeat dh;
    EXPECT_EQ(proto::decode_heartbeat(henv, &dh).code(), code) << bad;
  }

  Writer w = proto::begin(proto::kResults, 0, 1);
  w.array(2);
  w.array(3).u64(11).nil().bin("2 * 3");
  w.array(3).u64(12).str("invalid_argument").bin("bad");
  zmq::message_t res = w.finish();
  Envelope eenv = Decode(res);
  proto::Results dres;
  ASSERT_TRUE(proto::decode_results(eenv, &dres).ok());
  ASSERT_EQ(dres.items.size(), 2u);
  EXPECT_EQ(dres.items[0].task_id, 11u);
  EXPECT_TRUE(dres.items[0].fault_code.empty());
  EXPECT_EQ(dres.items[1].fault_code, "invalid_argument");
}

// The tokens that make a resent create_session / open_client idempotent
// (docs/protocol.md, "Resent requests"): optional trailing fields, absent
// from older clients; a stateful flag is then sent explicitly.
TEST(Codec, CreateSessionAndOpenClientTokensRoundTripAndMayBeAbsent) {
  for (bool stateful : {false, true}) {
    proto::CreateSession m;
    m.service = "echo";
    m.durable = true;
    m.stateful = stateful;
    m.token = "0123456789abcdef0123456789abcdef";
    zmq::message_t msg = proto::encode_create_session(4, m);
    Envelope env = Decode(msg);
    proto::CreateSession out;
    ASSERT_TRUE(proto::decode_create_session(env, &out).ok());
    EXPECT_EQ(out.service, "echo");
    EXPECT_EQ(out.stateful, stateful);
    EXPECT_EQ(out.token, m.token);
    m.token.clear();  // without: as older clients send it
    zmq::message_t old = proto::encode_create_session(4, m);
    Envelope env2 = Decode(old);
    ASSERT_TRUE(proto::decode_create_session(env2, &out).ok());
    EXPECT_EQ(out.stateful, stateful);
    EXPECT_EQ(out.token, "");
  }
  {  // three fields (the oldest clients): no token
    Writer w = proto::begin(proto::kCreateSession, 1, 3);
    w.str("echo").boolean(false).u64(0);
    zmq::message_t msg = w.finish();
    Envelope env = Decode(msg);
    proto::CreateSession out;
    out.token = "stale";
    ASSERT_TRUE(proto::decode_create_session(env, &out).ok());
    EXPECT_EQ(out.token, "");
  }
  {  // a token of the wrong type, or too long for a name, is malformed
    Writer w = proto::begin(proto::kCreateSession, 1, 7);
    w.str("echo").boolean(false).u64(0).u64(0).u64(0).boolean(false).u64(5);
    zmq::message_t msg = w.finish();
    Envelope env = Decode(msg);
    proto::CreateSession out;
    EXPECT_EQ(proto::decode_create_session(env, &out).code(), Code::kProtocol);
    Writer w2 = proto::begin(proto::kOpenClient, 1, 3);
    w2.str("s").str("c").str(std::string(proto::kMaxNameLength + 1, 't'));
    zmq::message_t msg2 = w2.finish();
    Envelope env2 = Decode(msg2);
    proto::OpenClient oc;
    EXPECT_EQ(proto::decode_open_client(env2, &oc).code(), Code::kProtocol);
  }
  proto::OpenClient oc{"sid", "c1", "opener"};
  zmq::message_t msg = proto::encode_open_client(5, oc);
  Envelope env = Decode(msg);
  proto::OpenClient out;
  ASSERT_TRUE(proto::decode_open_client(env, &out).ok());
  EXPECT_EQ(out.session_id, "sid");
  EXPECT_EQ(out.client_id, "c1");
  EXPECT_EQ(out.token, "opener");
  zmq::message_t old = proto::encode_open_client(5, {"sid", "c1"});
  Envelope env2 = Decode(old);
  ASSERT_TRUE(proto::decode_open_client(env2, &out).ok());
  EXPECT_EQ(out.token, "");
}

TEST(Codec, ErrorCarriesCode) {
  zmq::message_t m = proto::encode_error(3, Status::NotFound("unknown session x"));
  Envelope env = Decode(m);
  proto::Error e;
  ASSERT_TRUE(proto::decode_error(env, &e).ok());
  EXPECT_EQ(e.code, Code::kNotFound);
  EXPECT_EQ(e.message, "unknown session x");
}

Status DecodeBytes(const std::string& b) {
  Envelope env;
  return decode_envelope(b.data(), b.size(), &env);
}

TEST(Codec, SubmitAndSubmittedRoundTrip) {
  proto::Submit s;
  s.create = {"factorize@2/run", true, 60'000, 5'000, 86'400'000, true};
  s.client_id = "cell-7";
  std::string big(1000, 'z');
  s.items = {{"u1", "p1"}, {"", big}, {std::string_view("\0\1", 2), "x"}};
  zmq::message_t m = proto::encode_submit(9, s);
  Envelope env = Decode(m);
  EXPECT_EQ(env.type, proto::kSubmit);
  proto::Submit d;
  ASSERT_TRUE(proto::decode_submit(env, &d).ok());
  EXPECT_EQ(d.create.service, "factorize@2/run");
  EXPECT_TRUE(d.create.durable);
  EXPECT_EQ(d.create.client_idle_timeout_ms, 60'000u);
  EXPECT_EQ(d.create.task_timeout_ms, 5'000u);
  EXPECT_EQ(d.create.deadline_ms, 86'400'000u);
  EXPECT_TRUE(d.create.stateful);
  EXPECT_EQ(d.client_id, "cell-7");
  ASSERT_EQ(d.items.size(), 3u);
  EXPECT_EQ(d.items[1].payload, big);
  EXPECT_EQ(d.items[2].user_data, std::string_view("\0\1", 2));

  proto::Submitted a{{std::string(32, 'a'), "factorize", true, proto::SessionState::kSealed, false},
                     17,
                     3,
                     std::string("\0\2\0", 3)};
  zmq::message_t ma = proto::encode_submitted(9, a);
  Envelope ea = Decode(ma);
  proto::Submitted da;
  ASSERT_TRUE(proto::decode_submitted(ea, &da).ok());
  EXPECT_EQ(da.info.session_id, a.info.session_id);
  EXPECT_EQ(da.info.state, proto::SessionState::kSealed);
  EXPECT_TRUE(da.info.durable);
  EXPECT_EQ(da.first_request_id, 17u);
  EXPECT_EQ(da.count, 3u);
  EXPECT_EQ(da.statuses, a.statuses);
}

// Every way a submit can be malformed is refused, never taken in part.
TEST(Codec, MalformedSubmitsAreRefused) {
  auto decode = [](Writer w) {
    zmq::message_t m = w.finish();
    Envelope env;
    EXPECT_TRUE(decode_envelope(m.data(), m.size(), &env).ok());
    proto::Submit s;
    return proto::decode_submit(env, &s).code();
  };
  auto head = [](std::uint32_t nfields) { return proto::begin(proto::kSubmit, 1, nfields); };
  auto good_create = [](Writer& w) {
    w.str("echo").boolean(false).u64(0).u64(0).u64(0).boolean(false);
  };
  {  // well formed, as the baseline
    Writer w = head(8);
    good_create(w);
    w.str("c").array(1).array(2).bin("u").bin("p");
    EXPECT_EQ(decode(std::move(w)), Code::kOk);
  }
  {  // a create_session's five fields only: submit has no short form
    Writer w = head(5);
    w.str("echo").boolean(false).u64(0).u64(0).u64(0);
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // no items
    Writer w = head(7);
    good_create(w);
    w.str("c");
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // a trailing field is a newer peer's addition: skipped, as everywhere
    Writer w = head(9);
    good_create(w);
    w.str("c").array(0).u64(1);
    EXPECT_EQ(decode(std::move(w)), Code::kOk);
  }
  {  // service not a string
    Writer w = head(8);
    w.u64(1).boolean(false).u64(0).u64(0).u64(0).boolean(false).str("c").array(0);
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // durable not a bool
    Writer w = head(8);
    w.str("echo").u64(1).u64(0).u64(0).u64(0).boolean(false).str("c").array(0);
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // a timeout not a number
    Writer w = head(8);
    w.str("echo").boolean(false).str("1").u64(0).u64(0).boolean(false).str("c").array(0);
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // stateful not a bool
    Writer w = head(8);
    w.str("echo").boolean(false).u64(0).u64(0).u64(0).u64(1).str("c").array(0);
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // a client id longer than any name (the head checks 1..64 printable)
    Writer w = head(8);
    good_create(w);
    w.str(std::string(proto::kMaxNameLength + 1, 'c')).array(0);
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // items not an array
    Writer w = head(8);
    good_create(w);
    w.str("c").bin("items");
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // an item missing its payload
    Writer w = head(8);
    good_create(w);
    w.str("c").array(1).array(1).bin("u");
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // an item with a third element
    Writer w = head(8);
    good_create(w);
    w.str("c").array(1).array(3).bin("u").bin("p").bin("x");
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // an item's payload a number
    Writer w = head(8);
    good_create(w);
    w.str("c").array(1).array(2).bin("u").u64(5);
    EXPECT_EQ(decode(std::move(w)), Code::kProtocol);
  }
  {  // a timeout past its range
    Writer w = head(8);
    w.str("echo").boolean(false).u64(proto::kMaxDurationMs + 1).u64(0).u64(0).boolean(false);
    w.str("c").array(0);
    EXPECT_EQ(decode(std::move(w)), Code::kInvalidArgument);
  }
}

TEST(Codec, RejectsMalformed) {
  EXPECT_EQ(DecodeBytes("").code(), Code::kProtocol);
  EXPECT_EQ(DecodeBytes("\x93\x01").code(), Code::kProtocol);              // truncated
  EXPECT_EQ(DecodeBytes("\xdd\xff\xff\xff\xff").code(), Code::kProtocol);  // 4G-element array
  EXPECT_EQ(DecodeBytes("\xc1").code(), Code::kProtocol);                  // never-used byte
  EXPECT_EQ(DecodeBytes("\x01").code(), Code::kProtocol);                  // not an array
  EXPECT_EQ(DecodeBytes("\x93\xa1x\x01\x01").code(), Code::kProtocol);     // string version
  EXPECT_EQ(DecodeBytes(std::string(1000, '\x91') + "\x01").code(), Code::kProtocol);  // depth bomb
  EXPECT_EQ(DecodeBytes("\x93\x01\x01\x01\x01").code(), Code::kProtocol);  // trailing bytes
  std::string huge_str = "\x94\x01\x05\x01\xdb\x7f\xff\xff\xff";
  EXPECT_EQ(DecodeBytes(huge_str).code(), Code::kProtocol);  // 2 GiB string
}

TEST(Codec, WrongFieldTypesAreErrorsNotCrashes) {
  Writer w = proto::begin(proto::kSend, 1, 5);
  w.u64(1).u64(2).str("x").boolean(true).u64(3);  // every field the wrong type
  zmq::message_t m = w.finish();
  Envelope env = Decode(m);
  proto::Send s;
  EXPECT_EQ(proto::decode_send(env, &s).code(), Code::kProtocol);

  Writer w2 = proto::begin(proto::kTasks, 0, 2);
  w2.str("factorize").array(1).array(1).u64(5);  // item missing its payload
  zmq::message_t m2 = w2.finish();
  Envelope env2 = Decode(m2);
  proto::Tasks t;
  EXPECT_EQ(proto::decode_tasks(env2, &t).code(), Code::kProtocol);
}

TEST(Codec, RandomBytesNeverThrow) {
  std::mt19937 rng(99);
  for (int i = 0; i < 200'000; ++i) {
    std::string b(1 + rng() % 64, '\0');
    for (auto& c : b) c = static_cast<char>(rng());
    Envelope env;
    Status st = decode_envelope(b.data(), b.size(), &env);
    if (!st.ok()) continue;
    // Walk whatever decoded through every decoder: no exception, no crash.
    proto::Send s;
    proto::Submit sub;
    proto::Submitted subd;
    proto::Tasks t;
    proto::Results r;
    proto::Register g;
    const Reader fields = env.fields;
    (void)proto::decode_send(env, &s);
    env.fields = fields;
    (void)proto::decode_submit(env, &sub);
    env.fields = fields;
    (void)proto::decode_submitted(env, &subd);
    env.fields = fields;
    (void)proto::decode_tasks(env, &t);
    env.fields = fields;
    (void)proto::decode_results(env, &r);
    env.fields = fields;
    (void)proto::decode_register(env, &g);
  }
}

TEST(Codec, NewerVersionIsRefusedClearly) {
  Writer w;
  w.array(3).u64(2).u64(proto::kHello).u64(1);
  zmq::message_t m = w.finish();
  Envelope env;
  ASSERT_TRUE(decode_envelope(m.data(), m.size(), &env).ok());
  Status st = proto::check_version(env);
  EXPECT_EQ(st.code(), Code::kVersion);
  EXPECT_NE(st.message().find("v2"), std::string::npos);
}

// Response items read as views (the CLI's fetch and a BrokerClient's inbox):
// the same values as decode_response_items, and a page with one malformed
// item is refused as a whole before any item is used.
TEST(Codec, ResponseItemsAsViews) {
  auto page = [](bool break_second) {
    Writer w;
    w.array(3);
    proto::write_response_item(w, 7, "in7", "", "2 * 3");
    if (break_second) {
      w.array(4).u64(8).bin("in8").str("x").u64(5);  // data must be bytes
    } else {
      proto::write_response_item(w, 8, "in8", "timeout", "too slow");
    }
    proto::write_response_item(w, 9, "", "", "");
    Writer m;
    m.array(4).u64(1).u64(1).u64(0);
    std::string body = w.finish_string();
    return std::make_pair(std::move(m), std::move(body));
  };
  auto [head_w, body] = page(false);
  std::string msg = head_w.finish_string() + body;
  Envelope env;
  ASSERT_TRUE(decode_envelope(msg.data(), msg.size(), &env).ok());
  Reader items = env.fields.array();
  auto n = proto::check_response_items(items);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3u);
  std::vector<proto::Response> all;
  Reader again = items;
  ASSERT_TRUE(proto::decode_response_items(again, &all).ok());
  proto::ResponseView v;
  proto::Response r;
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(proto::read_response_item(items, &v));
    v.copy_to(&r);
    EXPECT_EQ(r.request_id, all[i].request_id);
    EXPECT_EQ(r.user_data, all[i].user_data);
    EXPECT_EQ(r.fault_code, all[i].fault_code);
    EXPECT_EQ(r.data, all[i].data);
  }
  EXPECT_FALSE(proto::read_response_item(items, &v));
  EXPECT_TRUE(items.ok());
  EXPECT_EQ(all[1].fault_code, "timeout");
  EXPECT_FALSE(all[1].ok());

  auto [bad_head, bad_body] = page(true);
  std::string bad = bad_head.finish_string() + bad_body;
  Envelope benv;
  ASSERT_TRUE(decode_envelope(bad.data(), bad.size(), &benv).ok());
  EXPECT_FALSE(proto::check_response_items(benv.fields.array()).ok());
}

}  // namespace
}  // namespace zgrid
