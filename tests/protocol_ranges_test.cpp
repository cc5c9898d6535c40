// Every numeric field of every message is checked at decode against its
// documented range (docs/protocol.md, "Field ranges"): the values at both
// ends decode, one past either end and 2^64-1 are refused with
// invalid_argument naming the field. Structural errors stay kProtocol.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"

namespace zgrid {
namespace {

constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

// One numeric field: how to build a message with it set to v, how to decode.
struct Field {
  std::string name;  // as the error names it
  std::uint64_t lo, hi;
  std::function<zmq::message_t(std::uint64_t v)> build;
  std::function<Status(Envelope&)> decode;
};

Status DecodeWith(const Field& f, std::uint64_t v) {
  zmq::message_t m = f.build(v);
  Envelope env;
  Status st = decode_envelope(m.data(), m.size(), &env);
  if (!st.ok()) return st;
  return f.decode(env);
}

template <typename Msg>
std::function<Status(Envelope&)> Dec(Status (*fn)(Envelope&, Msg*)) {
  return [fn](Envelope& e) {
    Msg m;
    return fn(e, &m);
  };
}

std::vector<Field> AllFields() {
  using namespace proto;
  auto create = [](int which) {
    return [which](std::uint64_t v) {
      Writer w = begin(kCreateSession, 1, 5);
      w.str("factorize").boolean(true);
      for (int i = 0; i < 3; ++i) w.u64(i == which ? v : 0);
      return w.finish();
    };
  };
  auto send = [](std::uint64_t v) {
    Writer w = begin(kSend, 1, 5);
    w.str("s").str("c").u64(v).boolean(false).array(1).array(2).bin("u").bin("1");
    return w.finish();
  };
  auto ack = [](int which) {
    return [which](std::uint64_t v) {
      Writer w = begin(kAck, 1, 6);
      w.str("s").str("c");
      w.u64(which == 0 ? v : 1).u64(which == 1 ? v : 1).u64(which == 2 ? v : 1).nil();
      return w.finish();
    };
  };
  auto client_ref = [](std::uint32_t type) {
    return [type](std::uint64_t v) {
      Writer w = begin(type, 1, 3);
      w.str("s").str("c").u64(v);
      return w.finish();
    };
  };
  auto client_opened = [](std::uint64_t v) {
    Writer w = begin(kClientOpened, 1, 3);
    w.str("s").str("c").u64(v);
    return w.finish();
  };
  auto close = [](std::uint64_t v) {
    Writer w = begin(kClose, 1, 2);
    w.str("s").u64(v);
    return w.finish();
  };
  auto fetch = [](int which) {
    return [which](std::uint64_t v) {
      Writer w = begin(kFetch, 1, 4);
      w.str("s");
      for (int i = 0; i < 3; ++i) w.u64(i == which ? v : 1);
      return w.finish();
    };
  };
  auto reg = [](int which) {
    return [which](std::uint64_t v) {
      Writer w = begin(kRegister, 1, 7);
      w.str("n").str("h");
      w.u64(which == 0 ? v : 1).u64(which == 1 ? v : 1).u64(which == 2 ? v : 1);
      w.array(1).str("echo@1");
      w.array(1).array(3).str("echo@1").u64(which == 3 ? v : 0);
      if (which == 4)
        w.i64(static_cast<std::int64_t>(v) - 1);  // max_retries from -1
      else
        w.i64(-1);
      return w.finish();
    };
  };
  auto heartbeat = [](int which) {
    return [which](std::uint64_t v) {
      Writer w = begin(kHeartbeat, 0, 3);
      w.str("n").u64(which == 0 ? v : 1).u64(which == 1 ? v : 0);
      return w.finish();
    };
  };
  auto node_interval = [](std::uint64_t v) {
    Writer w = begin(kHeartbeat, 0, 4);
    w.str("n").u64(1).u64(0).u64(v);
    return w.finish();
  };
  auto head_interval = [](std::uint64_t v) {
    Writer w = begin(kHeartbeat, 0, 2);
    w.str("head").u64(v);
    return w.finish();
  };
  auto registered = [](int which) {
    return [which](std::uint64_t v) {
      Writer w = begin(kRegistered, 1, 3);
      w.u64(which == 0 ? v : 1000).u64(which == 1 ? v : 3).str("head");
      return w.finish();
    };
  };
  auto tasks = [](std::uint64_t v) {
    Writer w = begin(kTasks, 0, 3);
    w.str("echo").array(1).array(2).u64(1).bin("x").u64(v);
    return w.finish();
  };
  auto submit = [](int which) {
    return [which](std::uint64_t v) {
      Writer w = begin(kSubmit, 1, 8);
      w.str("echo").boolean(true);
      for (int i = 0; i < 3; ++i) w.u64(i == which ? v : 0);
      w.boolean(false).str("c").array(1).array(2).bin("u").bin("1");
      return w.finish();
    };
  };
  auto submitted = [](int which) {
    return [which](std::uint64_t v) {
      Writer w = begin(kSubmitted, 1, 8);
      w.str("s").str("echo").boolean(false).u64(which == 0 ? v : 1).boolean(false);
      w.u64(which == 1 ? v : 1).u64(which == 2 ? v : 1).nil();
      return w.finish();
    };
  };
  auto session_info = [](std::uint64_t v) {
    Writer w = begin(kSessionInfo, 1, 4);
    w.str("s").str("echo").boolean(false).u64(v);
    return w.finish();
  };
  return {
      {"client_idle_timeout_ms", 0, kMaxDurationMs, create(0), Dec(decode_create_session)},
      {"task_timeout_ms", 0, kMaxDurationMs, create(1), Dec(decode_create_session)},
      {"deadline_ms", 0, kMaxDurationMs, create(2), Dec(decode_create_session)},
      {"first_seq", 1, kMaxSeq, send, Dec(decode_send)},
      {"first_seq", 1, kMaxSeq, ack(0), Dec(decode_ack)},
      {"count", 0, kMaxBatchItems, ack(1), Dec(decode_ack)},
      {"first_request_id", 0, kMaxSeq, ack(2), Dec(decode_ack)},
      {"value", 0, kMaxSeq, client_ref(kFlush), Dec(decode_client_ref)},
      {"value", 0, kMaxSeq, client_ref(kEndRequests), Dec(decode_client_ref)},
      {"value", 0, kMaxSeq, client_ref(kRespAck), Dec(decode_client_ref)},
      {"acked_seq", 0, kMaxSeq, client_opened, Dec(decode_client_opened)},
      {"mode", 0, 2, close, Dec(decode_close)},
      {"cursor", 0, kMaxSeq, fetch(0), Dec(decode_fetch)},
      {"max", 0, kMaxFetchPage, fetch(1), Dec(decode_fetch)},
      {"wait_ms", 0, kMaxDurationMs, fetch(2), Dec(decode_fetch)},
      {"pid", 0, kMaxPid, reg(0), Dec(decode_register)},
      {"workers", 1, kMaxWorkers, reg(1), Dec(decode_register)},
      {"capacity", 1, kMaxCapacity, reg(2), Dec(decode_register)},
      {"task_timeout_ms", 0, kMaxDurationMs, reg(3), Dec(decode_register)},
      // max_retries is -1..1000, built as v-1 so that 0..1001 covers it.
      {"max_retries", 0, static_cast<std::uint64_t>(kMaxRetriesLimit) + 1, reg(4),
       Dec(decode_register)},
      {"capacity", 0, kMaxCapacity, heartbeat(0), Dec(decode_heartbeat)},
      {"stuck", 0, kMaxWorkers, heartbeat(1), Dec(decode_heartbeat)},
      {"heartbeat_ms", 1, kMaxHeartbeatMs, registered(0), Dec(decode_registered)},
      {"heartbeat_ms", 1, kMaxHeartbeatMs, node_interval, Dec(decode_heartbeat)},
      {"heartbeat_ms", 1, kMaxHeartbeatMs, head_interval, Dec(decode_head_heartbeat)},
      {"misses", 1, kMaxHeartbeatMisses, registered(1), Dec(decode_registered)},
      {"timeout_ms", 0, kMaxDurationMs, tasks, Dec(decode_tasks)},
      {"state", 0, 3, session_info, Dec(decode_session_info)},
      {"client_idle_timeout_ms", 0, kMaxDurationMs, submit(0), Dec(decode_submit)},
      {"task_timeout_ms", 0, kMaxDurationMs, submit(1), Dec(decode_submit)},
      {"deadline_ms", 0, kMaxDurationMs, submit(2), Dec(decode_submit)},
      {"state", 0, 3, submitted(0), Dec(decode_submitted)},
      {"first_request_id", 0, kMaxSeq, submitted(1), Dec(decode_submitted)},
      {"count", 0, kMaxBatchItems, submitted(2), Dec(decode_submitted)},
  };
}

TEST(ProtocolRanges, BothEndsDecodeOnePastIsInvalidArgument) {
  for (const Field& f : AllFields()) {
    SCOPED_TRACE(f.name);
    EXPECT_TRUE(DecodeWith(f, f.lo).ok()) << DecodeWith(f, f.lo).ToString();
    EXPECT_TRUE(DecodeWith(f, f.hi).ok()) << DecodeWith(f, f.hi).ToString();
    std::vector<std::uint64_t> bad = {f.hi + 1, kU64Max};
    if (f.lo > 0) bad.push_back(f.lo - 1);
    for (std::uint64_t v : bad) {
      Status st = DecodeWith(f, v);
      EXPECT_EQ(st.code(), Code::kInvalidArgument) << v << ": " << st.ToString();
      EXPECT_NE(st.message().find(f.name), std::string::npos) << st.message();
      EXPECT_NE(st.message().find("outside"), std::string::npos) << st.message();
    }
  }
}

TEST(ProtocolRanges, NegativeMaxRetriesBelowMinusOneIsRefused) {
  Writer w = proto::begin(proto::kRegister, 1, 7);
  w.str("n").str("h").u64(1).u64(1).u64(1).array(1).str("echo@1");
  w.array(1).array(3).str("echo@1").u64(0).i64(-2);
  zmq::message_t m = w.finish();
  Envelope env;
  ASSERT_TRUE(decode_envelope(m.data(), m.size(), &env).ok());
  proto::Register r;
  Status st = proto::decode_register(env, &r);
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("max_retries -2"), std::string::npos) << st.message();
}

TEST(ProtocolRanges, WrongTypeIsStillAProtocolError) {
  Writer w = proto::begin(proto::kCreateSession, 1, 5);
  w.str("factorize").boolean(true).str("not a number").u64(0).u64(0);
  zmq::message_t m = w.finish();
  Envelope env;
  ASSERT_TRUE(decode_envelope(m.data(), m.size(), &env).ok());
  proto::CreateSession cs;
  EXPECT_EQ(proto::decode_create_session(env, &cs).code(), Code::kProtocol);
}

// The repro: deadline_ms and client_idle_timeout_ms of 2^64-1 used
// to wrap to -1 inside the head.
TEST(ProtocolRanges, HugeTimeoutsOfTheReproAreRefused) {
  for (int which : {0, 2}) {
    Writer w = proto::begin(proto::kCreateSession, 1, 5);
    w.str("factorize").boolean(false);
    for (int i = 0; i < 3; ++i) w.u64(i == which ? kU64Max : 0);
    zmq::message_t m = w.finish();
    Envelope env;
    ASSERT_TRUE(decode_envelope(m.data(), m.size(), &env).ok());
    proto::CreateSession cs;
    Status st = proto::decode_create_session(env, &cs);
    EXPECT_EQ(st.code(), Code::kInvalidArgument);
    EXPECT_NE(st.message().find("18446744073709551615 is outside 0..31536000000"),
              std::string::npos)
        << st.message();
  }
}

}  // namespace
}  // namespace zgrid
