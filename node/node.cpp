#include "node/node.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>

#include "common/codec.hpp"
#include "common/log.hpp"
#include "common/protocol.hpp"
#include "common/thread_annotations.hpp"
#include "common/util.hpp"
#include "common/zmq_util.hpp"
#include "node/prefetch.hpp"
#include "services/host.hpp"

namespace zgrid::node {

namespace {

constexpr const char* kLog = "node";
constexpr std::size_t kMaxResultBytes = 4u << 20;
constexpr std::size_t kMaxFaultCode = 64;
const bool g_test_faulty = [] {
  const char* e = std::getenv("ZGRID_NODE_TEST_FAULTY");
  return e != nullptr && std::string_view(e) == "1";
}();

// A task batch as received: the frame, its decoded envelope and the task
// views into it. Workers claim its tasks one at a time (next), so a slow task
// never holds its neighbours back while another worker is free.
struct Batch {
  zmq::message_t frame;
  Envelope env;
  proto::Tasks tasks;
  std::uint64_t generation = 0;
  std::atomic<std::size_t> next{0};  // index of the next unclaimed task
  // A stateful session's tasks (a replay comes many to a message): one
  // worker claims them all and runs them in order.
  bool serial = false;
};

// A task a worker never started (handed back to the head: every worker stuck).
struct Unclaimed {
  std::shared_ptr<Batch> batch;
  std::size_t index;
};

// The one piece of state shared between the I/O thread and the workers:
// batches with unclaimed tasks, oldest first.
class WorkQueue {
 public:
  void push(std::shared_ptr<Batch> b) {
    {
      MutexLock lock(mu_);
      q_.push_back(std::move(b));
    }
    cv_.notify_all();
  }
  // Claims one task: blocks until there is one or the queue is stopped.
  bool claim(std::shared_ptr<Batch>* batch, std::size_t* index) {
    MutexLock lock(mu_);
    while (true) {
      while (!q_.empty()) {
        Batch& b = *q_.front();
        std::size_t i = b.next.fetch_add(b.serial ? b.tasks.items.size() : 1);
        if (i < q_.front()->tasks.items.size()) {
          *batch = q_.front();
          *index = i;
          return true;
        }
        q_.pop_front();  // exhausted
      }
      if (stopped_) return false;
      cv_.wait(lock);
    }
  }
  // Claims the next task of `batch` without locking, if any is left.
  static bool claim_more(const std::shared_ptr<Batch>& batch, std::size_t* index) {
    if (batch->serial) {  // the claimer has them all
      if (*index + 1 >= batch->tasks.items.size()) return false;
      ++*index;
      return true;
    }
    std::size_t i = batch->next.fetch_add(1);
    if (i >= batch->tasks.items.size()) return false;
    *index = i;
    return true;
  }
  // Takes every unclaimed task out of the queue (none is run here).
  std::vector<Unclaimed> take_all() {
    MutexLock lock(mu_);
    std::vector<Unclaimed> out;
    for (auto& b : q_)
      for (std::size_t i = b->next.fetch_add(b->tasks.items.size()); i < b->tasks.items.size(); ++i)
        out.push_back({b, i});
    q_.clear();
    return out;
  }
  // Drops batches of older generations (after a reconnect).
  void drop_older(std::uint64_t generation) {
    MutexLock lock(mu_);
    std::deque<std::shared_ptr<Batch>> keep;
    for (auto& b : q_)
      if (b->generation >= generation) keep.push_back(std::move(b));
    q_.swap(keep);
  }
  void stop() {
    {
      MutexLock lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  }

 private:
  Mutex mu_;
  std::condition_variable_any cv_;
  std::deque<std::shared_ptr<Batch>> q_ ZG_GUARDED_BY(mu_);
  bool stopped_ ZG_GUARDED_BY(mu_) = false;
};

// What the I/O thread needs to enforce a task timeout on one worker: which
// task it runs since when. Only tasks with a timeout touch it (a lock at
// start and end): tasks without one cost nothing here.
//
// A task past its deadline is reported to the head at once (fault
// kTaskTimeout, so only it is charged a try) and cancelled through `cancel`;
// until the call returns, the worker is stuck: the node asks for less
// credit, and when every worker is stuck it hands its queued tasks back.
struct WorkerSlot {
  std::mutex mu;
  std::uint64_t task_id = 0;        // guarded by mu
  std::uint64_t generation = 0;     // guarded by mu
  Millis started = 0;               // guarded by mu
  Millis deadline = 0;              // guarded by mu; 0: no timed task running
  bool timed_out = false;           // guarded by mu: reported; its answer is dropped
  std::atomic<bool> cancel{false};  // Output::cancel_flag of the running task
  std::atomic<bool> stuck{false};   // timed out and still inside the call
};

// Task time as the workers measure it (run time of successful tasks only, not
// waiting), read by the I/O thread to size the node's credit (adaptive prefetch).
struct TaskClock {
  std::atomic<std::uint64_t> busy_ns{0};
  std::atomic<std::uint64_t> tasks{0};
};

// Adaptive prefetch (node/prefetch.hpp): looked at every kAdaptEveryMs.
constexpr Millis kAdaptEveryMs = 20;

// Results of one worker, sent in messages of at most kMaxResultBytes (well
// under the 8 MiB frame limit) or kMaxResultItems, and at least every
// kMaxResultDelay while tasks keep coming, so results stream back.
class ResultBuffer {
 public:
  explicit ResultBuffer(zmq::socket_t& push) : push_(push) {}
  // `now`: when the task finished (the worker reads the clock once per task).
  void add(std::uint64_t generation, std::uint64_t task_id, const svc::Output& out,
           std::chrono::steady_clock::time_point now) {
    if (count_ > 0 && generation != generation_) flush();
    if (count_ == 0) {
      generation_ = generation;
      first_ = now;
      // The message itself, items appended in place: no copy when it is sent.
      body_ = proto::begin(proto::kResults, 0, 1, kReserveBytes);
      count_at_ = body_.array32_placeholder();
    }
    body_.array(3).u64(task_id);
    if (out.fault_code.empty())
      body_.nil();
    else
      body_.str(out.fault_code);
    body_.bin(out.data);
    ++count_;
    if (body_.size() >= kMaxResultBytes || count_ >= kMaxResultItems ||
        now - first_ > kMaxResultDelay)
      flush();
  }
  // Returns false when the node is stopping (context terminated).
  bool flush() {
    if (count_ == 0) return true;
    body_.patch_array32(count_at_, count_);
    zmq::message_t gen(sizeof(std::uint64_t));
    std::memcpy(gen.data(), &generation_, sizeof(std::uint64_t));
    zmq::message_t body = body_.finish();
    count_ = 0;
    try {
      push_.send(gen, zmq::send_flags::sndmore);
      push_.send(body, zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      return false;
    }
    return true;
  }

 private:
  static constexpr std::uint32_t kMaxResultItems = 512;
  static constexpr auto kMaxResultDelay = std::chrono::milliseconds(2);
  static constexpr std::size_t kReserveBytes = 32 << 10;  // 512 typical results, no regrowth
  zmq::socket_t& push_;
  Writer body_;
  std::size_t count_at_ = 0;  // offset of the items array header in body_
  std::uint32_t count_ = 0;
  std::uint64_t generation_ = 0;
  std::chrono::steady_clock::time_point first_;
};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

// The service a batch's session asked for, resolved once per batch.
using Resolved = svc::Host::Resolved;

// Runs one task on `instance` (leased by the caller from svc.service's pool).
void run_task(svc::Service* instance, const Resolved& svc, const proto::Task& t, svc::Output& out) {
  out.reset();
  if (svc.service == nullptr) {
    out.fault(svc.fault_code, svc.message);
    return;
  }
  try {
    instance->run(svc.operation, t.payload, out);
  } catch (const std::exception& e) {
    out.fault(svc::kServiceError, e.what());
  } catch (...) {
    out.fault(svc::kServiceError, "unknown exception");
  }
  if (out.data.size() > proto::kMaxPayload)
    out.fault(svc::kServiceError, "result larger than the payload limit");
  // Test hook (ZGRID_NODE_TEST_FAULTY=1): a broken node, for quarantine tests.
  if (g_test_faulty) out.fault(svc::kServiceError, "this node is broken (test hook)");
  // Fault codes are short names on the wire.
  if (out.fault_code.size() > kMaxFaultCode) out.fault_code.resize(kMaxFaultCode);
}

// Runs one task of a stateful session on its own instance (key `key`), made
// and opened at the session's first task on this node. The instance is
// locked while the task runs: one request at a time, even if the head sent
// the next before this one returned.
void run_session_task(svc::Host& host, const Resolved& svc, std::string_view key,
                      std::uint64_t generation, const proto::Task& t, svc::Output& out) {
  if (svc.service == nullptr) return run_task(nullptr, svc, t, out);
  auto lease = host.session(*svc.service, key, generation);
  if (!lease.ok()) {
    out.reset();
    out.fault(lease.status().code() == Code::kUnavailable ? svc::kRetryable : svc::kServiceError,
              lease.status().message());
    return;
  }
  run_task(lease->get(), svc, t, out);
}

void worker_main(zmq::context_t& ctx, const std::string& results_ep, WorkQueue& queue,
                 svc::Host& host, std::size_t workers, TaskClock& task_clock, WorkerSlot& slot) {
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 0);
  push.set(zmq::sockopt::sndhwm, 0);  // inproc to our own I/O thread: never drop
  push.connect(results_ep);

  // Session service strings seen by this worker, resolved (few per node).
  std::map<std::string, Resolved, std::less<>> resolved;
  svc::Output out;
  out.cancel_flag = &slot.cancel;
  ResultBuffer results(push);
  std::shared_ptr<Batch> batch;
  std::size_t index = 0;
  // Task time, published to task_clock at most every millisecond of work (an
  // atomic add per task would be shared-cache traffic for microsecond tasks).
  using SteadyTime = std::chrono::steady_clock::time_point;
  SteadyTime last;
  std::uint64_t busy_ns = 0, tasks = 0;
  auto publish = [&] {
    if (tasks == 0) return;
    task_clock.busy_ns.fetch_add(busy_ns, std::memory_order_relaxed);
    task_clock.tasks.fetch_add(tasks, std::memory_order_relaxed);
    busy_ns = tasks = 0;
  };
  while (true) {
    // Nothing claimable right now: send what we have before blocking.
    publish();
    if (!results.flush()) break;
    batch.reset();
    if (!queue.claim(&batch, &index)) break;
    last = std::chrono::steady_clock::now();
    auto it = resolved.find(batch->tasks.service);
    if (it == resolved.end())
      it = resolved.emplace(std::string(batch->tasks.service), host.resolve(batch->tasks.service))
               .first;
    const Resolved& svc = it->second;
    const Millis timeout = static_cast<Millis>(batch->tasks.timeout_ms);
    // `session`: the instance key of a stateful session's task (else empty:
    // the task runs on `instance`, leased from the pool).
    // Returns false when the task's run was lost (it faulted `retryable` or
    // ran past its timeout).
    auto run_one = [&](svc::Service* instance, std::string_view session) -> bool {
      const proto::Task& task = batch->tasks.items[index];
      if (timeout > 0) {
        Millis start = SteadyClock::instance().now_ms();
        std::lock_guard<std::mutex> lock(slot.mu);
        slot.task_id = task.task_id;
        slot.generation = batch->generation;
        slot.started = start;
        slot.deadline = start + timeout;
        slot.timed_out = false;
        slot.cancel.store(false, std::memory_order_relaxed);
      }
      if (session.empty())
        run_task(instance, svc, task, out);
      else
        run_session_task(host, svc, session, batch->generation, task, out);
      if (timeout > 0) {
        std::lock_guard<std::mutex> lock(slot.mu);
        slot.deadline = 0;
        if (slot.timed_out) {
          // The I/O thread reported this task timed out and the head runs it
          // elsewhere: its late answer is dropped. The worker is free again.
          slot.timed_out = false;
          slot.stuck.store(false);
          last = std::chrono::steady_clock::now();
          return false;
        }
      }
      SteadyTime now = std::chrono::steady_clock::now();
      // Only successful runs say how long the work takes: a broken service
      // that faults at once must not earn its node a deep queue.
      if (out.fault_code.empty()) {
        busy_ns += static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count());
        ++tasks;
      }
      last = now;
      if (busy_ns >= 1'000'000) publish();
      results.add(batch->generation, task.task_id, out, now);
      return out.fault_code != svc::kRetryable;
    };
    if (svc.service == nullptr) {
      do run_one(nullptr, {});
      while (WorkQueue::claim_more(batch, &index));
    } else if (!batch->tasks.instance.empty()) {
      // A stateful session: its own instance, not one of the pool, the
      // message's tasks in order. Once a run is lost the instance's state is
      // suspect (the head starts a fresh one): the rest go back unstarted.
      bool lost = false;
      do {
        if (!lost) {
          lost = !run_one(nullptr, batch->tasks.instance);
          continue;
        }
        out.reset();
        out.fault(proto::fault::kNotRun, "not started: an earlier run of its instance was lost");
        results.add(batch->generation, batch->tasks.items[index].task_id, out,
                    std::chrono::steady_clock::now());
      } while (WorkQueue::claim_more(batch, &index));
    } else if (svc.service->instances.size() >= workers) {
      // Every worker can have an instance: lease one for the whole run (a
      // lease per request cost two contended lock round trips each).
      svc::Host::Lease lease = host.lease(*svc.service);
      do run_one(lease.get(), {});
      while (WorkQueue::claim_more(batch, &index));
    } else {
      // Fewer instances than workers (a concurrency limit): lease per
      // request, so a worker holding one cannot starve a task another claimed.
      do {
        svc::Host::Lease lease = host.lease(*svc.service);
        run_one(lease.get(), {});
      } while (WorkQueue::claim_more(batch, &index));
    }
  }
  (void)results.flush();
}

class NodeIo {
 public:
  NodeIo(const NodeOptions& o, zmq::context_t& ctx, WorkQueue& queue, int workers, svc::Host& host,
         const TaskClock& task_clock, std::vector<WorkerSlot>& slots)
      : o_(o),
        ctx_(ctx),
        queue_(queue),
        workers_(workers),
        host_(host),
        task_clock_(task_clock),
        slots_(slots),
        prefetch_(o.prefetch > 0 ? static_cast<std::uint64_t>(o.prefetch)
                                 : PrefetchPolicy{}.start) {
    for (const auto& h : host.services()) {
      services_.push_back(h->advertised);
      proto::ServiceAd ad;
      ad.advertised = h->advertised;
      ad.task_timeout_ms = static_cast<std::uint64_t>(h->info.task_timeout_ms);
      ad.max_retries = h->info.max_retries;
      ad.sessions = h->info.sessions;
      service_info_.push_back(std::move(ad));
    }
    hb_ms_ = o.heartbeat_ms;
    misses_ = o.heartbeat_misses;
  }

  Status run(zmq::socket_t& pull, const std::atomic<bool>& stop) {
    ZG_RETURN_IF_ERROR(connect());
    const Clock& clock = SteadyClock::instance();
    std::vector<zmq::message_t> frames;
    while (!stop.load()) {
      Millis now = clock.now_ms();
      Millis next = tick(now);
      zmq::pollitem_t items[] = {{static_cast<void*>(dealer_), 0, ZMQ_POLLIN, 0},
                                 {static_cast<void*>(pull), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 2,
                  std::chrono::milliseconds(std::max<Millis>(1, std::min<Millis>(next, 200))));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        return Status::Internal(std::string("poll failed: ") + e.what());
      }
      now = clock.now_ms();
      if (items[0].revents & ZMQ_POLLIN) {
        for (int i = 0; i < 256; ++i) {
          auto rs = zmqu::recv_message(dealer_, &frames, 2);
          if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) break;
          last_head_ms_ = now;
          if (rs == zmqu::RecvStatus::kOk && frames.size() == 1) on_head_message(frames[0], now);
        }
      }
      if (items[1].revents & ZMQ_POLLIN) {
        for (int i = 0; i < 1024; ++i) {
          auto rs = zmqu::recv_message(pull, &frames, 2);
          if (rs != zmqu::RecvStatus::kOk) break;
          on_worker_results(frames);
        }
      }
    }
    // Graceful stop: tell the head we are leaving so it re-queues our work now.
    if (registered_) {
      Writer w = proto::begin(proto::kBye, 0, 1);
      w.str(node_id());
      zmq::message_t m = w.finish();
      (void)zmqu::send_one(dealer_, m);
    }
    return Status::OK();
  }

 private:
  const std::string& node_id() const { return o_.node_id; }

  Status connect() {
    zmqu::SocketOptions so;
    so.curve_server_key = o_.head_key;
    so.curve_public = o_.public_key;
    so.curve_secret = o_.secret_key;
    monitor_ = zmqu::HandshakeMonitor();
    auto d = zmqu::connect_dealer(ctx_, o_.head, so, &monitor_);
    if (!d.ok()) return d.status();
    dealer_ = std::move(d).value();
    registered_ = false;
    new_generation();
    next_register_ms_ = 0;
    return Status::OK();
  }

  // A new connection generation (reconnect, head stopping or not knowing
  // us): work of the old one is dropped, and so are stateful sessions'
  // instances (the head replays those sessions on fresh ones).
  void new_generation() {
    ++generation_;
    queue_.drop_older(generation_);
    host_.end_all_sessions(generation_);
  }

  // Periodic work; returns milliseconds until it wants to run again.
  Millis tick(Millis now) {
    // Read handshake events every tick, so the monitor's queue never fills.
    Status handshake = monitor_.check();
    if (!registered_) {
      // A refused key never connects: say so (every 30 s at most), keep trying
      // (the operator may add the key and SIGHUP the head).
      if (!handshake.ok() && now - last_auth_log_ms_ >= 30'000) {
        ZG_LOG(kError, kLog, "cannot register with " + o_.head + ": " + handshake.message());
        last_auth_log_ms_ = now;
      }
      if (now >= next_register_ms_) {
        proto::Register r;
        r.node_id = node_id();
        r.host = hostname();
        r.pid = static_cast<std::uint64_t>(getpid());
        r.workers = static_cast<std::uint64_t>(workers_);
        r.capacity = std::max<std::uint64_t>(1, capacity());  // 0 only in heartbeats
        r.services = services_;
        r.service_info = service_info_;
        zmq::message_t m = proto::encode_register(++corr_, r);
        (void)zmqu::send_one(dealer_, m);  // EAGAIN while the head is unreachable
        register_backoff_ms_ = std::min<Millis>(
            register_backoff_ms_ == 0 ? 250 : register_backoff_ms_ * 2, o_.reconnect_max_ms);
        next_register_ms_ = now + register_backoff_ms_;
        register_sent_ms_ = now;
      }
      return next_register_ms_ - now;
    }
    Millis next_timeout = check_task_timeouts(now);
    if (adaptive()) adapt(now);
    if (now - last_hb_sent_ms_ >= hb_ms_) send_heartbeat(now);
    if (now - last_head_ms_ > hb_ms_ * misses_) {
      ZG_LOG(kWarn, kLog,
             "head silent for " + format_duration(now - last_head_ms_) + ", reconnecting to " +
                 o_.head);
      if (Status st = connect(); !st.ok()) ZG_LOG(kError, kLog, st.ToString());
      return 1;
    }
    Millis next = std::max<Millis>(1, hb_ms_ - (now - last_hb_sent_ms_));
    next = std::min(next, next_timeout);
    return adaptive() ? std::min(next, kAdaptEveryMs) : next;
  }

  void send_heartbeat(Millis now) {
    zmq::message_t m = proto::encode_node_heartbeat(node_id(), capacity(), stuck_);
    (void)zmqu::send_one(dealer_, m);
    last_hb_sent_ms_ = now;
  }

  // Task timeouts, counted from when a worker started the task: a task past
  // its deadline is reported (kTaskTimeout: the head charges it alone and
  // runs it again elsewhere) and cancelled; its worker is stuck until the call
  // returns. Stuck workers take no work (the credit shrinks); when all are
  // stuck, queued tasks go back to the head uncharged (kNotRun). Returns the
  // milliseconds until the next deadline (or a second).
  Millis check_task_timeouts(Millis now) {
    Millis next = 1000;
    std::uint64_t stuck = 0;
    for (WorkerSlot& slot : slots_) {
      std::unique_lock<std::mutex> lock(slot.mu);
      if (slot.deadline > 0 && !slot.timed_out) {
        if (now >= slot.deadline) {
          slot.timed_out = true;
          slot.stuck.store(true);
          slot.cancel.store(true);
          std::uint64_t task = slot.task_id, gen = slot.generation;
          Millis ran = now - slot.started;
          lock.unlock();
          ZG_LOG(kWarn, kLog,
                 "task " + std::to_string(task) + " ran past its task timeout (" +
                     format_duration(ran) +
                     "): reported to the head; its worker is stuck until "
                     "the call returns");
          if (gen == generation_)
            send_result(task, proto::fault::kTaskTimeout,
                        "ran past its task timeout (stopped after " + format_duration(ran) + ")");
        } else {
          next = std::min(next, slot.deadline - now);
        }
      }
      if (slot.stuck.load()) ++stuck;
    }
    if (stuck != stuck_) {
      log::write(stuck > stuck_ ? log::Level::kWarn : log::Level::kInfo, kLog,
                 std::to_string(stuck) + " of " + std::to_string(workers_) +
                     " workers stuck in a timed-out call; asking for credit " +
                     std::to_string(capacity_for(stuck)));
      stuck_ = stuck;
      if (registered_) send_heartbeat(now);
    }
    if (all_stuck()) hand_back_queued();
    return std::max<Millis>(1, next);
  }

  bool all_stuck() const { return stuck_ >= static_cast<std::uint64_t>(workers_); }

  // Every worker is stuck: tasks waiting in the queue would wait for the
  // stuck calls. Hand them back to the head, uncharged, to run elsewhere.
  void hand_back_queued() {
    std::vector<Unclaimed> tasks = queue_.take_all();
    if (tasks.empty()) return;
    ZG_LOG(kWarn, kLog,
           "every worker is stuck: handing " + std::to_string(tasks.size()) +
               " queued tasks back to the head");
    for (const Unclaimed& u : tasks)
      if (u.batch->generation == generation_)
        send_result(u.batch->tasks.items[u.index].task_id, proto::fault::kNotRun,
                    "not started: every worker of this node is stuck");
  }

  void send_result(std::uint64_t task_id, std::string_view code, std::string_view message) {
    if (!registered_) return;
    Writer w = proto::begin(proto::kResults, 0, 1, 64 + message.size());
    w.array(1).array(3).u64(task_id).str(code).bin(message);
    zmq::message_t m = w.finish();
    (void)zmqu::send_one(dealer_, m);
  }

  bool adaptive() const { return o_.prefetch == 0; }  // run_node refuses < 0

  // The credit: prefetch tasks per worker that is not stuck.
  std::uint64_t capacity_for(std::uint64_t stuck) const {
    std::uint64_t free =
        static_cast<std::uint64_t>(workers_) - std::min<std::uint64_t>(stuck, workers_);
    return std::min<std::uint64_t>(free * prefetch_, proto::kMaxCapacity);
  }
  std::uint64_t capacity() const { return capacity_for(stuck_); }

  // Adaptive prefetch: from the task time measured since the last look, the
  // credit that keeps a few milliseconds of work per worker (node/prefetch.hpp); a change of more
  // than 1.5x is sent at once, in a heartbeat that carries the new capacity.
  void adapt(Millis now) {
    if (now - last_adapt_ms_ < kAdaptEveryMs) return;
    last_adapt_ms_ = now;
    std::uint64_t busy = task_clock_.busy_ns.load(std::memory_order_relaxed);
    std::uint64_t tasks = task_clock_.tasks.load(std::memory_order_relaxed);
    std::uint64_t d_busy = busy - seen_busy_ns_, d_tasks = tasks - seen_tasks_;
    if (d_tasks == 0) return;  // nothing finished: keep what we have
    seen_busy_ns_ = busy;
    seen_tasks_ = tasks;
    std::uint64_t want = next_prefetch(prefetch_, d_busy, d_tasks);
    if (want == prefetch_) return;
    ZG_LOG(kDebug, kLog,
           "mean task time " + std::to_string(d_busy / d_tasks) + " ns: prefetch " +
               std::to_string(prefetch_) + " -> " + std::to_string(want));
    prefetch_ = want;
    send_heartbeat(now);
  }

  void on_head_message(zmq::message_t& frame, Millis now) {
    auto batch = std::make_shared<Batch>();
    batch->frame = std::move(frame);
    Envelope& env = batch->env;
    Status st = decode_envelope(batch->frame.data(), batch->frame.size(), &env);
    if (st.ok()) st = proto::check_version(env);
    if (!st.ok()) {
      ZG_LOG(kWarn, kLog, "bad message from head: " + st.ToString());
      return;
    }
    switch (env.type) {
      case proto::kRegistered: {
        proto::Registered r;
        if (!proto::decode_registered(env, &r).ok()) return;
        registered_ = true;
        register_backoff_ms_ = 0;
        if (r.heartbeat_ms > 0) hb_ms_ = static_cast<Millis>(r.heartbeat_ms);
        if (r.misses > 0) misses_ = static_cast<int>(r.misses);
        // The credit as it is now (stuck workers, adapted prefetch).
        send_heartbeat(now);
        ZG_LOG(kInfo, kLog,
               "registered with head " + o_.head + " as node=" + node_id() +
                   " workers=" + std::to_string(workers_) +
                   " heartbeat=" + format_duration(hb_ms_) + " services=" + join(services_));
        return;
      }
      case proto::kHeartbeat:
        return;
      case proto::kBye:
        // The head is stopping: register again (with backoff) once it is back.
        ZG_LOG(kInfo, kLog,
               "head " + o_.head + " is stopping; will register again when it is back");
        registered_ = false;
        new_generation();
        next_register_ms_ = now + 250;
        return;
      case proto::kTasks: {
        if (!registered_) return;
        if (Status s = proto::decode_tasks(env, &batch->tasks); !s.ok()) {
          ZG_LOG(kWarn, kLog, "bad task batch: " + s.ToString());
          return;
        }
        batch->generation = generation_;
        batch->serial = !batch->tasks.instance.empty();
        std::size_t n = batch->tasks.items.size();
        if (n == 0) return;
        queue_.push(std::move(batch));
        // Sent before the head saw our credit drop: it cannot run here now.
        if (all_stuck()) hand_back_queued();
        return;
      }
      case proto::kEndSession: {
        // A stateful session's instance is no longer needed (ended, or
        // replaced by a fresh one elsewhere). Closed off this thread.
        proto::EndSession m;
        if (Status s = proto::decode_end_session(env, &m); !s.ok()) {
          ZG_LOG(kWarn, kLog, "bad end_session: " + s.ToString());
          return;
        }
        host_.end_session(m.instance);
        return;
      }
      case proto::kError: {
        proto::Error e;
        if (!proto::decode_error(env, &e).ok()) return;
        if (e.code == Code::kNotFound) {
          // The head does not know us (it restarted, or declared us dead).
          ZG_LOG(kWarn, kLog,
                 "head does not know this node (" + e.message + "); registering again");
          registered_ = false;
          new_generation();
          next_register_ms_ = 0;
        } else {
          ZG_LOG(kWarn, kLog, "head error: " + std::string(code_name(e.code)) + ": " + e.message);
        }
        return;
      }
      default:
        ZG_LOG(kWarn, kLog,
               std::string("unexpected message from head: ") + proto::type_name(env.type));
    }
  }

  void on_worker_results(std::vector<zmq::message_t>& frames) {
    if (frames.size() != 2 || frames[0].size() != sizeof(std::uint64_t)) return;
    std::uint64_t gen;
    std::memcpy(&gen, frames[0].data(), sizeof gen);
    if (gen != generation_ || !registered_) return;  // work of a previous connection
    // The DEALER queues up to its HWM while connected; a drop here is covered
    // by the head re-queueing the work of a node it declares dead.
    (void)zmqu::send_one(dealer_, frames[1]);
  }

  const NodeOptions& o_;
  zmq::context_t& ctx_;
  WorkQueue& queue_;
  int workers_;
  svc::Host& host_;  // stateful sessions' instances (thread-safe)
  const TaskClock& task_clock_;
  std::vector<WorkerSlot>& slots_;  // one per worker (task timeouts)
  std::uint64_t stuck_ = 0;         // workers stuck in a timed-out call
  std::uint64_t prefetch_;          // per worker: fixed (--prefetch) or adapted
  std::uint64_t seen_busy_ns_ = 0, seen_tasks_ = 0;
  Millis last_adapt_ms_ = 0;
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

}  // namespace

Status run_node(const NodeOptions& options, const svc::Registry& registry,
                const std::atomic<bool>& stop) {
  NodeOptions o = options;
  int workers = o.workers > 0 ? o.workers : static_cast<int>(std::thread::hardware_concurrency());
  if (workers <= 0) workers = 1;
  if (o.prefetch < 0) return Status::InvalidArgument("--prefetch must be 0 (adaptive) or more");
  if (o.node_id.empty())
    o.node_id = hostname() + "-" + std::to_string(getpid()) + "-" + random_id64().substr(0, 6);
  if (!valid_name(o.node_id))
    return Status::InvalidArgument("--node-id must be 1..64 printable characters");
  auto host = svc::Host::start(registry, o.services, workers);
  if (!host.ok()) return host.status();

  zmq::context_t ctx(1);
  std::string results_ep = "inproc://zgrid-node-results";
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.set(zmq::sockopt::rcvhwm, 0);
  pull.bind(results_ep);

  WorkQueue queue;
  TaskClock task_clock;
  std::vector<WorkerSlot> slots(static_cast<std::size_t>(workers));
  std::vector<std::thread> threads;
  for (int i = 0; i < workers; ++i)
    threads.emplace_back([&, i] {
      worker_main(ctx, results_ep, queue, **host, static_cast<std::size_t>(workers), task_clock,
                  slots[static_cast<std::size_t>(i)]);
    });

  NodeIo io(o, ctx, queue, workers, **host, task_clock, slots);
  Status st = io.run(pull, stop);
  (*host)->cancel_all();  // exec workers waiting on a reply give up
  queue.stop();
  for (auto& t : threads) t.join();
  (*host)->end_all_sessions();  // closed before the Host (and its pools) go
  return st;
}

}  // namespace zgrid::node
