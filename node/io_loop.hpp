// The node's I/O thread: the DEALER to the head and the PULL of the workers'
// results. It owns
//   - the connection: register (services, capacity) with backoff, the
//     heartbeats both ways, reconnecting to a head silent for `misses`
//     intervals; each (re)connection, and a head's `bye` or `not_found`,
//     starts a new generation: queued work and stateful sessions' instances
//     of the old one are dropped, and its results are not forwarded;
//   - what the head sends: task batches to the worker pool's queue,
//     end_session to the service host;
//   - results: forwarded unchanged if their generation is current;
//   - the credit (node/credit.hpp): adaptive prefetch, and task timeouts —
//     a task past its deadline is reported task_timeout, stuck workers shrink
//     the credit, and when every worker is stuck the queued tasks go back
//     not_run;
//   - `bye` at a graceful stop.
//
// Threads: an IoLoop is made and run by one thread (run_node's); every
// member is that thread's. It reaches the workers only through the pool's
// thread-safe queue and slots, and the Host's thread-safe methods.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "common/status.hpp"
#include "common/zmq_util.hpp"
#include "node/credit.hpp"
#include "node/options.hpp"
#include "node/worker_pool.hpp"
#include "services/host.hpp"

namespace zgrid::node {

class IoLoop {
 public:
  // `o.node_id` must be set (run_node fills the default in). All references
  // must outlive the IoLoop.
  IoLoop(const NodeOptions& o, zmq::context_t& ctx, WorkerPool& pool, svc::Host& host);

  // Connects and serves until `stop` becomes true, then says bye. Returns an
  // error for a bad endpoint or a failed poll.
  Status run(zmq::socket_t& pull, const std::atomic<bool>& stop);

 private:
  const std::string& node_id() const { return o_.node_id; }
  Status connect();
  void new_generation();
  Millis tick(Millis now);
  void send_heartbeat(Millis now);
  Millis check_task_timeouts(Millis now);
  void hand_back_queued();
  void send_result(std::uint64_t task_id, std::string_view code, std::string_view message);
  void on_head_message(zmq::message_t& frame, Millis now);
  void on_worker_results(std::vector<zmq::message_t>& frames);

  const NodeOptions& o_;
  zmq::context_t& ctx_;
  WorkerPool& pool_;
  svc::Host& host_;  // stateful sessions' instances (thread-safe)
  Credit credit_;
  std::vector<TimedOut> timed_out_;    // check_task_timeouts' scratch (kept: no allocation)
  std::vector<std::string> services_;  // name@version
  std::vector<proto::ServiceAd> service_info_;
  zmqu::HandshakeMonitor monitor_;  // declared before dealer_: it outlives the socket it watches
  zmq::socket_t dealer_;
  Millis last_auth_log_ms_ = -30'000;
  bool registered_ = false;
  std::uint64_t generation_ = 0;
  std::uint64_t corr_ = 0;
  Millis hb_ms_;
  int misses_;
  Millis last_head_ms_ = 0;
  Millis last_hb_sent_ms_ = 0;
  Millis next_register_ms_ = 0;
  Millis register_sent_ms_ = 0;
  Millis register_backoff_ms_ = 0;
};

}  // namespace zgrid::node
