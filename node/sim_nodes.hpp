// Many simulated compute nodes in one process (zgrid-node --simulate N, and
// the scale benchmarks), to put a head under 10,000-node load: each is a
// DEALER that registers with the head as `<prefix>-<i>` (service "echo",
// capacity `credit`) and answers its task messages as a real node would
// (node/result_hold.hpp), or `hold_ms` after each came (work in flight, for
// loss tests):
//   - the results of every task message read in one pass over a socket go
//     in ONE `results` message (as a node's I/O thread merges what its
//     workers pushed meanwhile);
//   - when the last message read brought more than one task (the head had a
//     queue), the node holds fewer unanswered tasks than its credit (the
//     head may still send more) and the head has been running ahead on this
//     node (a task message came while the node's last results were not sent
//     yet: more is on its way, not merely possible), those results wait at
//     most kMergeHoldMs for the next message's, to share its results
//     message. A message of one task, a node whose credit is all used
//     (nothing more can come), or the deadline sends them at once; a hold
//     that ran out with nothing new stops the holds on that node until the
//     head runs ahead again. (Holding on every message of several tasks cost
//     a 10,000-node head throughput: its least-loaded choice rarely sends a
//     node a second message, so the holds waited for nothing.) The real
//     node's rule is the same with "its workers have more claimed" standing
//     for "more is on its way".
// Heartbeats follow the real node's protocol (node/io_loop.cpp): the
// interval is the head's (its `registered`, then its answer to each
// heartbeat; `heartbeat_ms` until the head says), each heartbeat says the
// interval it uses, and a node that sent results (answering the head's
// tasks) sends none for an interval. One thread serves them all.
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
  // The longest results wait for the next task message's (see above).
  static constexpr int kMergeHoldMs = 1;

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
  std::uint64_t results_messages() const { return results_.load(); }
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

  // Reads everything socket i holds; answers as the header says.
  void serve(std::size_t i) {
    zmq::socket_t& s = socks_[i];
    // ZMQ_EVENTS after every send too: a send may have taken the edge.
    while (s.get(zmq::sockopt::events) & ZMQ_POLLIN) {
      std::size_t last_tasks = 0;
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
          pending_[i] = Pending{};  // the head forgot us: its tasks are void
          send_register(s, i);
          next_hb_[i] = std::chrono::steady_clock::now() + std::chrono::milliseconds(5000);
        }
        if (env.type != proto::kTasks) continue;
        proto::Tasks t;
        if (!proto::decode_tasks(env, &t).ok()) continue;
        ++messages_;
        if (hold_ms_ > 0) {
          Writer w = proto::begin(proto::kResults, 0, 1, 64 + t.items.size() * 32);
          w.array(static_cast<std::uint32_t>(t.items.size()));
          for (const auto& task : t.items) w.array(3).u64(task.task_id).nil().bin(task.payload);
          held_.push_back({std::chrono::steady_clock::now() + std::chrono::milliseconds(hold_ms_),
                           i, t.items.size(), w.finish()});
          continue;
        }
        Pending& p = pending_[i];
        // Another message before we answered the last: the head runs ahead.
        if (p.tasks > 0) p.ahead = true;
        if (p.tasks == 0) {
          p.body = proto::begin(proto::kResults, 0, 1, 64 + t.items.size() * 32);
          p.count_at = p.body.array32_placeholder();
          p.due = {};
        }
        for (const auto& task : t.items) p.body.array(3).u64(task.task_id).nil().bin(task.payload);
        p.tasks += t.items.size();
        last_tasks = t.items.size();
      }
      Pending& p = pending_[i];
      if (p.tasks == 0) continue;
      const auto now = std::chrono::steady_clock::now();
      const bool more_coming = p.ahead && last_tasks > 1 &&
                               p.tasks < static_cast<std::size_t>(credit_) && registered_[i];
      if (more_coming && p.due == std::chrono::steady_clock::time_point{}) {
        p.due = now + std::chrono::milliseconds(kMergeHoldMs);
        merging_.push_back({p.due, i});
        continue;
      }
      if (more_coming && now < p.due) continue;
      answer(i, now);
    }
  }

  // Sends socket i's pending results in one message.
  void answer(std::size_t i, std::chrono::steady_clock::time_point now) {
    Pending& p = pending_[i];
    p.body.patch_array32(p.count_at, static_cast<std::uint32_t>(p.tasks));
    zmq::message_t m = p.body.finish();
    (void)zmqu::send_one(socks_[i], m);
    ++results_;
    done_ += p.tasks;
    p.tasks = 0;
    p.due = {};
    // Tasks came and results went: no heartbeat due for an interval.
    next_hb_[i] = now + std::chrono::milliseconds(hb_of_[i]);
  }

  // Answers held past their time (in arrival order: one hold for all).
  void answer_held(std::chrono::steady_clock::time_point now) {
    while (!held_.empty() && held_.front().due <= now) {
      Held h = std::move(held_.front());
      held_.pop_front();
      (void)zmqu::send_one(socks_[h.sock], h.answer);
      ++results_;
      done_ += h.tasks;
      if (registered_[h.sock]) next_hb_[h.sock] = now + std::chrono::milliseconds(hb_of_[h.sock]);
      serve(h.sock);  // a send may have taken the edge
    }
    // Results waiting for the next message's, past their deadline.
    while (!merging_.empty() && merging_.front().due <= now) {
      const Merging w = merging_.front();
      merging_.pop_front();
      Pending& p = pending_[w.sock];
      if (p.tasks == 0 || p.due != w.due) continue;  // answered already
      p.ahead = false;  // nothing came: wait no more until it runs ahead again
      answer(w.sock, now);
      serve(w.sock);
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
    pending_.resize(n);
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
      int wait_ms = held_.empty() && merging_.empty() ? 20 : 1;
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
  std::atomic<std::uint64_t> done_{0}, messages_{0}, results_{0};
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
  // Each socket's results not sent yet (tasks > 0), in one message being
  // built; `due`: when they go at the latest (unset: not waiting).
  struct Pending {
    Writer body{16};
    std::size_t count_at = 0, tasks = 0;
    std::chrono::steady_clock::time_point due{};
    bool ahead = false;  // a message came while the last was unanswered
  };
  std::vector<Pending> pending_;
  struct Merging {
    std::chrono::steady_clock::time_point due;
    std::size_t sock = 0;
  };
  std::deque<Merging> merging_;  // in deadline order (one hold for all)
};

}  // namespace zgrid::node
