// The HTTP listener's front door. It accepts connections and holds each
// one in an epoll set, with no thread, until its request head is in (a
// blank line ends it), its client closed, or the head outgrew the limit;
// only then does a serving thread take it. So idle connections, clients
// that trickle their headers in (slowloris) and the half-open leftovers of
// a flood cost a descriptor each, never a thread: /metrics is answered
// while they wait, and once a flood ends nothing is left to drain.
// (cpp-httplib's own loop gives every accepted connection a thread while it
// waits for the first byte: after a flood of 10,000 connections the kernel's
// leftovers held all 4 threads for tens of seconds.)
//
// Bounded: at most `max_connections` held in all. When full, the oldest
// waiting connection is closed to make room; when every held one is being
// served or queued for a thread, accepting pauses and the kernel's backlog
// holds the rest. A request head must be complete within `head_timeout_ms`
// of the accept, and a thread serves a connection for at most
// `serve_timeout_ms` (its reads and writes wait no longer: `Serve` gets the
// deadline).
//
// Thread safety: start() and stop() from one thread (the owner). The gate
// runs one acceptor thread, which alone owns the epoll set and every waiting
// connection, and `threads` serving threads, each owning the connection it
// serves until it closes it. counts() may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.hpp"

namespace zgrid::head {

struct GateLimits {
  int threads = 4;
  std::size_t max_connections = 1024;  // waiting + queued + being served
  int head_timeout_ms = 5000;          // accept to the blank line ending the request head
  int serve_timeout_ms = 10000;        // a thread's whole time on one connection
  std::size_t max_head_bytes = 16384;  // handed over at this size, blank line or not
};

class HttpGate {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  // Serves one request on a connected, non-blocking socket; it must not wait
  // past the deadline. The gate shuts the socket down and closes it after.
  using Serve = std::function<void(int fd, Deadline deadline)>;

  struct Counts {
    std::uint64_t served = 0;     // handed to a thread
    std::uint64_t timed_out = 0;  // no complete request head in time
    std::uint64_t evicted = 0;    // closed to make room (the oldest waiting)
    std::uint64_t gone = 0;       // closed by the client before a request
  };

  HttpGate(GateLimits limits, Serve serve);
  ~HttpGate();  // stop()
  HttpGate(const HttpGate&) = delete;
  HttpGate& operator=(const HttpGate&) = delete;

  // Takes the bound, listening socket (the gate closes it at stop) and
  // starts the threads.
  [[nodiscard]] Status start(int listen_fd);
  // Closes the listening socket and every waiting connection, cuts short
  // the ones being served (shutdown), and joins every thread.
  void stop();
  Counts counts() const;

 private:
  struct Waiting {
    Deadline deadline;
    std::uint64_t seq = 0;    // tells a reused descriptor number from its predecessor
    std::size_t scanned = 0;  // bytes already searched for the blank line
  };

  void accept_loop();
  void accept_ready();
  // The request head in? Hand it over; the client gone without one? Drop it.
  void check(int fd, bool peer_closed);
  void drop(int fd, std::atomic<std::uint64_t>& why);
  bool evict_oldest();  // false: nothing waiting to evict
  void expire(Deadline now);
  void hand_over(int fd);
  void set_accepting(bool on);
  void serve_loop();
  void release();  // one held connection fewer (any thread)
  void log_drops(Deadline now);

  const GateLimits limits_;
  const Serve serve_;
  int listen_fd_ = -1, epoll_fd_ = -1, wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> held_{0};
  std::atomic<std::uint64_t> served_{0}, timed_out_{0}, evicted_{0}, gone_{0};

  // The acceptor thread's alone.
  std::unordered_map<int, Waiting> waiting_;
  std::deque<std::pair<int, std::uint64_t>> order_;  // accept order: fd, seq
  std::uint64_t next_seq_ = 0;
  bool accepting_ = true;
  Deadline resume_at_{};  // accepting paused for want of descriptors: not before
  std::vector<char> peek_;
  Deadline next_log_{};
  std::uint64_t logged_drops_ = 0;

  // Shared by the acceptor and the serving threads, under mu_.
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<int> queue_;  // handed over, waiting for a thread
  std::set<int> serving_;  // being served: stop() shuts them down

  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

}  // namespace zgrid::head
