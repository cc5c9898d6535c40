// What the reactor counts for the outside to see (docs/operations.md,
// "Watching the grid"): requests per service and outcome, latencies, bad
// messages per port, lost nodes, the throughput of the last five minutes and
// the recent events. Plain integers kept by the reactor thread alone; the
// snapshot (head/snapshot.hpp) copies them each tick for other threads.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "common/prometheus.hpp"

namespace zgrid::head {

// The fault-code label of /metrics for a fault code: the codes the grid
// itself answers with (docs/protocol.md, "Faults") are their own label; any
// other code — a service's own, whatever bytes it holds — is "other". The
// response keeps the raw code; only the counters fold it.
std::string_view fault_label(std::string_view code);
// Every label fault_label can return, in the order /metrics lists them.
const std::vector<std::string_view>& fault_labels();

// Per service, since the head started. Counters only grow.
struct ServiceStats {
  std::uint64_t accepted = 0;  // requests accepted from clients
  std::uint64_t done = 0;      // answered without a fault
  std::uint64_t retried = 0;   // put back in the queue to run again
  std::uint64_t removed = 0;   // removed with their client by the idle timeout
  // By fault label (fault_label): at most fault_labels().size() entries.
  std::map<std::string, std::uint64_t, std::less<>> faulted;
  prom::Histogram latency{prom::latency_buckets()};  // dispatch to answer, seconds
  void count_fault(std::string_view code, std::uint64_t n = 1);
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
  // By the session's service string, bounded whatever clients send: a
  // service some node registered gets its own entry (up to
  // kMaxOfferedServices of them), one no node offers only while fewer than
  // kMaxUnofferedServices such entries exist (a session may come before its
  // nodes); the rest, and any name that is not a valid name, share
  // kOtherService. So /metrics has a bounded number of series.
  std::unordered_map<std::string, ServiceStats> services;
  static constexpr std::size_t kMaxOfferedServices = 100;
  static constexpr std::size_t kMaxUnofferedServices = 20;
  static constexpr std::string_view kOtherService = "(other)";  // never a service name
  // Notes the services a registering node offers ("name@version" or "name").
  void offered(const std::vector<std::string>& services);
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

  // The counters of a service string (its entry, or kOtherService's).
  ServiceStats& service(const std::string& name);
  void sample_throughput(std::int64_t unix_s, double rate) {
    throughput.emplace_back(unix_s, rate);
    while (throughput.size() > kThroughputSamples) throughput.pop_front();
  }

 private:
  std::set<std::string, std::less<>> offered_;  // service names (no version) nodes registered
  static constexpr std::size_t kMaxOffered = 10'000;
  std::size_t offered_entries_ = 0, unoffered_entries_ = 0;
};

}  // namespace zgrid::head
