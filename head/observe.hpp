// What the reactor counts for the outside to see (docs/operations.md,
// "Watching the grid"): requests per service and outcome, latencies, bad
// messages per port, lost nodes, the throughput of the last five minutes and
// the recent events. Plain integers kept by the reactor thread alone; the
// snapshot (head/snapshot.hpp) copies them each tick for other threads.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "common/prometheus.hpp"

namespace zgrid::head {

// Per service, since the head started. Counters only grow.
struct ServiceStats {
  std::uint64_t accepted = 0;  // requests accepted from clients
  std::uint64_t done = 0;      // answered without a fault
  std::uint64_t retried = 0;   // put back in the queue to run again
  std::uint64_t removed = 0;   // removed with their client by the idle timeout
  std::map<std::string, std::uint64_t, std::less<>> faulted;  // by fault code
  prom::Histogram latency{prom::latency_buckets()};           // dispatch to answer, seconds
};

// What happened, for the dashboard and /api/events. `kind` is one of the
// names in docs/protocol.md ("Events").
struct Event {
  std::uint64_t seq = 0;
  std::int64_t time_ms = 0;  // Unix milliseconds
  std::string kind, subject, message;
};

class EventRing {
 public:
  static constexpr std::size_t kCapacity = 1000;
  void add(std::string_view kind, std::string_view subject, std::string message);
  const std::deque<Event>& events() const { return events_; }
  std::uint64_t next_seq() const { return next_seq_; }

 private:
  std::deque<Event> events_;
  std::uint64_t next_seq_ = 1;
};

struct Observed {
  std::unordered_map<std::string, ServiceStats> services;  // by the session's service string
  std::uint64_t bad_client_messages = 0, bad_node_messages = 0;
  std::map<std::string, std::uint64_t> nodes_lost;  // by reason, since start
  // Nodes lost (not by `bye`) in the last 15 minutes and not registered
  // again under their id since: the "lost" state of the nodes gauge (a node
  // restarted without a fixed --node-id comes back under a new id, so the
  // window, not the return, ends most entries). Bounded: past 10,000 the
  // oldest is forgotten.
  std::map<std::string, Millis> lost_at;  // node id -> when lost (the reactor's clock)
  static constexpr std::size_t kMaxLost = 10'000;
  static constexpr Millis kLostWindowMs = 15 * 60 * 1000;
  void node_lost(const std::string& id, Millis now);
  void node_back(const std::string& id) { lost_at.erase(id); }
  void prune_lost(Millis now);
  std::uint64_t sessions_created = 0;
  EventRing events;
  // Answers per second, one sample a second, the last five minutes.
  std::deque<std::pair<std::int64_t, double>> throughput;  // (Unix seconds, rate)
  static constexpr std::size_t kThroughputSamples = 300;

  ServiceStats& service(const std::string& name) { return services[name]; }
  void sample_throughput(std::int64_t unix_s, double rate) {
    throughput.emplace_back(unix_s, rate);
    while (throughput.size() > kThroughputSamples) throughput.pop_front();
  }
};

}  // namespace zgrid::head
