// The rows of `zgrid status`, `nodes` and `sessions` (docs/protocol.md,
// "Status fields"), built from the rooms' state. Used by the client
// handlers to answer and by the snapshot (head/snapshot.hpp) for the HTTP
// API, so that both say the same. Reactor thread only.
#pragma once

#include "common/protocol.hpp"
#include "head/context.hpp"
#include "head/durable.hpp"
#include "head/node_table.hpp"
#include "head/security.hpp"
#include "head/session_table.hpp"

namespace zgrid::head {

struct StatusSources {
  const HeadContext& ctx;
  SessionTable& sessions;
  NodeTable& nodes;
  Durable& durable;
  const Security& security;
};

proto::SessionStatus session_row(const StatusSources& src, const Session& s);
// The state a person reads: "abandoned" when every client was removed
// before committing, "complete" for an open session with nothing left to
// come, else the lifecycle state (open, sealed, cancelled, closed).
std::string display_state(const Session& s);
// Why the session's work cannot run now, in one line: no registered node
// offers its service (or the head still waits for its nodes to register,
// or every node offering it is draining or quarantined); durable, the
// journal refuses writes (a full disk). Empty when it can, or when the
// session is complete. `unoffered` (when given) is set to the head's
// verdict that no node offers the service (docs/protocol.md, "A service no
// node offers"). O(1) in the number of sessions and of offered services.
std::string paused_reason(const StatusSources& src, const Session& s, bool* unoffered = nullptr);
// What became of the session's removed clients, for status and fetch.
std::string removals_of(const Session& s);
// Queued and running over every session, when the caller has them already.
struct GridSums {
  std::uint64_t queued = 0, running = 0;
};
proto::GridStatus grid_row(const StatusSources& src, const GridSums* sums = nullptr);
proto::NodeStatus node_row(const StatusSources& src, const NodeState& n);

}  // namespace zgrid::head
