// When the client library acknowledges responses (`resp_ack`): with the
// client's next message or before it waits — not as a message of its own
// right after each `responses`, which on a lone request cost the head a
// wake-up just as the next request came — and at once when the client
// sends nothing more (ended, or made by submit), since its session
// completes only once they are acknowledged. Against a fake head in this
// process that records what reaches it, in order.
#include <gtest/gtest.h>
#include <zgrid/client.hpp>
#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/zmq_util.hpp"
#include "support/grid_process.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using client::Connection;

// A head that answers hello/ping, open_client, send (an ack, then one
// response per item: "r" + payload) and end_requests, and records the type
// of every message (and a resp_ack's count) in order. Its thread owns the socket.
class RecordingHead {
 public:
  RecordingHead() {
    zmqu::SocketOptions so;
    so.linger_ms = 0;
    auto s = zmqu::bind_router(ctx_, "tcp://127.0.0.1:*", &endpoint_, so);
    EXPECT_TRUE(s.ok()) << s.status().message();
    sock_ = std::move(s).value();
    thread_ = std::thread([this] { run(); });
  }
  ~RecordingHead() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  // What reached it, in order: "send", "resp_ack:N", "end_requests", ...
  std::vector<std::string> seen() {
    std::lock_guard<std::mutex> l(mu_);
    return seen_;
  }

 private:
  void note(std::string what) {
    std::lock_guard<std::mutex> l(mu_);
    seen_.push_back(std::move(what));
  }
  void run() {
    while (!stop_) {
      zmq::pollitem_t item{static_cast<void*>(sock_), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(10)) <= 0) continue;
      std::vector<zmq::message_t> frames;
      while (zmqu::recv_message(sock_, &frames, 3) == zmqu::RecvStatus::kOk) {
        if (frames.size() != 2) continue;
        std::string rid(static_cast<const char*>(frames[0].data()), frames[0].size());
        Envelope env;
        if (!decode_envelope(frames[1].data(), frames[1].size(), &env).ok()) continue;
        auto reply = [&](zmq::message_t m) { (void)zmqu::send_routed(sock_, rid, m); };
        switch (env.type) {
          case proto::kHello:
          case proto::kPing:
            reply(proto::encode_hello_ok(env.corr, "fake", "instance", 0));
            break;
          case proto::kOpenClient: {
            proto::OpenClient m;
            ASSERT_TRUE(proto::decode_open_client(env, &m).ok());
            reply(proto::encode_client_opened(env.corr, {m.session_id, m.client_id, 0}));
            break;
          }
          case proto::kSend: {
            proto::Send m;
            ASSERT_TRUE(proto::decode_send(env, &m).ok());
            note("send");
            proto::Ack a;
            a.session_id = m.session_id;
            a.client_id = m.client_id;
            a.first_seq = m.first_seq;
            a.count = m.items.size();
            a.first_request_id = m.first_seq;
            Writer w = proto::begin(proto::kResponses, 0, 3);
            w.str(m.session_id).str(m.client_id).array(static_cast<std::uint32_t>(m.items.size()));
            for (std::size_t i = 0; i < m.items.size(); ++i)
              proto::write_response_item(w, m.first_seq + i, m.items[i].user_data, "",
                                         std::string("r").append(m.items[i].payload));
            reply(proto::encode_ack(env.corr, a));
            reply(w.finish());
            break;
          }
          case proto::kRespAck: {
            proto::ClientRef m;
            ASSERT_TRUE(proto::decode_client_ref(env, &m).ok());
            note("resp_ack:" + std::to_string(m.value));
            break;
          }
          case proto::kEndRequests:
            note("end_requests");
            reply(proto::encode_ok(env.corr));
            break;
          default:
            break;
        }
      }
    }
  }

  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> seen_;
  std::thread thread_;
};

TEST(RespAck, GoesWithTheClientsNextMessageOrBeforeItWaits) {
  RecordingHead head;
  client::ClientOptions o;
  o.head = head.endpoint();
  o.timeout_ms = 5'000;
  auto conn = Connection::open(o);
  ASSERT_TRUE(conn.ok()) << conn.status().message();
  auto bc = BrokerClient::open(**conn, "0123456789abcdef0123456789abcdef", "c");
  ASSERT_TRUE(bc.ok()) << bc.status().message();
  proto::Response r;
  auto lone = [&](const std::string& p) {
    ASSERT_TRUE((*bc)->send(p, p).ok());
    ASSERT_TRUE((*bc)->flush().ok());
    auto got = (*bc)->next_response(&r, 5'000);
    ASSERT_TRUE(got.ok() && *got);
    EXPECT_EQ(r.data, "r" + p);
  };
  lone("1");
  // Answered: the acknowledgement waits for the client's next message.
  EXPECT_FALSE(testing::wait_until([&] { return head.seen().size() > 1; }, 200, 10));
  EXPECT_EQ(head.seen(), (std::vector<std::string>{"send"}));
  lone("2");
  EXPECT_TRUE(testing::wait_until([&] { return head.seen().size() >= 3; }, 5'000, 10));
  EXPECT_EQ(head.seen(), (std::vector<std::string>{"send", "resp_ack:1", "send"}));
  // Before waiting with nothing buffered, it goes (the head may send more).
  auto none = (*bc)->next_response(&r, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);
  EXPECT_TRUE(testing::wait_until([&] { return head.seen().size() >= 4; }, 5'000, 10));
  EXPECT_EQ(head.seen().back(), "resp_ack:1");
  // One more answered, then the end: the acknowledgement goes before it.
  lone("3");
  ASSERT_TRUE((*bc)->end_requests().ok());
  auto seen = head.seen();
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(std::vector<std::string>(seen.end() - 3, seen.end()),
            (std::vector<std::string>{"send", "resp_ack:1", "end_requests"}));
}

}  // namespace
}  // namespace zgrid
