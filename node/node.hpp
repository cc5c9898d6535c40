// zgrid-node: a compute node. run_node wires the node's rooms and runs them;
// docs/architecture.md ("The node's rooms") draws them.
//
// Flow: the node registers (services, capacity = workers x prefetch); the head
// sends task batches, never more than that credit; the I/O thread
// (node/io_loop.hpp) puts each batch on the worker pool's queue
// (node/worker_pool.hpp), from which workers claim tasks one at a time (a
// slow task holds back no other; a pipelined service's several at once, about
// 2 ms of work) and run them on service instances
// (node/instances.hpp over services/host.hpp); a worker sends its results,
// encoded, over its own inproc PUSH socket; the I/O thread forwards them to
// the head. Heartbeats go both ways; a head silent for `misses` intervals is
// reconnected with backoff, and the node registers again (work from the old
// connection is dropped: the head re-queues it).
//
// Threads and ownership: the DEALER and the results PULL belong to the I/O
// thread (the thread that calls run_node); each worker owns its PUSH socket.
// Service instances live in the pools of a svc::Host, leased per request or
// per run of a batch, one request at a time each; a stateful session's task
// runs on that session's own instance (the Host's session table), made at
// its first task, ended by the head's end_session or when the node registers
// again. The work queue, the workers' timeout slots, those pools and the
// session table are the only state shared between threads (a mutex each).
#pragma once

#include <atomic>
#include <string>

#include "common/status.hpp"
#include "node/options.hpp"
#include "services/service.hpp"

namespace zgrid::node {

// The name of a node started without --node-id: host-pid-random.
std::string default_node_id();

// Runs the node until `stop` becomes true (SIGTERM/SIGINT). Returns an error
// only for a bad configuration (options Validate refuses, an unknown service,
// a service whose instances cannot be made, a bad endpoint).
Status run_node(const NodeOptions& options, const svc::Registry& registry,
                const std::atomic<bool>& stop);

}  // namespace zgrid::node
