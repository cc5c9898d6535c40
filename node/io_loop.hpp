// The node's I/O thread: the DEALER to the head and the PULL of the workers'
// results. It owns
//   - the connection: register (services, capacity) with backoff, the
//     heartbeats (sent when the node sent nothing else for an interval, or
//     the head was quiet for one; the head answers each, with the interval
//     to use), reconnecting to a head silent for `misses` intervals; each (re)connection, and a
//     head's `bye` or `not_found`, starts a new generation: queued work and stateful sessions'
//     instances of the old one are dropped, and its results are not forwarded;
//   - failover (a list of heads, docs/operations.md "Failover: nodes"): the
//     node is registered with one head at a time. While it has none, or its
//     head has been silent for 1.5 heartbeats, it sends `register` to every
//     other head it knows (the list, and active heads a standby named in its
//     `not_active`), one DEALER each (a Link); the first to answer
//     `registered` with a newer epoch becomes the head (a new generation).
//     It never stays with a head whose epoch is below the highest it saw;
//   - what the head sends: task batches to the worker pool's queue,
//     end_session to the service host;
//   - lone short tasks run here, inline (run_inline): a message of at most
//     kMaxInlineTasks tasks of a service that declares it may
//     (ServiceInfo::run_inline), measured at under kInlineBudgetNs for them
//     all, while a worker is idle and nothing is queued, on an instance
//     free at once. It saves the two thread hand-offs a lone task costs
//     (waking a worker; its result waking this thread). Anything else, or a
//     service never measured yet, goes to the workers;
//   - results: those of the current generation go to the head in as few
//     `results` messages as the batch limits allow — every worker message
//     read in one pass merged into one, those of a worker with more work
//     claimed held at most 1 ms for the next (node/result_hold.hpp); a
//     lone task's never wait;
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
#include "node/instances.hpp"
#include "node/options.hpp"
#include "node/result_hold.hpp"
#include "node/worker_pool.hpp"
#include "services/host.hpp"

namespace zgrid::node {

class IoLoop {
 public:
  // Lone tasks run inline: at most this many in the message, and at most
  // this much measured work for them all (what other traffic may wait).
  static constexpr std::size_t kMaxInlineTasks = 4;
  static constexpr std::uint64_t kInlineBudgetNs = 100'000;

  // While a head is being looked for after one was lost, each link sends
  // `register` this often (instead of the doubling backoff), for at most
  // kFastSearchMs: a takeover is found within a fraction of a second.
  static constexpr Millis kProbeEveryMs = 300;
  static constexpr Millis kFastSearchMs = 15'000;
  // A register that could not be sent (the link is not connected) is tried
  // again this soon (failover only).
  static constexpr Millis kUnsentRetryMs = 25;
  // Endpoints learned from `not_active` answers (not in --head), at most.
  static constexpr std::size_t kMaxLearned = 8;

  // `o.node_id` must be set (run_node fills the default in). All references
  // must outlive the IoLoop.
  IoLoop(const NodeOptions& o, zmq::context_t& ctx, WorkerPool& pool, svc::Host& host);

  // Connects and serves until `stop` becomes true, then says bye. Returns an
  // error for a bad endpoint or a failed poll.
  Status run(zmq::socket_t& pull, const std::atomic<bool>& stop);

 private:
  // One DEALER to one head: the registered head's, or one being asked.
  // Its monitor is stopped before the socket closes: libzmq's I/O thread
  // sends monitor events blocking, and one for a closing connection sent
  // after the monitor's reader is gone would stall every socket of the
  // context (a Link closed mid-handshake: a probe given up).
  struct Link {
    std::string endpoint;
    zmqu::HandshakeMonitor monitor;  // declared before socket: it outlives the socket it watches
    zmq::socket_t socket;
    Millis next_register_ms = 0;
    Millis backoff_ms = 0;

    Link() = default;
    Link(Link&&) noexcept = default;
    Link& operator=(Link&& o) noexcept {
      if (this == &o) return *this;
      stop_monitor();
      socket = std::move(o.socket);  // closes ours before its monitor's reader goes
      monitor = std::move(o.monitor);
      endpoint = std::move(o.endpoint);
      next_register_ms = o.next_register_ms;
      backoff_ms = o.backoff_ms;
      return *this;
    }
    ~Link() {
      stop_monitor();
      socket.close();
    }
    void stop_monitor() {
      if (socket.handle() != nullptr) (void)zmq_socket_monitor(socket.handle(), nullptr, 0);
    }
  };

  const std::string& node_id() const { return o_.node_id; }
  bool failover() const { return endpoints_.size() + learned_.size() > 1; }
  Result<Link> open_link(const std::string& endpoint);
  Status connect();
  void new_generation();
  Millis tick(Millis now);
  Millis search(Millis now);
  Millis probe_others(Millis now);
  void learn(const std::string& backend, Millis now);
  void send_register(Link& l, Millis now);
  void send_bye(Link& l);
  void close_probes();
  void switch_to_probe(std::size_t i, const proto::Registered& r, Millis now);
  void on_not_active(const proto::Error& e, const std::string& from, Millis now);
  void drop_stale(const std::string& why, bool silent, Millis now);
  void note_lost(bool silent);
  Millis heartbeat_due() const;
  void send_heartbeat(Millis now);
  Millis check_task_timeouts(Millis now);
  void hand_back_queued();
  void send_result(std::uint64_t task_id, std::string_view code, std::string_view message);
  void on_head_message(zmq::message_t& frame, Millis now);
  // Runs `batch` (of the current generation) here when it is a lone short
  // task (see the class comment) and sends its results; false: not run.
  bool run_inline(const Batch& batch, Millis now);
  // Returns true when the probe became the head (probes_ changed).
  bool on_probe_message(std::size_t i, zmq::message_t& frame, Millis now);
  void adopt_registration(const proto::Registered& r, Millis now);
  void on_worker_results(std::vector<zmq::message_t>& frames, Millis now);
  void send_results(std::vector<zmq::message_t>& out);

  const NodeOptions& o_;
  zmq::context_t& ctx_;
  WorkerPool& pool_;
  svc::Host& host_;  // stateful sessions' instances (thread-safe)
  Credit credit_;
  std::vector<TimedOut> timed_out_;      // check_task_timeouts' scratch (kept: no allocation)
  ResultHold hold_;                      // workers' results waiting a moment for more
  std::vector<zmq::message_t> to_send_;  // results due now (scratch)
  Instances inline_;                     // this thread's, for tasks it runs inline
  svc::Output inline_out_;               // (reused)
  std::uint64_t inline_tasks_ = 0;       // tasks run inline (logged at stop)
  std::vector<std::string> services_;    // name@version
  std::vector<proto::ServiceAd> service_info_;
  std::vector<std::string> endpoints_;  // --head, split
  std::vector<std::string> learned_;    // active backends named by not_active, not in --head
  Link head_;                           // the head (registered or being registered with)
  std::vector<Link> probes_;            // the other heads, while looking for one
  Millis last_auth_log_ms_ = -30'000;
  Millis last_not_active_log_ms_ = -30'000;
  Millis fast_until_ms_ = 0;  // links send register every kProbeEveryMs until then
  bool registered_ = false;
  std::uint64_t epoch_ = 0;      // the registered head's epoch
  std::string head_instance_;    // and its instance id
  std::uint64_t max_epoch_ = 0;  // the highest any head reported
  std::string lost_head_;        // the head last given up (for the log line), until the next
  Millis lost_heard_ms_ = 0;     // when it was last heard from
  bool lost_silent_ = false;     // it fell silent (else it stood down)
  std::uint64_t generation_ = 0;
  std::uint64_t corr_ = 0;
  Millis hb_ms_;
  int misses_;
  Millis last_head_ms_ = 0;
  Millis last_hb_sent_ms_ = 0;
  Millis last_sent_ms_ = 0;           // anything sent to the head (results, heartbeats)
  std::uint64_t probes_version_ = 0;  // bumped whenever probes_ changes (the poll loop's check)
};

}  // namespace zgrid::node
