// zgrid-node: a compute node. One I/O thread owns the DEALER to the head and
// an inproc PULL for results; N worker threads run services.
//
// Flow: the node registers (services, capacity = workers x prefetch); the head
// sends task batches, never more than that credit; the I/O thread puts each
// batch on a shared work queue, from which workers claim tasks one at a time
// (a slow task holds back no other); a worker sends its results, encoded, over
// its own inproc PUSH socket; the I/O thread forwards them to the head. Heartbeats go both ways; a
// head silent for `misses` intervals is reconnected with backoff, and the node registers again
// (work from the old connection is dropped: the head re-queues it).
//
// Threads and ownership: the DEALER and PULL belong to the I/O thread (run());
// each worker owns its PUSH socket. Service instances live in the pools of a
// svc::Host (services/host.hpp), leased per request, one request at a time
// each; a stateful session's task runs on that session's own instance (the
// Host's session table), made at its first task, ended by the head's
// end_session or when the node registers again. The work queue, those pools
// and the session table are the only state shared between threads (mutex +
// condition variable each).
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/status.hpp"
#include "services/service.hpp"

namespace zgrid::node {

struct NodeOptions {
  std::string head = "tcp://127.0.0.1:5556";  // the head's backend endpoint
  int workers = 0;                            // 0: hardware concurrency
  // Tasks per worker the head may send ahead. 0 (the default): adaptive, the
  // node asks for about kQueueTime of work per worker at its measured task time.
  int prefetch = 0;
  std::vector<std::string> services;  // empty: every registered service
  std::string node_id;                // empty: host-pid-random
  Millis heartbeat_ms = 1000;         // until the head says otherwise
  int heartbeat_misses = 3;           // head declared silent after this many
  Millis reconnect_max_ms = 5000;     // backoff cap between register attempts
  // CURVE (docs/security.md): the head's public key and this node's pair
  // (Z85). Empty: plain.
  std::string head_key, public_key, secret_key;
};

// Runs the node until `stop` becomes true (SIGTERM/SIGINT). Returns an error
// only for a bad configuration (unknown service, a service whose instances
// cannot be made, bad endpoint).
Status run_node(const NodeOptions& options, const svc::Registry& registry,
                const std::atomic<bool>& stop);

}  // namespace zgrid::node
