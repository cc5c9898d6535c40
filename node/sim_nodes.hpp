// Many simulated compute nodes in one process (zgrid-node --simulate N, and
// the scale benchmarks), to put a head under 10,000-node load: each is a
// DEALER that registers with the head as `<prefix>-<i>` (service "echo",
// capacity `credit`) and answers every task message at once, or `hold_ms`
// after it came (work in flight, for loss tests). Heartbeats follow the real
// node's protocol (node/io_loop.cpp): the interval is the head's (its
// `registered`, then its answer to each heartbeat; `heartbeat_ms` until the
// head says), each heartbeat says the interval it uses, and a node that
// sent results (answering the head's tasks) sends none for an interval. One thread serves them all.
// libzmq allows 1,023 sockets per context by default: the context's ZMQ_MAX_SOCKETS and the
// process's file limit are raised first (each socket holds two descriptors: its TCP connection and
// its mailbox).
//
// Wake-ups come from epoll over every socket's ZMQ_FD, so a busy simulator
// costs O(sockets with traffic), not O(sockets), per wake-up: zmq_poll over
// 5,000 sockets spent milliseconds per call and made the simulator, not the
// head, the bottleneck. ZMQ_FD is edge-triggered: a socket is read until
// ZMQ_EVENTS says it has nothing, after every send too, and a sweep of all
// sockets every 100 ms covers a missed edge.
//
// start()/stop()/counters are for the owning thread; the counters are atomic.
#pragma once

#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/zmq_util.hpp"

namespace zgrid::node {

class SimNodes {
 public:
  SimNodes(std::string backend, int count, int credit = 8, int heartbeat_ms = 1000,
           std::string prefix = "sim", int hold_ms = 0)
      : backend_(std::move(backend)),
        count_(count),
        credit_(credit),
        hb_ms_(heartbeat_ms),
        hold_ms_(hold_ms),
        prefix_(std::move(prefix)) {}
  ~SimNodes() { stop(); }

  void start() {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, static_cast<rlim_t>(count_) * 2 + 256);
    setrlimit(RLIMIT_NOFILE, &rl);
    ctx_.set(zmq::ctxopt::max_sockets, count_ + 64);
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t tasks_done() const { return done_.load(); }
  std::uint64_t task_messages() const { return messages_.load(); }
  int connected() const { return connected_.load(); }  // sockets made (all of them, or a failure)

 private:
  std::string id_of(std::size_t i) const {
    return std::string(prefix_).append("-").append(std::to_string(i));
  }

  void send_register(zmq::socket_t& s, std::size_t i) {
    proto::Register r;
    r.node_id = id_of(i);
    r.host = "sim";
    r.pid = 1;
    r.workers = 1;
    r.capacity = static_cast<std::uint64_t>(credit_);
    r.services = {"echo"};
    zmq::message_t m = proto::encode_register(static_cast<std::uint64_t>(i) + 1, r);
    (void)zmqu::send_one(s, m);
  }

  // Reads everything socket i holds, answering tasks at once.
  void serve(std::size_t i) {
    zmq::socket_t& s = socks_[i];
    while (s.get(zmq::sockopt::events) & ZMQ_POLLIN) {
      while (zmqu::recv_message(s, &frames_, 2) == zmqu::RecvStatus::kOk) {
        Envelope env;
        if (!decode_envelope(frames_[0].data(), frames_[0].size(), &env).ok()) continue;
        if (env.type == proto::kRegistered && !registered_[i]) {
          proto::Registered r;
          if (!proto::decode_registered(env, &r).ok()) continue;
          registered_[i] = true;
          hb_of_[i] = static_cast<int>(r.heartbeat_ms);
          // Heartbeats spread over the interval, as real nodes' would be.
          next_hb_[i] = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<long>(hb_of_[i]) *
                                                  static_cast<long>(i) / count_);
        }
        if (env.type == proto::kHeartbeat) {
          // The head's answer: the interval to use from now on.
          proto::HeadHeartbeat h;
          if (proto::decode_head_heartbeat(env, &h).ok() && h.heartbeat_ms > 0 &&
              static_cast<int>(h.heartbeat_ms) != hb_of_[i]) {
            hb_of_[i] = static_cast<int>(h.heartbeat_ms);
            next_hb_[i] = std::chrono::steady_clock::now() + std::chrono::milliseconds(hb_of_[i]);
          }
        }
        if (env.type == proto::kError) {
          registered_[i] = false;
          send_register(s, i);
          next_hb_[i] = std::chrono::steady_clock::now() + std::chrono::milliseconds(5000);
        }
        if (env.type != proto::kTasks) continue;
        proto::Tasks t;
        if (!proto::decode_tasks(env, &t).ok()) continue;
        Writer w = proto::begin(proto::kResults, 0, 1, 64 + t.items.size() * 32);
        w.array(static_cast<std::uint32_t>(t.items.size()));
        for (const auto& task : t.items) w.array(3).u64(task.task_id).nil().bin(task.payload);
        zmq::message_t m = w.finish();
        ++messages_;
        if (hold_ms_ > 0) {
          held_.push_back({std::chrono::steady_clock::now() + std::chrono::milliseconds(hold_ms_),
                           i, t.items.size(), std::move(m)});
          continue;
        }
        (void)zmqu::send_one(s, m);
        done_ += t.items.size();
        // Tasks came and results went: no heartbeat due for an interval.
        next_hb_[i] = std::chrono::steady_clock::now() + std::chrono::milliseconds(hb_of_[i]);
      }
    }
  }

  // Answers held past their time (in arrival order: one hold for all).
  void answer_held(std::chrono::steady_clock::time_point now) {
    while (!held_.empty() && held_.front().due <= now) {
      Held h = std::move(held_.front());
      held_.pop_front();
      (void)zmqu::send_one(socks_[h.sock], h.answer);
      done_ += h.tasks;
      if (registered_[h.sock]) next_hb_[h.sock] = now + std::chrono::milliseconds(hb_of_[h.sock]);
      serve(h.sock);  // a send may have taken the edge
    }
  }

  void run() {
    socks_.reserve(static_cast<std::size_t>(count_));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < count_; ++i) {
      // Without ZMQ_IMMEDIATE (unlike a real node): the register waits in
      // the pipe until the connection is made, so 10,000 of them need no
      // retry rounds while the head accepts.
      try {
        zmq::socket_t s(ctx_, zmq::socket_type::dealer);
        s.set(zmq::sockopt::linger, 0);
        s.connect(backend_);
        socks_.push_back(std::move(s));
      } catch (const zmq::error_t&) {
        break;
      }
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLET;
      ev.data.u64 = static_cast<std::uint64_t>(i);
      (void)epoll_ctl(ep, EPOLL_CTL_ADD, socks_.back().get(zmq::sockopt::fd), &ev);
    }
    connected_ = static_cast<int>(socks_.size());
    const std::size_t n = socks_.size();
    next_hb_.resize(n);
    registered_.assign(n, false);
    hb_of_.assign(n, hb_ms_);
    auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < n; ++i) {
      send_register(socks_[i], i);
      next_hb_[i] = t0 + std::chrono::milliseconds(5000);  // to be answered; then heartbeats
    }
    std::vector<epoll_event> evs(1024);
    auto next_sweep = t0;
    auto next_timers = t0;
    while (!stop_.load()) {
      int wait_ms = held_.empty() ? 20 : 1;
      int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), wait_ms);
      for (int e = 0; e < k; ++e)
        serve(static_cast<std::size_t>(evs[static_cast<std::size_t>(e)].data.u64));
      auto now = std::chrono::steady_clock::now();
      answer_held(now);
      if (now >= next_sweep) {
        for (std::size_t i = 0; i < n; ++i) serve(i);
        next_sweep = now + std::chrono::milliseconds(100);
      }
      if (now < next_timers) continue;
      next_timers = now + std::chrono::milliseconds(10);
      for (std::size_t i = 0; i < n; ++i) {
        if (now < next_hb_[i]) continue;
        if (!registered_[i]) {
          // No answer yet (the head is busy, or restarted): again, slowly.
          send_register(socks_[i], i);
          next_hb_[i] = now + std::chrono::milliseconds(5000);
        } else {
          zmq::message_t hb =
              proto::encode_node_heartbeat(id_of(i), static_cast<std::uint64_t>(credit_), 0,
                                           static_cast<std::uint64_t>(hb_of_[i]));
          (void)zmqu::send_one(socks_[i], hb);
          next_hb_[i] = now + std::chrono::milliseconds(hb_of_[i]);
        }
        serve(i);  // a send may have taken the edge
      }
    }
    socks_.clear();
    close(ep);
  }

  std::string backend_;
  int count_, credit_, hb_ms_, hold_ms_;
  std::string prefix_;
  zmq::context_t ctx_{1};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> done_{0}, messages_{0};
  std::atomic<int> connected_{0};
  // The serving thread's alone.
  std::vector<zmq::socket_t> socks_;
  std::vector<bool> registered_;
  std::vector<int> hb_of_;  // each node's heartbeat interval (the head's)
  std::vector<std::chrono::steady_clock::time_point> next_hb_;
  std::vector<zmq::message_t> frames_;
  struct Held {
    std::chrono::steady_clock::time_point due;
    std::size_t sock = 0, tasks = 0;
    zmq::message_t answer;
  };
  std::deque<Held> held_;
};

}  // namespace zgrid::node
