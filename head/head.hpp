// zgrid-head: the broker.
//
// One reactor thread owns both ROUTER sockets (frontend for clients, backend
// for nodes) and all session, client and node state; nothing here is shared
// with another thread except through inproc sockets (the journal thread, for
// durable sessions). See docs/architecture.md for the request life cycle.
#pragma once

#include <atomic>

#include "common/clock.hpp"
#include "common/status.hpp"
#include "head/options.hpp"

namespace zgrid::head {

// Runs the head until `stop` becomes true. Returns an error for a bad
// configuration or when a socket cannot be bound.
Status run_head(const HeadOptions& options, const std::atomic<bool>& stop,
                const Clock& clock = SteadyClock::instance());

// Maintenance with no head running (zgrid-head --purge-session): deletes
// every record of session `sid` from the journal in `data_dir`, writes its
// tombstone and removes its segment file. For a session whose corrupt
// records stop the head from starting (docs/operations.md).
Status purge_offline(const std::string& data_dir, const std::string& sid);

}  // namespace zgrid::head
