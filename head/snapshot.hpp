// What the outside may see of the head, as an immutable snapshot
// (docs/architecture.md, "Watching the grid"). The reactor builds one per
// tick while someone has looked in the last seconds and publishes it with
// one pointer swap; the HTTP thread (head/http.hpp) renders
// /metrics and the JSON API from the latest snapshot alone. Nothing outside
// the reactor reads or locks the reactor's state.
//
// Thread safety: SnapshotBox is safe from any thread. A Snapshot is never
// changed once published. SnapshotPublisher is the reactor's.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "head/journal_store.hpp"
#include "head/observe.hpp"
#include "head/status_rows.hpp"

namespace zgrid::head {

struct Snapshot {
  std::uint64_t seq = 0;        // 1, 2, … per publication
  std::int64_t wall_ms = 0;     // Unix milliseconds when built
  Millis steady_ms = 0;         // the reactor's clock when built (for readers' freshness)
  std::int64_t start_time = 0;  // Unix seconds the head started
  // What building snapshots has cost the reactor so far (wall time on its
  // thread), for zgrid_snapshot_build_seconds.
  std::uint64_t builds = 0;
  double build_seconds_total = 0;

  proto::GridStatus grid;
  std::vector<proto::NodeStatus> nodes;        // by node id
  std::vector<proto::SessionStatus> sessions;  // unfinished first, then newest
  std::map<std::string, ServiceStats> services;
  std::map<std::string, std::uint64_t> nodes_lost;  // by reason, since start
  std::uint64_t nodes_lost_now = 0;                 // lost and not back
  std::uint64_t sessions_created = 0;
  std::uint64_t bad_client_messages = 0, bad_node_messages = 0;
  std::uint64_t refused_client_handshakes = 0, refused_node_handshakes = 0;
  bool journal_enabled = false;
  JournalStats journal;
  std::uint64_t journal_queued_bytes = 0;
  std::shared_ptr<const std::vector<Event>> events;  // oldest first; shared between snapshots
  std::vector<std::pair<std::int64_t, double>> throughput;  // (Unix s, answers/s), 5 minutes
};

class SnapshotBox {
 public:
  SnapshotBox() : last_wanted_ms_(0) {}
  // One pointer swap each way, under a lock held only for that (a reference
  // count increment): the reactor never waits on a reader's work.
  void publish(std::shared_ptr<const Snapshot> s) {
    std::lock_guard<std::mutex> lock(mu_);
    current_.swap(s);
  }  // the old snapshot is released here, outside the lock
  std::shared_ptr<const Snapshot> latest() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }
  // A reader says it looks (steady milliseconds); the reactor keeps building
  // snapshots while someone looked within the last kKeepBuildingMs.
  void want(Millis now) { last_wanted_ms_.store(now, std::memory_order_relaxed); }
  Millis last_wanted() const { return last_wanted_ms_.load(std::memory_order_relaxed); }
  // The latest snapshot no older than `max_age_ms`, waiting up to
  // `wait_ms` for the reactor to build one (it builds on its next tick).
  std::shared_ptr<const Snapshot> fresh(const Clock& clock, Millis max_age_ms, Millis wait_ms);
  static constexpr Millis kKeepBuildingMs = 30'000;

 private:
  // Not std::atomic<std::shared_ptr>: libstdc++ 12's lock bit is invisible
  // to ThreadSanitizer, and this lock is as cheap.
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> current_;
  std::atomic<Millis> last_wanted_ms_;
};

// The reactor's side: builds and publishes.
class SnapshotPublisher {
 public:
  explicit SnapshotPublisher(std::shared_ptr<SnapshotBox> box) : box_(std::move(box)) {}
  // Builds and publishes a snapshot when someone looked lately (or `force`),
  // keeping the reactor's share of time spent on snapshots under 5%.
  void tick(const StatusSources& src, const Observed& observed, Millis now, bool force = false);
  // Builds one (tests and benchmarks call it directly).
  std::shared_ptr<Snapshot> build(const StatusSources& src, const Observed& observed, Millis now);
  const std::shared_ptr<SnapshotBox>& box() const { return box_; }

 private:
  std::shared_ptr<SnapshotBox> box_;
  std::uint64_t seq_ = 0;
  std::uint64_t builds_ = 0;
  double build_seconds_ = 0;
  Millis last_build_at_ = 0, last_build_ms_ = 0;  // when the last one was built, and its cost
  std::int64_t start_time_ = wall_seconds();
  std::uint64_t events_seq_ = 0;  // the ring's next_seq when `events_` was copied
  std::shared_ptr<const std::vector<Event>> events_;
};

}  // namespace zgrid::head
