// Many simulated compute nodes in one process (zgrid-node --simulate N, and
// the scale benchmark), to put a head under 1,000-node load: each is
// a DEALER that registers with the head (service "echo", capacity `credit`),
// heartbeats every `heartbeat_ms` and answers every task at once. One thread
// polls them all. libzmq allows 1,023 sockets per context by default: the
// context's ZMQ_MAX_SOCKETS and the process's file limit are raised first.
#pragma once

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/zmq_util.hpp"

namespace zgrid::node {

class SimNodes {
 public:
  SimNodes(std::string backend, int count, int credit = 8, int heartbeat_ms = 1000)
      : backend_(std::move(backend)), count_(count), credit_(credit), hb_ms_(heartbeat_ms) {}
  ~SimNodes() { stop(); }

  void start() {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, static_cast<rlim_t>(count_) * 4 + 1024);
    setrlimit(RLIMIT_NOFILE, &rl);
    ctx_.set(zmq::ctxopt::max_sockets, count_ + 64);
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t tasks_done() const { return done_.load(); }

 private:
  void send_register(zmq::socket_t& s, int i) {
    proto::Register r;
    r.node_id = "sim-" + std::to_string(i);
    r.host = "sim";
    r.pid = 1;
    r.workers = 1;
    r.capacity = static_cast<std::uint64_t>(credit_);
    r.services = {"echo"};
    zmq::message_t m = proto::encode_register(static_cast<std::uint64_t>(i) + 1, r);
    (void)zmqu::send_one(s, m);
  }

  void run() {
    std::vector<zmq::socket_t> socks;
    socks.reserve(static_cast<std::size_t>(count_));
    for (int i = 0; i < count_; ++i) {
      zmqu::SocketOptions o;
      o.linger_ms = 0;
      auto s = zmqu::connect_dealer(ctx_, backend_, o);
      if (!s.ok()) return;
      socks.push_back(std::move(s).value());
    }
    std::vector<std::chrono::steady_clock::time_point> next_hb(socks.size());
    std::vector<bool> registered(socks.size(), false);
    auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < socks.size(); ++i) {
      send_register(socks[i], static_cast<int>(i));
      // Spread the heartbeats over the interval, as real nodes would be.
      next_hb[i] = t0 + std::chrono::milliseconds(hb_ms_ * static_cast<int>(i) / count_);
    }
    std::vector<zmq::pollitem_t> items(socks.size());
    for (std::size_t i = 0; i < socks.size(); ++i)
      items[i] = {static_cast<void*>(socks[i]), 0, ZMQ_POLLIN, 0};
    std::vector<zmq::message_t> frames;
    while (!stop_.load()) {
      try {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(20));
      } catch (const zmq::error_t&) {
        break;
      }
      auto now = std::chrono::steady_clock::now();
      for (std::size_t i = 0; i < socks.size(); ++i) {
        if (items[i].revents & ZMQ_POLLIN) {
          while (zmqu::recv_message(socks[i], &frames, 2) == zmqu::RecvStatus::kOk) {
            Envelope env;
            if (!decode_envelope(frames[0].data(), frames[0].size(), &env).ok()) continue;
            if (env.type == proto::kRegistered) registered[i] = true;
            if (env.type == proto::kError) send_register(socks[i], static_cast<int>(i));
            if (env.type != proto::kTasks) continue;
            proto::Tasks t;
            if (!proto::decode_tasks(env, &t).ok()) continue;
            Writer w = proto::begin(proto::kResults, 0, 1, 64 + t.items.size() * 32);
            w.array(static_cast<std::uint32_t>(t.items.size()));
            for (const auto& task : t.items) w.array(3).u64(task.task_id).nil().bin(task.payload);
            zmq::message_t m = w.finish();
            (void)zmqu::send_one(socks[i], m);
            done_ += t.items.size();
          }
        }
        if (!registered[i] && now >= next_hb[i]) {
          // Not connected yet (ZMQ_IMMEDIATE drops early sends): try again.
          send_register(socks[i], static_cast<int>(i));
          next_hb[i] = now + std::chrono::milliseconds(250);
          continue;
        }
        if (registered[i] && now >= next_hb[i]) {
          zmq::message_t hb = proto::encode_heartbeat("sim-" + std::to_string(i));
          (void)zmqu::send_one(socks[i], hb);
          next_hb[i] = now + std::chrono::milliseconds(hb_ms_);
        }
      }
    }
  }

  std::string backend_;
  int count_, credit_, hb_ms_;
  zmq::context_t ctx_{1};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> done_{0};
};

}  // namespace zgrid::node
