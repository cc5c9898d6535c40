// Every task on a node, by task id: what was sent where, and when it is
// overdue. The reactor adds a record per `tasks` message and takes each task
// out exactly once — finished (release), lost with its node (release_node) or
// overdue (release_overdue) — then settles the counters it keeps elsewhere.
//
// One record per task message, not per task: the message's task ids are
// consecutive, so a record holds its first id, what its tasks share (session,
// node, start, backstop, retries), their requests in task order and a bitmap
// of the tasks already taken out. A record leaves when its last task does.
// A result finds its record from the last one used, else among the first
// records of its node (results come back about in the order sent), else by
// an ordered lookup (records are ordered by first task id; ids are never
// reused). A per-node list of records (losing a node visits only its own)
// and a heap of backstop deadlines (no per-tick walk).
//
// Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <cstdint>
#include <map>
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
  // lost at `backstop` (0: never). add() then records each of them, in task
  // order: every task of a message shares its session, start and retries
  // (the first add() gives them), its node and backstop (given here).
  void add_batch(std::uint64_t first, std::uint64_t count, std::uint64_t node, Millis backstop);
  void add(std::uint64_t task, InFlight f) {
    add(task, f.session, f.started, f.svc_max_retries, std::move(f.request));
  }
  void add(std::uint64_t task, std::uint64_t session, Millis started, int svc_max_retries,
           Request&& r);

  // A result: the task, if it is in flight on `node` (a late report, a
  // duplicate, or one from another node, gets nullopt).
  std::optional<InFlight> release(std::uint64_t task, std::uint64_t node);
  // The same into *out (its request moved in): false for nullopt.
  bool release(std::uint64_t task, std::uint64_t node, InFlight* out);
  // The node is gone: every task it held, in task order.
  std::vector<Task> release_node(std::uint64_t node);
  // Tasks whose backstop is at or before `now`, in deadline then task order.
  std::vector<Task> release_overdue(Millis now);

  std::size_t size() const { return live_; }
  std::size_t on_node(std::uint64_t node) const;
  // Task messages with a task in flight.
  std::size_t messages() const { return records_.size(); }

 private:
  struct Record {
    std::uint64_t first = 0, count = 0, live = 0;
    std::uint64_t session = 0, node = 0;
    Millis started = 0, backstop = 0;
    int svc_max_retries = -1;
    std::vector<Request> requests;  // requests[i] is task first + i
    // Bit i set: task first + i was taken out (answered, lost or overdue).
    std::uint64_t taken_small = 0;                        // count <= 64
    std::vector<std::uint64_t> taken_big;                 // count > 64
    Record *prev = nullptr, *next = nullptr;              // the node's records, in task order
    std::pmr::map<std::uint64_t, Record>::iterator self;  // its place in records_

    bool holds(std::uint64_t task) const { return task - first < requests.size(); }

    bool taken(std::uint64_t i) const {
      return count <= 64 ? (taken_small >> i) & 1 : (taken_big[i / 64] >> (i % 64)) & 1;
    }
    void set_taken(std::uint64_t i) {
      if (count <= 64)
        taken_small |= std::uint64_t{1} << i;
      else
        taken_big[i / 64] |= std::uint64_t{1} << (i % 64);
    }
  };
  struct NodeList {
    Record *head = nullptr, *tail = nullptr;
  };
  struct Backstop {
    Millis deadline;
    std::uint64_t first;
    bool operator>(const Backstop& o) const {
      return deadline != o.deadline ? deadline > o.deadline : first > o.first;
    }
  };
  using Records = std::pmr::map<std::uint64_t, Record>;

  // The record holding `task` on `node`, or nullptr.
  Record* find(std::uint64_t task, std::uint64_t node);
  // Takes task `first + i` out of `r` (not taken yet); erases `r` when it
  // was its last task.
  InFlight take(Record* r, std::uint64_t i) {
    InFlight f;
    take(r, i, &f);
    return f;
  }
  void take(Record* r, std::uint64_t i, InFlight* out);

  // Declared first: the map's nodes come from it, so it must outlive them.
  std::pmr::unsynchronized_pool_resource pool_;
  Records records_{&pool_};
  std::unordered_map<std::uint64_t, NodeList> by_node_;
  Record* last_ = nullptr;  // the record add() fills, and the last one a release found
  std::size_t live_ = 0;
  std::vector<std::vector<Request>> spare_;  // emptied request vectors, kept for their capacity
  std::priority_queue<Backstop, std::vector<Backstop>, std::greater<Backstop>> backstops_;
};

}  // namespace zgrid::head
