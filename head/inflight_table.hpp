// Every task on a node, by task id: what was sent where, and when it is
// overdue. The reactor adds a batch per `tasks` message and takes each task
// out exactly once — finished (release), lost with its node (release_node) or
// overdue (release_overdue) — then settles the counters it keeps elsewhere.
//
// A per-node index of the batches sent (losing a node visits only its own
// tasks) and a heap of backstop deadlines (no per-tick walk of the map).
// Entries come from a pool: one is made and erased per request.
//
// Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <cstdint>
#include <list>
#include <memory_resource>
#include <optional>
#include <queue>
#include <unordered_map>
#include <utility>
#include <vector>

#include "head/state.hpp"

namespace zgrid::head {

class InflightTable {
 public:
  using Task = std::pair<std::uint64_t, InFlight>;  // task id, what it carries

  // Tasks [first, first + count) go to `node` in one message, given up as
  // lost at `backstop` (0: never). add() then records each of them.
  void add_batch(std::uint64_t first, std::uint64_t count, std::uint64_t node, Millis backstop);
  void add(std::uint64_t task, InFlight f);

  // A result: the task, if it is in flight on `node` (a late report, or one
  // from another node, gets nullopt).
  std::optional<InFlight> release(std::uint64_t task, std::uint64_t node);
  // The node is gone: every task it held, in task order.
  std::vector<Task> release_node(std::uint64_t node);
  // Tasks whose backstop is at or before `now`, in deadline then task order.
  std::vector<Task> release_overdue(Millis now);

  std::size_t size() const { return tasks_.size(); }
  std::size_t on_node(std::uint64_t node) const;

 private:
  struct Batch {
    std::uint64_t first = 0, count = 0, live = 0, node = 0;
    std::list<Batch>::iterator self;
  };
  struct Entry {
    InFlight f;
    Batch* batch = nullptr;
  };
  struct Backstop {
    Millis deadline;
    std::uint64_t first, count;
    bool operator>(const Backstop& o) const { return deadline > o.deadline; }
  };
  using TaskMap = std::pmr::unordered_map<std::uint64_t, Entry>;
  // Drops the entry, and its batch once that has no task left.
  InFlight take(TaskMap::iterator it);

  // Declared first: the map's nodes come from it, so it must outlive them.
  std::pmr::unsynchronized_pool_resource pool_;
  TaskMap tasks_{&pool_};
  std::unordered_map<std::uint64_t, std::list<Batch>> by_node_;
  Batch* last_ = nullptr;  // the batch add() records into
  std::priority_queue<Backstop, std::vector<Backstop>, std::greater<Backstop>> backstops_;
};

}  // namespace zgrid::head
