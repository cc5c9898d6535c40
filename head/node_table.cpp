#include "head/node_table.hpp"

namespace zgrid::head {

NodeState* NodeTable::find(std::uint64_t ordinal) {
  auto it = nodes_.find(ordinal);
  return it == nodes_.end() ? nullptr : &it->second;
}

NodeState* NodeTable::find_id(std::string_view node_id) {
  auto it = by_id_.find(std::string(node_id));
  return it == by_id_.end() ? nullptr : find(it->second);
}

NodeState* NodeTable::heard_from(const std::string& rid, Millis now) {
  auto r = by_rid_.find(rid);
  if (r == by_rid_.end()) return nullptr;
  NodeState* n = find(r->second);
  if (n) {
    n->last_seen = now;
    by_seen_.splice(by_seen_.end(), by_seen_, n->seen_at);
    if (n->blocked) {
      n->blocked = false;
      touch(*n);
    }
  }
  return n;
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
  n.seen_at = by_seen_.insert(by_seen_.end(), n.ordinal);
  NodeState& placed = nodes_.emplace(n.ordinal, std::move(n)).first->second;
  touch(placed);
  return placed;
}

std::optional<NodeTable::Lost> NodeTable::lose(std::uint64_t ordinal, InflightTable& inflight,
                                               Millis now) {
  auto it = nodes_.find(ordinal);
  if (it == nodes_.end()) return std::nullopt;
  index_.erase(it->second, now);
  workers_ -= it->second.workers;
  by_seen_.erase(it->second.seen_at);
  if (auto i = by_id_.find(it->second.id); i != by_id_.end() && i->second == ordinal)
    by_id_.erase(i);
  Lost lost{std::move(it->second), inflight.release_node(ordinal)};
  nodes_.erase(it);
  if (auto r = by_rid_.find(lost.node.rid); r != by_rid_.end() && r->second == ordinal)
    by_rid_.erase(r);
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
  for (std::uint64_t ord : by_seen_) {
    auto it = nodes_.find(ord);
    if (it == nodes_.end() || !silent(it->second, now)) break;
    out.push_back(ord);
  }
  return out;
}

bool NodeTable::verify() {
  if (!index_.verify(nodes_) || by_seen_.size() != nodes_.size() || by_id_.size() != nodes_.size())
    return false;
  std::uint64_t workers = 0;
  for (const auto& kv : nodes_) workers += kv.second.workers;
  if (workers != workers_) return false;
  Millis last = 0;
  for (std::uint64_t ord : by_seen_) {
    auto it = nodes_.find(ord);
    if (it == nodes_.end() || it->second.last_seen < last) return false;
    last = it->second.last_seen;
  }
  return true;
}

}  // namespace zgrid::head
