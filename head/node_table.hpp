// The registered nodes: by ordinal (the distributor's view), by connection
// (routing id) and by node id; registration, loss, liveness and quarantine.
// Sized for 10,000 nodes: lookups are hashed, the nodes that can take work
// are indexed (head/node_index.hpp), and liveness keeps the nodes in the
// order they were last heard from, so a tick looks only at the silent ones.
//
// Who changes a field the node choice reads (inflight, capacity, blocked,
// quarantined, draining) calls touch() after; a test head checks that every
// tick (verify()).
//
// Losing a node returns the tasks it held (orphans) for the reactor to
// re-queue: the table knows nodes, not sessions.
//
// Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/protocol.hpp"
#include "head/inflight_table.hpp"
#include "head/node_index.hpp"
#include "head/state.hpp"

namespace zgrid::head {

class NodeTable {
 public:
  // A node silent for longer than `misses` heartbeat intervals is dead.
  NodeTable(Millis heartbeat_ms, int misses) : heartbeat_ms_(heartbeat_ms), misses_(misses) {}

  const std::map<std::uint64_t, NodeState>& all() const { return nodes_; }
  // The nodes that can take work, for the distributor.
  NodeIndex& index() { return index_; }
  // `n`'s load or flags changed.
  void touch(const NodeState& n) { index_.mark(n); }
  // Test heads: the index and the liveness order agree with the nodes.
  bool verify();
  std::size_t size() const { return nodes_.size(); }
  std::uint64_t workers() const { return workers_; }  // kept as nodes come and go
  NodeState* find(std::uint64_t ordinal);
  NodeState* find_id(std::string_view node_id);
  // The node on connection `rid`, if registered: any message from it is a
  // sign of life, and a blocked node that speaks can take work again.
  NodeState* heard_from(const std::string& rid, Millis now);

  // Registrations a new one from `rid` replaces: the same node id (a node
  // restarted), or the same connection. Lose them before add().
  std::vector<std::uint64_t> replaced_by(const std::string& rid, std::string_view node_id) const;
  NodeState& add(const std::string& rid, const proto::Register& m, Millis now);

  struct Lost {
    NodeState node;
    std::vector<InflightTable::Task> orphans;  // its tasks, in task order
  };
  // Removes the node (at `now`) and takes its tasks out of `inflight`.
  std::optional<Lost> lose(std::uint64_t ordinal, InflightTable& inflight, Millis now);

  bool silent(const NodeState& n, Millis now) const {
    return now - n.last_seen > heartbeat_ms_ * misses_;
  }
  // The nodes silent at `now` (dead), oldest first: O(dead), not O(nodes).
  std::vector<std::uint64_t> silent_nodes(Millis now) const;

  // A node whose requests fault far more often than its peers' is
  // quarantined (no new work; its in-flight work finishes). True when this
  // call quarantined it. Needs 20 runs of it and of its peers, a bad rate of
  // at least 1/2 and 5 times its peers'.
  bool check_quarantine(NodeState& n, double* rate, double* peer_rate);

 private:
  const Millis heartbeat_ms_;
  const int misses_;
  std::map<std::uint64_t, NodeState> nodes_;  // stable addresses: the index holds pointers
  std::unordered_map<std::string, std::uint64_t> by_rid_;
  std::unordered_map<std::string, std::uint64_t> by_id_;  // node id -> ordinal
  // Ordinals, least recently heard from first; each node holds its place.
  std::list<std::uint64_t> by_seen_;
  NodeIndex index_;
  std::uint64_t next_ordinal_ = 0;
  std::uint64_t workers_ = 0;
};

}  // namespace zgrid::head
