// Many small durable sessions made and purged fast, for the tests and the
// benchmark of the journal under load (tests/purge_storm_test.cpp,
// bench/scale_bench.cpp): one DEALER socket with requests pipelined, a
// window of them unanswered at a time, the replies read as they come.
#pragma once

#include <zmq.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"

namespace zgrid::testing {

class Pipeline {
 public:
  explicit Pipeline(const std::string& endpoint) : sock_(ctx_, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.set(zmq::sockopt::sndhwm, 0);
    sock_.set(zmq::sockopt::rcvhwm, 0);
    sock_.connect(endpoint);
  }

  struct Outcome {
    std::size_t ok = 0, errors = 0;
    std::string first_error;
    std::vector<std::string> session_ids;  // submits: the sessions made, in reply order
    bool timed_out = false;
  };

  // `n` one-message durable sessions of `service`, one request each
  // (payload and user_data "x").
  Outcome submit_sessions(std::size_t n, const std::string& service, Millis timeout_ms,
                          std::size_t window = 512) {
    return run(
        n, window, timeout_ms,
        [&](std::uint64_t corr) {
          proto::Submit m;
          m.create.service = service;
          m.create.durable = true;
          m.client_id = "c";
          m.items.push_back({"x", "x"});
          return proto::encode_submit(corr, m);
        },
        [](Envelope& env, Outcome& out) {
          proto::Submitted r;
          if (!proto::decode_submitted(env, &r).ok()) return false;
          out.session_ids.push_back(r.info.session_id);
          return true;
        });
  }

  // `close --purge` of each session in `sids`, pipelined: all sent at once
  // (window: all), the replies read until every one came. `on_sent` runs
  // once the last is sent.
  Outcome purge(const std::vector<std::string>& sids, Millis timeout_ms,
                const std::function<void()>& on_sent = {}) {
    return run(
        sids.size(), sids.size(), timeout_ms,
        [&](std::uint64_t corr) {
          proto::Close m;
          m.session_id = sids[corr - 1];
          m.mode = proto::CloseMode::kPurge;
          return proto::encode_close(corr, m);
        },
        [](Envelope&, Outcome&) { return true; }, on_sent);
  }

 private:
  // Sends make(i) for i = 1..n, at most `window` unanswered, and hands each
  // non-error reply to take(); stops at `timeout_ms`.
  template <typename Make, typename Take>
  Outcome run(std::size_t n, std::size_t window, Millis timeout_ms, const Make& make,
              const Take& take, const std::function<void()>& on_sent = {}) {
    Outcome out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::size_t sent = 0, got = 0;
    bool told = false;
    while (got < n) {
      while (sent < n && sent - got < window) {
        zmq::message_t m = make(static_cast<std::uint64_t>(sent + 1));
        if (!sock_.send(m, zmq::send_flags::dontwait)) break;
        ++sent;
      }
      if (sent == n && !told) {
        told = true;
        if (on_sent) on_sent();
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        out.timed_out = true;
        break;
      }
      zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(std::min<long>(left.count(), 100)));
      zmq::message_t reply;
      while (got < n && sock_.recv(reply, zmq::recv_flags::dontwait)) {
        ++got;
        Envelope env;
        if (!decode_envelope(reply.data(), reply.size(), &env).ok()) {
          ++out.errors;
          continue;
        }
        if (env.type == proto::kError) {
          proto::Error e;
          (void)proto::decode_error(env, &e);
          if (out.errors++ == 0) out.first_error = e.message;
          continue;
        }
        if (take(env, out))
          ++out.ok;
        else
          ++out.errors;
      }
    }
    return out;
  }

  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
};

}  // namespace zgrid::testing
