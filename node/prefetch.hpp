// Adaptive prefetch as a pure function: the credit per worker a node asks
// for, from the task time its workers measured.
//
// Ask for about `queue_time_ns` of queued work per worker at the measured
// mean task time: enough that the head's refill (a round trip, and a results
// message waits a little) never leaves a worker idle; little enough that a
// node never sits on much work another node could run. Micro-requests get
// deep queues (few, large messages), long ones shallow. A change within 1.5x
// is not worth a heartbeat, so the current value stays.
#pragma once

#include <algorithm>
#include <cstdint>

namespace zgrid::node {

struct PrefetchPolicy {
  // Until a node has measured anything it takes the old fixed default
  // (quarantine compares a node with its peers after 20 runs each, and a
  // healthy node must reach that quickly).
  std::uint64_t start = 64;
  std::uint64_t min = 4, max = 4096;
  double queue_time_ns = 5e6;
};

// The prefetch to use after `tasks` tasks took `busy_ns` of worker time since
// the last look; `current` when nothing finished or the change is within 1.5x.
inline std::uint64_t next_prefetch(std::uint64_t current, std::uint64_t busy_ns,
                                   std::uint64_t tasks, const PrefetchPolicy& p = {}) {
  if (tasks == 0) return current;  // nothing finished: keep what we have
  double mean_ns = std::max(1.0, static_cast<double>(busy_ns) / static_cast<double>(tasks));
  double ideal = p.queue_time_ns / mean_ns;
  std::uint64_t want = ideal >= static_cast<double>(p.max)
                           ? p.max
                           : std::clamp(static_cast<std::uint64_t>(ideal), p.min, p.max);
  if (want * 2 < current * 3 && want * 3 > current * 2) return current;  // within 1.5x
  return want;
}

}  // namespace zgrid::node
