#include "head/node_table.hpp"

#include <algorithm>

namespace zgrid::head {

NodeState* NodeTable::find(std::uint64_t ordinal) {
  auto it = nodes_.find(ordinal);
  return it == nodes_.end() ? nullptr : &it->second;
}

NodeState* NodeTable::find_id(std::string_view node_id) {
  auto it = by_id_.find(std::string(node_id));
  return it == by_id_.end() ? nullptr : find(it->second);
}

Millis NodeTable::interval_for(std::size_t nodes) const {
  if (rate_ == 0) return heartbeat_ms_;
  // Whole multiples of --heartbeat, so that small grids keep it exactly and
  // the interval changes seldom: k = ceil(nodes / (rate * heartbeat)).
  const std::uint64_t per_interval =
      std::max<std::uint64_t>(1, rate_ * static_cast<std::uint64_t>(heartbeat_ms_) / 1000);
  const std::uint64_t k = std::max<std::uint64_t>(1, (nodes + per_interval - 1) / per_interval);
  const auto cap = static_cast<std::uint64_t>(proto::kMaxHeartbeatMs);
  return static_cast<Millis>(std::min(cap, k * static_cast<std::uint64_t>(heartbeat_ms_)));
}

void NodeTable::place(NodeState& n) {
  SeenList& l = by_seen_[n.heartbeat_ms];
  n.seen_at = l.insert(l.end(), n.ordinal);
}

void NodeTable::unplace(NodeState& n) {
  auto it = by_seen_.find(n.heartbeat_ms);
  if (it == by_seen_.end()) return;
  it->second.erase(n.seen_at);
  if (it->second.empty()) by_seen_.erase(it);
}

void NodeTable::hold_to(NodeState& n, Millis ms) {
  if (ms == n.heartbeat_ms) return;
  // Just heard from: the last of any list.
  unplace(n);
  n.heartbeat_ms = ms;
  place(n);
}

NodeState* NodeTable::heard_from(const std::string& rid, Millis now) {
  auto r = by_rid_.find(rid);
  if (r == by_rid_.end()) return nullptr;
  NodeState* n = find(r->second);
  if (n) {
    n->last_seen = now;
    SeenList& l = by_seen_[n->heartbeat_ms];
    l.splice(l.end(), l, n->seen_at);
    if (n->blocked) {
      n->blocked = false;
      touch(*n);
    }
  }
  return n;
}

NodeState* NodeTable::find_fd(int fd) {
  auto it = by_fd_.find(fd);
  return it == by_fd_.end() ? nullptr : find(it->second);
}

void NodeTable::set_fd(NodeState& n, int fd) {
  if (fd < 0) return;
  n.fd = fd;
  by_fd_[fd] = n.ordinal;
}

std::vector<std::uint64_t> NodeTable::replaced_by(const std::string& rid,
                                                  std::string_view node_id) const {
  std::vector<std::uint64_t> out;
  if (auto it = by_id_.find(std::string(node_id)); it != by_id_.end()) out.push_back(it->second);
  if (auto it = by_rid_.find(rid); it != by_rid_.end() && (out.empty() || out[0] != it->second))
    out.push_back(it->second);
  return out;
}

NodeState& NodeTable::add(const std::string& rid, const proto::Register& m, Millis now) {
  NodeState n;
  n.ordinal = ++next_ordinal_;
  n.id = m.node_id;
  n.host = m.host;
  n.rid = rid;
  n.pid = m.pid;
  n.workers = m.workers;
  n.capacity = m.capacity;
  n.services = m.services;
  n.service_info = m.service_info;
  n.last_seen = now;
  n.joined = now;
  by_rid_[rid] = n.ordinal;
  by_id_[n.id] = n.ordinal;
  workers_ += n.workers;
  interval_ = interval_for(nodes_.size() + 1);
  n.heartbeat_ms = interval_;  // what its `registered` tells it
  NodeState& placed = nodes_.emplace(n.ordinal, std::move(n)).first->second;
  place(placed);
  touch(placed);
  return placed;
}

std::optional<NodeTable::Lost> NodeTable::lose(std::uint64_t ordinal, InflightTable& inflight,
                                               Millis now) {
  auto it = nodes_.find(ordinal);
  if (it == nodes_.end()) return std::nullopt;
  index_.erase(it->second, now);
  workers_ -= it->second.workers;
  unplace(it->second);
  if (auto i = by_id_.find(it->second.id); i != by_id_.end() && i->second == ordinal)
    by_id_.erase(i);
  if (auto f = by_fd_.find(it->second.fd); f != by_fd_.end() && f->second == ordinal)
    by_fd_.erase(f);
  Lost lost{std::move(it->second), inflight.release_node(ordinal)};
  nodes_.erase(it);
  if (auto r = by_rid_.find(lost.node.rid); r != by_rid_.end() && r->second == ordinal)
    by_rid_.erase(r);
  // Shorter from now on; a node keeps the longer one it was told until its
  // next heartbeat's answer (each is held to its own, hold_to).
  interval_ = interval_for(nodes_.size());
  return lost;
}

bool NodeTable::check_quarantine(NodeState& n, double* rate, double* peer_rate) {
  if (n.quarantined) return false;
  std::uint64_t runs = n.done + n.faulted;
  if (runs < 20) return false;
  *rate = static_cast<double>(n.bad) / static_cast<double>(runs);
  if (*rate < 0.5) return false;
  std::uint64_t peer_runs = 0, peer_bad = 0;
  for (const auto& kv : nodes_) {
    if (kv.first == n.ordinal) continue;
    peer_runs += kv.second.done + kv.second.faulted;
    peer_bad += kv.second.bad;
  }
  if (peer_runs < 20) return false;  // nobody to compare with: the inputs may be to blame
  *peer_rate = static_cast<double>(peer_bad) / static_cast<double>(peer_runs);
  if (*rate < 5 * *peer_rate) return false;
  n.quarantined = true;
  index_.mark(n);
  return true;
}

std::vector<std::uint64_t> NodeTable::silent_nodes(Millis now) const {
  std::vector<std::uint64_t> out;
  for (const auto& [ms, list] : by_seen_)
    for (std::uint64_t ord : list) {
      auto it = nodes_.find(ord);
      if (it == nodes_.end() || !silent(it->second, now)) break;
      out.push_back(ord);
    }
  // Oldest first across the lists.
  std::sort(out.begin(), out.end(), [this](std::uint64_t a, std::uint64_t b) {
    return nodes_.at(a).last_seen < nodes_.at(b).last_seen;
  });
  return out;
}

bool NodeTable::verify() {
  if (!index_.verify(nodes_) || by_id_.size() != nodes_.size()) return false;
  std::uint64_t workers = 0;
  for (const auto& kv : nodes_) workers += kv.second.workers;
  if (workers != workers_) return false;
  std::size_t placed = 0;
  for (const auto& [ms, list] : by_seen_) {
    if (list.empty()) return false;
    Millis last = 0;
    for (std::uint64_t ord : list) {
      auto it = nodes_.find(ord);
      if (it == nodes_.end() || it->second.last_seen < last || it->second.heartbeat_ms != ms)
        return false;
      last = it->second.last_seen;
      ++placed;
    }
  }
  return placed == nodes_.size() && interval_ == interval_for(nodes_.size());
}

}  // namespace zgrid::head
