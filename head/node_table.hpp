// The registered nodes: by ordinal (the distributor's view), by connection
// (routing id) and by node id; registration, loss, liveness and quarantine.
// Sized for 10,000 nodes: lookups are hashed, the nodes that can take work
// are indexed (head/node_index.hpp), and liveness keeps the nodes in the
// order they were last heard from, so a tick looks only at the silent ones.
//
// Heartbeats scale with the nodes (docs/protocol.md, "Nodes"): the interval
// the head tells its nodes is --heartbeat, or longer so that their
// heartbeats come at most `rate` a second — nodes / rate seconds, rounded up
// to a whole number of --heartbeat. Each node is held to the interval it
// uses (it says so in its heartbeats) and dead after `misses` of them
// without a message; the liveness order is one list per interval, so the
// tick still looks only at the silent ones.
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
  // A node silent for longer than `misses` of its heartbeat intervals is
  // dead. `rate`: the nodes' heartbeats a second the interval is scaled to
  // (0: never scaled).
  NodeTable(Millis heartbeat_ms, int misses, std::uint64_t rate = 0)
      : heartbeat_ms_(heartbeat_ms), misses_(misses), rate_(rate), interval_(heartbeat_ms) {}

  // The heartbeat interval the head tells its nodes now (in `registered` and
  // in its answer to each heartbeat).
  Millis interval() const { return interval_; }
  // The interval for `nodes` registered nodes.
  Millis interval_for(std::size_t nodes) const;
  // `n`, just heard from, is held to `ms` from now on.
  void hold_to(NodeState& n, Millis ms);

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
  // The node registered on the connection with descriptor `fd`, if any.
  NodeState* find_fd(int fd);
  void set_fd(NodeState& n, int fd);
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
    return now - n.last_seen > n.heartbeat_ms * misses_;
  }
  // The nodes silent at `now` (dead), oldest first: O(dead), not O(nodes).
  std::vector<std::uint64_t> silent_nodes(Millis now) const;

  // A node whose requests fault far more often than its peers' is
  // quarantined (no new work; its in-flight work finishes). True when this
  // call quarantined it. Needs 20 runs of it and of its peers, a bad rate of
  // at least 1/2 and 5 times its peers'.
  bool check_quarantine(NodeState& n, double* rate, double* peer_rate);

 private:
  using SeenList = std::list<std::uint64_t>;
  void place(NodeState& n);  // at the end of its interval's list
  void unplace(NodeState& n);

  const Millis heartbeat_ms_;
  const int misses_;
  const std::uint64_t rate_;
  Millis interval_;
  std::map<std::uint64_t, NodeState> nodes_;  // stable addresses: the index holds pointers
  std::unordered_map<std::string, std::uint64_t> by_rid_;
  std::unordered_map<std::string, std::uint64_t> by_id_;  // node id -> ordinal
  std::unordered_map<int, std::uint64_t> by_fd_;          // the newest on each descriptor
  // Per heartbeat interval a node is held to: its ordinals, least recently
  // heard from first; each node holds its place. Few lists (multiples of
  // --heartbeat); an empty one is removed.
  std::map<Millis, SeenList> by_seen_;
  NodeIndex index_;
  std::uint64_t next_ordinal_ = 0;
  std::uint64_t workers_ = 0;
};

}  // namespace zgrid::head
