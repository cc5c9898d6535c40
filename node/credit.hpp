// The node's credit: how many tasks the head may send it ahead. It is
// prefetch tasks per worker that is not stuck (a worker is stuck while a
// call that ran past its task timeout has not returned). Prefetch is fixed
// (--prefetch N) or adaptive (0): every kAdaptEveryMs the task time the
// workers measured (TaskClock) is turned into a new prefetch by
// next_prefetch (node/prefetch.hpp).
//
// Threads: TaskClock is written by the workers and read by the I/O thread
// (relaxed atomics: totals, no ordering needed). Credit belongs to the I/O
// thread (IoLoop) alone: plain values, no locks.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/protocol.hpp"
#include "node/prefetch.hpp"

namespace zgrid::node {

// Task time as the workers measure it (run time of successful tasks only, not
// waiting), read by the I/O thread to size the node's credit (adaptive prefetch).
struct TaskClock {
  std::atomic<std::uint64_t> busy_ns{0};
  std::atomic<std::uint64_t> tasks{0};
};

class Credit {
 public:
  // Adaptive prefetch is looked at this often.
  static constexpr Millis kAdaptEveryMs = 20;

  // `prefetch`: per worker, 0 for adaptive (Validate refuses < 0).
  Credit(int workers, int prefetch)
      : workers_(static_cast<std::uint64_t>(workers)),
        adaptive_(prefetch == 0),
        prefetch_(prefetch > 0 ? static_cast<std::uint64_t>(prefetch) : PrefetchPolicy{}.start) {}

  bool adaptive() const { return adaptive_; }
  std::uint64_t workers() const { return workers_; }
  std::uint64_t prefetch() const { return prefetch_; }
  std::uint64_t stuck() const { return stuck_; }  // workers stuck in a timed-out call
  bool all_stuck() const { return stuck_ >= workers_; }

  // The credit with `stuck` workers stuck: prefetch per free worker, at most
  // the protocol's limit.
  std::uint64_t capacity_for(std::uint64_t stuck) const {
    std::uint64_t free = workers_ - std::min<std::uint64_t>(stuck, workers_);
    return std::min<std::uint64_t>(free * prefetch_, proto::kMaxCapacity);
  }
  std::uint64_t capacity() const { return capacity_for(stuck_); }

  void set_stuck(std::uint64_t stuck) { stuck_ = stuck; }

  // Adaptive prefetch: at most every kAdaptEveryMs, the prefetch that keeps a
  // few milliseconds of work per worker at the task time measured since the
  // last look. Returns true when it changed by more than 1.5x: the caller
  // sends it at once, in a heartbeat that carries the new capacity.
  bool adapt(Millis now, const TaskClock& clock) {
    if (!adaptive_ || now - last_adapt_ms_ < kAdaptEveryMs) return false;
    last_adapt_ms_ = now;
    std::uint64_t busy = clock.busy_ns.load(std::memory_order_relaxed);
    std::uint64_t tasks = clock.tasks.load(std::memory_order_relaxed);
    std::uint64_t d_busy = busy - seen_busy_ns_, d_tasks = tasks - seen_tasks_;
    if (d_tasks == 0) return false;  // nothing finished: keep what we have
    seen_busy_ns_ = busy;
    seen_tasks_ = tasks;
    std::uint64_t want = next_prefetch(prefetch_, d_busy, d_tasks);
    if (want == prefetch_) return false;
    ZG_LOG(kDebug, "node",
           "mean task time " + std::to_string(d_busy / d_tasks) + " ns: prefetch " +
               std::to_string(prefetch_) + " -> " + std::to_string(want));
    prefetch_ = want;
    return true;
  }

 private:
  std::uint64_t workers_;
  bool adaptive_;
  std::uint64_t prefetch_;  // per worker: fixed (--prefetch) or adapted
  std::uint64_t stuck_ = 0;
  std::uint64_t seen_busy_ns_ = 0, seen_tasks_ = 0;
  Millis last_adapt_ms_ = 0;
};

}  // namespace zgrid::node
