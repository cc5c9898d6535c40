#include "head/snapshot.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace zgrid::head {

std::shared_ptr<const Snapshot> SnapshotBox::fresh(const Clock& clock, Millis max_age_ms,
                                                   Millis wait_ms) {
  Millis start = clock.now_ms();
  want(start);
  auto s = latest();
  // The reactor builds on its ticks (every 250 ms at most) while someone
  // looks; after a quiet spell the first reader waits for one. The wait is
  // bounded in real time (the head's clock may be a test's, standing still).
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while ((!s || start - s->steady_ms > max_age_ms) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    s = latest();
  }
  return s;
}

void SnapshotPublisher::tick(const StatusSources& src, const Observed& observed, Millis now,
                             bool force) {
  if (!force && now - box_->last_wanted() > SnapshotBox::kKeepBuildingMs) return;
  // At most 1/20 of the reactor's time: a snapshot that took 15 ms (10,000
  // sessions) is rebuilt every 300 ms, not every tick.
  if (!force && now - last_build_at_ < 20 * last_build_ms_) return;
  double before = build_seconds_;
  box_->publish(build(src, observed, now));
  last_build_at_ = now;
  last_build_ms_ = static_cast<Millis>(1000.0 * (build_seconds_ - before));
}

std::shared_ptr<Snapshot> SnapshotPublisher::build(const StatusSources& src,
                                                   const Observed& observed, Millis now) {
  auto t0 = std::chrono::steady_clock::now();
  auto s = std::make_shared<Snapshot>();
  s->seq = ++seq_;
  s->wall_ms = wall_millis();
  s->steady_ms = now;
  s->start_time = start_time_;
  s->nodes.reserve(src.nodes.size());
  for (const auto& kv : src.nodes.all()) s->nodes.push_back(node_row(src, kv.second));
  std::sort(s->nodes.begin(), s->nodes.end(),
            [](const auto& a, const auto& b) { return a.node_id < b.node_id; });
  // Unfinished first, then newest: sorted as (complete, ordinal) pairs, so
  // that 10,000 rows are built once and never moved.
  std::vector<std::pair<std::uint64_t, const Session*>> order;
  order.reserve(src.sessions.size());
  for (const auto& kv : src.sessions.all()) {
    const Session& ss = *kv.second;
    std::uint64_t complete = SessionTable::complete(ss) ? 1 : 0;
    order.emplace_back((complete << 63) | (~ss.ordinal & (UINT64_MAX >> 1)), &ss);
  }
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  GridSums sums;
  s->sessions.reserve(order.size());
  for (const auto& [key, ss] : order) {
    s->sessions.push_back(session_row(src, *ss));
    sums.queued += s->sessions.back().queued;
    sums.running += ss->running();
  }
  s->grid = grid_row(src, &sums);
  for (const auto& [name, st] : observed.services) s->services.emplace(name, st);
  s->nodes_lost = observed.nodes_lost;
  s->nodes_lost_now = observed.lost_at.size();
  s->sessions_created = observed.sessions_created;
  s->bad_client_messages = observed.bad_client_messages;
  s->bad_node_messages = observed.bad_node_messages;
  s->refused_client_handshakes = src.security.refused_clients();
  s->refused_node_handshakes = src.security.refused_nodes();
  if (src.durable.enabled()) {
    s->journal_enabled = true;
    s->journal = src.durable.journal().stats();
    s->journal_queued_bytes = src.durable.journal().backlog_bytes();
  }
  // Events change rarely: share the copy until the ring moves on.
  if (!events_ || events_seq_ != observed.events.next_seq()) {
    events_ = std::make_shared<const std::vector<Event>>(observed.events.events().begin(),
                                                         observed.events.events().end());
    events_seq_ = observed.events.next_seq();
  }
  s->events = events_;
  s->throughput.assign(observed.throughput.begin(), observed.throughput.end());
  ++builds_;
  build_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s->builds = builds_;
  s->build_seconds_total = build_seconds_;
  return s;
}

}  // namespace zgrid::head
