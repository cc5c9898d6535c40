// A fake head for node tests (node_failover_test, node_inline_test): a
// ROUTER on an ephemeral loopback port in the test thread, answering as
// docs/protocol.md ("Nodes", "Failover") says, and what it received.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/zmq_util.hpp"

namespace zgrid::testing {

// A `tasks` message as the head sends it: ids from `first_id` on, one per
// payload; `instance` a stateful session's instance key (empty: none).
inline zmq::message_t tasks_message(std::string_view service, std::uint64_t first_id,
                                    const std::vector<std::string>& payloads,
                                    std::uint64_t timeout_ms = 0, std::string_view instance = {}) {
  Writer w = proto::begin(proto::kTasks, 0, instance.empty() ? 3 : 4);
  w.str(service).array(static_cast<std::uint32_t>(payloads.size()));
  for (std::size_t i = 0; i < payloads.size(); ++i) w.array(2).u64(first_id + i).bin(payloads[i]);
  w.u64(timeout_ms);
  if (!instance.empty()) w.str(instance);
  return w.finish();
}

// One message a fake head received from the node.
struct Got {
  std::string rid;
  std::uint32_t type = 0;
  std::uint64_t corr = 0;
  std::vector<proto::Result1> results;  // kResults
  std::string results_frame;            // keeps the results' views alive
};

// A head as the node sees it: a ROUTER on an ephemeral loopback port.
class FakeHead {
 public:
  explicit FakeHead(zmq::context_t& ctx) {
    auto r = zmqu::bind_router(ctx, "tcp://127.0.0.1:*", &endpoint_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    s_ = std::move(r).value();
  }
  const std::string& endpoint() const { return endpoint_; }

  // The next message from the node, or false after `wait`.
  bool recv(Got* out, Millis wait) {
    zmq::pollitem_t item{static_cast<void*>(s_), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(wait)) == 0) return false;
    std::vector<zmq::message_t> frames;
    if (zmqu::recv_message(s_, &frames, 3) != zmqu::RecvStatus::kOk || frames.size() != 2)
      return false;
    *out = Got{};
    out->rid = frames[0].to_string();
    out->results_frame = frames[1].to_string();
    Envelope env;
    EXPECT_TRUE(decode_envelope(out->results_frame.data(), out->results_frame.size(), &env).ok());
    out->type = env.type;
    out->corr = env.corr;
    if (env.type == proto::kResults) {
      proto::Results r;
      EXPECT_TRUE(proto::decode_results(env, &r).ok());
      out->results = r.items;
    }
    return true;
  }
  // Reads until a message of `type` comes (others are kept in `seen`), or
  // false after `wait` in all.
  bool recv_type(std::uint32_t type, Got* out, Millis wait, std::vector<Got>* seen = nullptr) {
    const Millis until = SteadyClock::instance().now_ms() + wait;
    for (Millis now = SteadyClock::instance().now_ms(); now < until;
         now = SteadyClock::instance().now_ms()) {
      if (!recv(out, until - now)) return false;
      if (out->type == type) return true;
      if (seen) seen->push_back(std::move(*out));
    }
    return false;
  }

  // To a connection the node closed since (a register it sent before it
  // switched), the answer is lost, as with a real head.
  void send(const std::string& rid, zmq::message_t body) { (void)zmqu::send_routed(s_, rid, body); }
  void registered(const Got& reg, std::uint64_t epoch, std::uint64_t hb_ms = 200) {
    proto::Registered r;
    r.heartbeat_ms = hb_ms;
    r.misses = 3;
    r.head_instance = "fake" + std::to_string(epoch);
    r.epoch = epoch;
    send(reg.rid, proto::encode_registered(reg.corr, r));
  }
  void not_active(const Got& req, std::uint64_t epoch, const std::string& active_backend) {
    send(req.rid,
         proto::encode_not_active(req.corr, "this head is a standby", epoch,
                                  active_backend.empty() ? "" : "tcp://fe", active_backend));
  }
  void heartbeat(const std::string& rid) { send(rid, proto::encode_heartbeat("fake")); }
  void tasks(const std::string& rid, std::string_view service, std::uint64_t task_id,
             std::string_view payload, std::uint64_t timeout_ms = 0) {
    tasks(rid, service, task_id, std::vector<std::string>{std::string(payload)}, timeout_ms);
  }
  // Several tasks in one message, ids from `first_id` on.
  // `instance`: a stateful session's instance key (empty: none).
  void tasks(const std::string& rid, std::string_view service, std::uint64_t first_id,
             const std::vector<std::string>& payloads, std::uint64_t timeout_ms = 0,
             std::string_view instance = {}) {
    send(rid, tasks_message(service, first_id, payloads, timeout_ms, instance));
  }

 private:
  zmq::socket_t s_;
  std::string endpoint_;
};

}  // namespace zgrid::testing
