// The nodes that can take work now, by what they offer and how loaded they
// are: the distributor's node choice touches only these, so a dispatch costs
// O(groups + log nodes), not a walk over every registered node.
//
// Nodes are grouped by what they registered (their services, and which of
// them take stateful sessions); a cluster has a handful of groups however
// many nodes it has. In each group, the nodes that may get work (not
// blocked, quarantined or draining, with free credit) are kept ordered by
// load (in flight / capacity), then ordinal: the least-loaded node of a
// service is the best first element among the groups that match it, which is
// the node the old walk in ordinal order chose.
//
// Whoever changes a field the choice reads (inflight, capacity, blocked,
// quarantined, draining) calls mark(); the node is re-placed at the next
// pick, once however many tasks it settled meanwhile. Nodes are held by
// pointer: the owner keeps them at stable addresses (a std::map) and calls
// erase() before one goes.
//
// Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "head/state.hpp"

namespace zgrid::head {

class NodeIndex {
 public:
  // A new node, or one whose load or flags changed.
  void mark(const NodeState& n);
  // `n` goes (lost, left or replaced) at `now`.
  void erase(const NodeState& n, Millis now);

  // The least-loaded node that can take work for `service` now (idle only,
  // when `need_idle`; offering stateful sessions of it, when
  // `need_sessions`), or nullptr.
  const NodeState* pick(std::string_view service, bool need_idle, bool need_sessions);

  // Test heads: whether every node of `nodes` is placed as its state says.
  template <typename Map>
  bool verify(const Map& nodes);

  std::size_t groups() const { return groups_.size(); }

  // Who offers `service` (with sessions, when `sessions`), for the status
  // field `paused` (head/status_rows.cpp): O(groups) once matching() has
  // cached the service's groups, so 10,000 status rows cost no more.
  static constexpr Millis kNever = std::numeric_limits<Millis>::min();
  struct Offer {
    std::size_t nodes = 0;        // registered nodes offering it (busy or not)
    std::size_t quarantined = 0;  // of them, quarantined
    std::size_t draining = 0;     // of them, draining and not quarantined
    // When the last node offering it went (latest over its groups; counts
    // when nodes == 0); kNever: none registered in this head's life.
    Millis vacated_at = kNever;
  };
  Offer offer(std::string_view service, bool sessions);
  // What the registered nodes offer, for a person: the first 8 sorted
  // (name@version, each once), then "and N more"; "nothing" when none.
  // Built again only after a group gains its first node or loses its last.
  const std::string& offered_list();

 private:
  struct Key {
    std::uint64_t inflight = 0, capacity = 0, ordinal = 0;
    const NodeState* node = nullptr;
  };
  struct ByLoad {
    bool operator()(const Key& a, const Key& b) const {
      // inflight/capacity compared exactly (both below 2^20 or so: no overflow)
      unsigned __int128 l = static_cast<unsigned __int128>(a.inflight) * b.capacity;
      unsigned __int128 r = static_cast<unsigned __int128>(b.inflight) * a.capacity;
      return l != r ? l < r : a.ordinal < b.ordinal;
    }
  };
  struct Group {
    std::vector<std::string> services;          // as registered (name@version)
    std::vector<std::string> stateful;          // those of them that take sessions
    std::set<Key, ByLoad> ready;                // may get work now
    std::size_t members = 0;                    // registered nodes in the group
    std::size_t quarantined = 0, draining = 0;  // of the members (Place::idle)
    Millis vacated_at = kNever;                 // when members last fell to 0
  };
  // Why a node takes no new work whatever its load, counted in its group.
  enum class Idle : std::uint8_t { kNo, kDraining, kQuarantined };
  struct Place {
    std::size_t group = 0;
    bool in_ready = false, dirty = false;
    Idle idle = Idle::kNo;
    Key key;
  };

  static bool eligible(const NodeState& n) {
    return !n.blocked && !n.quarantined && !n.draining && n.free() > 0;
  }
  static Idle idle_of(const NodeState& n) {
    return n.quarantined ? Idle::kQuarantined : n.draining ? Idle::kDraining : Idle::kNo;
  }
  void count_idle(std::size_t group, Idle idle, int delta);
  std::size_t group_of(const NodeState& n);
  void refresh();
  // The groups offering `service` (with sessions, when `sessions`), cached.
  const std::vector<std::size_t>& matching(std::string_view service, bool sessions);

  std::vector<Group> groups_;
  std::unordered_map<std::string, std::size_t> group_by_signature_;
  std::unordered_map<std::uint64_t, Place> places_;  // by ordinal
  std::vector<std::uint64_t> dirty_;
  std::unordered_map<std::string, std::vector<std::size_t>> match_cache_[2];
  std::string offered_list_;
  bool offered_stale_ = true;  // a group gained its first node or lost its last
};

template <typename Map>
bool NodeIndex::verify(const Map& nodes) {
  refresh();
  std::size_t ready = 0;
  for (const auto& kv : nodes) {
    const NodeState& n = kv.second;
    auto it = places_.find(n.ordinal);
    if (it == places_.end()) return false;
    const Place& p = it->second;
    if (p.in_ready != eligible(n) || p.idle != idle_of(n)) return false;
    if (p.in_ready && (p.key.inflight != n.inflight || p.key.capacity != n.capacity ||
                       p.key.node != &n || groups_[p.group].ready.count(p.key) != 1))
      return false;
    ready += p.in_ready;
  }
  std::vector<std::size_t> quarantined(groups_.size()), draining(groups_.size());
  for (const auto& kv : places_) {
    quarantined[kv.second.group] += kv.second.idle == Idle::kQuarantined;
    draining[kv.second.group] += kv.second.idle == Idle::kDraining;
  }
  std::size_t in_sets = 0, members = 0;
  for (std::size_t i = 0; i < groups_.size(); ++i) {
    const Group& g = groups_[i];
    in_sets += g.ready.size(), members += g.members;
    if (g.quarantined != quarantined[i] || g.draining != draining[i]) return false;
  }
  return places_.size() == nodes.size() && in_sets == ready && members == places_.size();
}

}  // namespace zgrid::head
