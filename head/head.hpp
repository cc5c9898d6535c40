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

// Runs the head until `stop` becomes true: with --data-dir, as the active
// head or as a standby until it takes over (head/lease.hpp). Returns an
// error for a bad configuration or when a socket cannot be bound. A head
// that loses its lease exits the process at once (status 2) without
// writing: nothing it holds may reach the disk.
Status run_head(const HeadOptions& options, const std::atomic<bool>& stop,
                const Clock& clock = SteadyClock::instance());

// Maintenance with no head running (zgrid-head --purge-session): takes the
// lease of `o.data_dir` (waiting out a dead head's; refused while a head
// renews it), deletes every record of session `sid` from the journal,
// writes its tombstone, removes its segment file, and releases the lease.
// For a session whose corrupt records stop the head from starting
// (docs/operations.md).
Status purge_offline(const HeadOptions& o, const std::string& sid);

}  // namespace zgrid::head
