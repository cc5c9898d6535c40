#include "head/node_table.hpp"

namespace zgrid::head {

std::uint64_t NodeTable::workers() const {
  std::uint64_t w = 0;
  for (const auto& kv : nodes_) w += kv.second.workers;
  return w;
}

NodeState* NodeTable::find(std::uint64_t ordinal) {
  auto it = nodes_.find(ordinal);
  return it == nodes_.end() ? nullptr : &it->second;
}

NodeState* NodeTable::find_id(std::string_view node_id) {
  for (auto& kv : nodes_)
    if (kv.second.id == node_id) return &kv.second;
  return nullptr;
}

NodeState* NodeTable::heard_from(const std::string& rid, Millis now) {
  auto r = by_rid_.find(rid);
  if (r == by_rid_.end()) return nullptr;
  NodeState* n = find(r->second);
  if (n) {
    n->last_seen = now;
    n->blocked = false;
  }
  return n;
}

std::vector<std::uint64_t> NodeTable::replaced_by(const std::string& rid,
                                                  std::string_view node_id) const {
  std::vector<std::uint64_t> out;
  for (const auto& kv : nodes_)
    if (kv.second.id == node_id) {
      out.push_back(kv.first);
      break;
    }
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
  return nodes_.emplace(n.ordinal, std::move(n)).first->second;
}

std::optional<NodeTable::Lost> NodeTable::lose(std::uint64_t ordinal, InflightTable& inflight) {
  auto it = nodes_.find(ordinal);
  if (it == nodes_.end()) return std::nullopt;
  Lost lost{std::move(it->second), inflight.release_node(ordinal)};
  nodes_.erase(it);
  if (auto r = by_rid_.find(lost.node.rid); r != by_rid_.end() && r->second == ordinal)
    by_rid_.erase(r);
  return lost;
}

bool NodeTable::check_quarantine(NodeState& n, double* rate, double* peer_rate) const {
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
  return true;
}

}  // namespace zgrid::head
