// What every room of the head shares: the options, the reactor's reading of
// the clock, the grid-wide counters shown by `zgrid status`, and the test
// crash point. Owned by the reactor (head/head.cpp), which sets `now` once
// per poll round; the rooms hold a reference. Not thread-safe: the reactor
// thread alone uses it.
#pragma once

#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "head/observe.hpp"
#include "head/options.hpp"
#include "head/state.hpp"

namespace zgrid::head {

// Test crash points (docs/architecture.md, "Recovery"): with the hook
// crash_point "NAME:N" the head SIGKILLs itself the N-th time it reaches NAME.
// The same with SIGSTOP is a stop point (stop_point: the test sends SIGCONT).
class CrashPoint {
 public:
  explicit CrashPoint(const std::string& spec, int sig = SIGKILL);
  void reach(const char* point);
  // Hands the count of `point` to someone else (the journal thread counts
  // its syncs itself): the count, or -1 when the crash point is another.
  long take(const char* point);

 private:
  std::string name_;
  long count_ = -1;
  int sig_ = SIGKILL;
};

// Grid-wide counters (docs/protocol.md, status).
struct Counters {
  std::uint64_t done = 0, faulted = 0;  // requests answered since the head started
  std::uint64_t bad_messages = 0;       // undecodable or out-of-protocol messages
  // Journal read problems (docs/operations.md, "Journal read errors").
  std::uint64_t journal_read_errors = 0, journal_corrupt_records = 0, data_loss = 0;
  double rate = 0;  // requests answered per second, over the last second
};

struct HeadContext {
  explicit HeadContext(const HeadOptions& options)
      : o(options), crash(options.hooks.crash_point), stop(options.hooks.stop_point, SIGSTOP) {}
  const HeadOptions o;
  Millis now = 0;            // the clock as of this poll round
  Millis serving_since = 0;  // when the reactor began to serve (nodes could register)
  std::string instance;      // random per start: clients and nodes notice a restart
  // Failover (head/lease.hpp): the lease epoch this head holds, or (a
  // standby) the newest it saw (0: no --data-dir, no lease); "active",
  // "standby" or "single"; the active head's client endpoint; 1 when this
  // head took over another's unreleased lease.
  std::uint64_t epoch = 0;
  std::string role = "single";
  std::string active_frontend;
  std::uint64_t takeovers = 0;
  std::string dashboard_url;  // the HTTP listener's, once bound; empty when off
  Counters counters;
  CrashPoint crash;
  CrashPoint stop;  // reached with the name of each client message type, before it is handled
  // Events the rooms report for the reactor to act on after the round:
  // sessions whose parked fetches may have something to say now.
  std::vector<std::string> fetches_to_wake;
  // ...and stateful instances no longer needed: (node ordinal, instance key),
  // each sent an EndSession.
  std::vector<std::pair<std::uint64_t, std::string>> instance_ends;
  // Per-service counters, events and throughput for the snapshot
  // (head/snapshot.hpp): the rooms add to them as things happen.
  Observed observed;
  ServiceStats& stats_of(Session& s) {
    if (!s.stats) s.stats = &observed.service(s.service);  // map nodes are stable
    return *s.stats;
  }
  // Records an event for the dashboard and /api/events.
  void event(std::string_view kind, std::string_view subject, std::string message) {
    observed.events.add(kind, subject, std::move(message));
  }
};

}  // namespace zgrid::head
