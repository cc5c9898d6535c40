// The distributor: whose queued work goes to which node, and how much.
//
// Pure policy: no sockets, no journal, no clock. The reactor owns it, tells
// it which sessions have work (activate), and in each dispatch round asks it
// for assignments one at a time, carrying each out (a `tasks` message) before
// asking for the next, so the node credit and queue lengths it sees are
// always current.
//
// Fairness: client keys take turns (round robin), and within a key its
// sessions do, so a user cannot take the grid by splitting work into many
// sessions; without CURVE there is one key. A key or session that could not
// be served keeps its place: a turn is used only by receiving work. Each turn
// goes to the least-loaded node that offers the service and has credit;
// blocked, draining and quarantined nodes get nothing; a request marked solo
// (its node died holding a batch) goes alone to an idle node.
//
// Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "head/node_index.hpp"
#include "head/state.hpp"

namespace zgrid::head {

// What a session can do now, as its owner (the reactor) sees it.
struct SessionTurn {
  enum class State {
    kReady,    // has queued work for `service`
    kWaiting,  // has work but cannot take it now (journal behind): keeps its place
    kIdle,     // nothing queued, or gone: leaves the ring until activated again
    kPaused,   // back-pressure (its clients are not reading): leaves the ring until activated
  };
  State state = State::kIdle;
  std::string_view service;  // kReady: as the session named it (name[@version][/op])
  std::uint64_t queued = 0;  // kReady: requests queued
  bool solo = false;         // kReady: the first queued request must run alone on an idle node
  // kReady, stateful sessions: one request at a time on the node holding
  // its instance (`pinned`, 0: none yet), or a node whose service takes
  // sessions. A pinned node that is gone, draining or quarantined is left.
  bool stateful = false;
  std::uint64_t pinned = 0;
};

struct Assignment {
  std::uint64_t session = 0;  // Session::ordinal
  std::uint64_t node = 0;     // NodeState::ordinal
  std::uint64_t count = 0;    // requests to send, from the front of its queue (>= 1)
};

using NodeMap = std::map<std::uint64_t, NodeState>;

class Distributor {
 public:
  using Ask = std::function<SessionTurn(std::uint64_t session)>;

  explicit Distributor(std::uint64_t max_task_batch) : max_task_batch_(max_task_batch) {}

  // Puts a session with queued work in its key's turns (no-op when it is
  // there already).
  void activate(std::uint64_t session, const std::string& owner);
  bool active(std::uint64_t session) const { return active_.count(session) > 0; }
  std::size_t active_sessions() const { return active_.size(); }

  // A dispatch round: begin(), then next() until it yields nothing. `ask`
  // tells a session's state; `nodes` are every registered node and `index`
  // the ones that can take work (marked for every change the caller makes).
  void begin();
  std::optional<Assignment> next(const Ask& ask, const NodeMap& nodes, NodeIndex& index);

  // Half a node's credit per message: the node's workers claim tasks one at
  // a time, so a big chunk does not unbalance them, and every message costs
  // a frame (and with CURVE a box) on both sides. capacity/8 cost 18% of
  // interactive throughput in frames.
  std::uint64_t chunk_for(const NodeState& n) const;

  // Whether node `n` may host a new stateful instance of `service`.
  static bool offers_sessions(const NodeState& n, std::string_view service);

 private:
  struct KeyTurns {
    std::deque<std::uint64_t> sessions;  // round robin
    bool in_ring = false;
  };
  // One turn of a key: its first session that can get work now gets it and
  // goes to the back.
  std::optional<Assignment> serve_key(KeyTurns& turns, const Ask& ask, const NodeMap& nodes,
                                      NodeIndex& index);
  // The node for a stateful session's next request, or nullptr (it waits).
  static const NodeState* stateful_node(const SessionTurn& t, const NodeMap& nodes,
                                        NodeIndex& index);

  const std::uint64_t max_task_batch_;
  std::unordered_set<std::uint64_t> active_;         // sessions in some key's turns
  std::deque<std::string> ring_;                     // keys with queued work, round robin
  std::unordered_map<std::string, KeyTurns> turns_;  // by key
  // The round in progress: keys left in this pass, keys that waited in it
  // (back at the front, in order, when it ends), and whether any was served.
  std::size_t pass_left_ = 0;
  std::deque<std::string> waited_;
  bool progress_ = false;
  bool round_over_ = true;
};

}  // namespace zgrid::head
