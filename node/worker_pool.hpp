// The node's workers. The pool owns
//   - the work queue: task batches with unclaimed tasks, oldest first; a
//     worker claims one task at a time (an atomic index per batch), so a slow
//     task never holds its neighbours back while another worker is free; a
//     stateful session's batch is claimed whole by one worker (its tasks run
//     in order);
//   - pipelined runs: for a pooled instance whose pipeline_depth() > 1 (an
//     exec service that reads ahead, e.g. `python`) a worker claims several
//     tasks at once (claim_more on its batch, then claim_same on the same
//     service's batches queued behind it: single calls arrive many small
//     batches), at most the depth and about 2 ms of work at that service's
//     measured time per task (a per-worker estimate that rises at once and
//     falls by halves), so long tasks still spread one per worker. Per-task
//     semantics stay: each task's timeout slot begins when the previous
//     answer came back, each result is added (or dropped, if reported timed
//     out) as its answer comes;
//   - N worker threads: each runs its claimed tasks on service instances
//     (node/instances.hpp), buffers the encoded results and pushes a
//     `results` message, tagged with the batch's connection generation, over
//     its own inproc PUSH when it has 512, 4 MiB, a result older than 2 ms,
//     or before its next run, saying whether it has more work claimed (the
//     I/O thread may then hold the message a moment, node/result_hold.hpp);
//   - each worker's slot for task timeouts, and the stuck-worker accounting
//     over them (check_timeouts): a task past its deadline is cancelled and
//     reported once; its worker is stuck until the call returns;
//   - the task clock the workers measure for adaptive prefetch.
// It sends nothing to the head and knows no socket but the PUSHes: the I/O
// thread (node/io_loop.hpp) reads the results, decides the credit and what
// to tell the head.
//
// Threads: WorkQueue and WorkerSlot are shared by the I/O thread and the
// workers (a mutex each; a slot's lock is taken only around tasks with a
// timeout); TaskClock by relaxed atomics. A worker's PUSH, result buffer and
// Instances are its own. WorkerPool's methods are called by the thread that
// made it (run_node's, the I/O thread); only the queue and slots are touched
// by workers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/thread_annotations.hpp"
#include "common/zmq_util.hpp"
#include "node/credit.hpp"
#include "services/host.hpp"

namespace zgrid::node {

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

// Batches with unclaimed tasks, oldest first. Thread-safe.
class WorkQueue {
 public:
  void push(std::shared_ptr<Batch> b) {
    {
      MutexLock lock(mu_);
      q_.push_back(std::move(b));
    }
    cv_.notify_all();
  }
  // Claims one task (a serial batch's: all of them, `*index` the first):
  // blocks until there is one or the queue is stopped (false). With `wait`
  // false it returns false at once when there is none.
  bool claim(std::shared_ptr<Batch>* batch, std::size_t* index, bool wait = true) {
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
      if (stopped_ || !wait) return false;
      ++waiting_;
      cv_.wait(lock);
      --waiting_;
    }
  }
  // True when a worker is waiting for work and no task is unclaimed: a task
  // queued now would start at once (the I/O thread may run it itself).
  bool idle() {
    MutexLock lock(mu_);
    if (waiting_ == 0) return false;
    for (const auto& b : q_)
      if (b->next.load(std::memory_order_relaxed) < b->tasks.items.size()) return false;
    return true;
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
  // Claims one unclaimed task of the oldest queued batch, other than `like`,
  // for the same service (a per-call one: neither batch serial) and
  // connection generation, without blocking: a pipelined run takes work from
  // the batches behind its own. False when there is none.
  bool claim_same(const Batch& like, std::shared_ptr<Batch>* batch, std::size_t* index) {
    MutexLock lock(mu_);
    for (auto& b : q_) {
      if (b.get() == &like || b->serial || b->generation != like.generation ||
          b->tasks.service != like.tasks.service || !b->tasks.instance.empty())
        continue;
      if (b->next.load(std::memory_order_relaxed) >= b->tasks.items.size()) continue;
      std::size_t i = b->next.fetch_add(1);
      if (i >= b->tasks.items.size()) continue;
      *batch = b;
      *index = i;
      return true;
    }
    return false;
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
  // Wakes every claim: none blocks again (claims still take what is queued).
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
  int waiting_ ZG_GUARDED_BY(mu_) = 0;  // workers blocked in claim()
  bool stopped_ ZG_GUARDED_BY(mu_) = false;
};

// Per service that may run inline (ServiceInfo::run_inline), the measured
// time of one task: what the I/O thread goes by to decide whether a lone
// task of it is short enough to run itself. Written by whoever ran the
// tasks (a worker at the end of its run of a batch, the I/O thread after an
// inline run), read by the I/O thread; relaxed atomics: an estimate. It
// rises at once (a long task sends the next ones back to the workers) and
// falls by halves. 0: never measured.
class ServiceTimes {
 public:
  explicit ServiceTimes(const svc::Host& host) : n_(host.services().size()) {
    ns_ = std::make_unique<std::atomic<std::uint64_t>[]>(n_);
    for (std::size_t i = 0; i < n_; ++i) {
      index_.push_back(host.services()[i].get());
      ns_[i].store(0, std::memory_order_relaxed);
    }
  }
  // Nanoseconds per task of `h` (0: never measured, or not a service that
  // may run inline).
  std::uint64_t get(const svc::Host::Hosted* h) const {
    auto* a = find(h);
    return a == nullptr ? 0 : a->load(std::memory_order_relaxed);
  }
  // `tasks` tasks of `h` took `ns` in all.
  void note(const svc::Host::Hosted* h, std::uint64_t ns, std::uint64_t tasks) {
    auto* a = find(h);
    if (a == nullptr || tasks == 0 || !h->info.run_inline) return;
    std::uint64_t took = std::max<std::uint64_t>(1, ns / tasks);
    std::uint64_t old = a->load(std::memory_order_relaxed);
    a->store(took >= old ? took : (old + took) / 2, std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t>* find(const svc::Host::Hosted* h) const {
    for (std::size_t i = 0; i < n_; ++i)
      if (index_[i] == h) return &ns_[i];
    return nullptr;
  }
  std::size_t n_;
  std::vector<const svc::Host::Hosted*> index_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> ns_;
};

// A task that ran past its task timeout, as check_timeouts reports it.
struct TimedOut {
  std::uint64_t task_id = 0;
  std::uint64_t generation = 0;
  Millis ran = 0;  // how long it had run when it was found
};

// What the I/O thread needs to enforce a task timeout on one worker: which
// task it runs since when. Only tasks with a timeout touch it (a lock at
// start and end): tasks without one cost nothing here.
//
// A task past its deadline is reported to the head at once (fault
// kTaskTimeout, so only it is charged a try) and cancelled through `cancel`;
// until the call returns, the worker is stuck: the node asks for less
// credit, and when every worker is stuck it hands its queued tasks back.
class WorkerSlot {
 public:
  // The worker: a timed task starts at `now`.
  void begin(std::uint64_t task_id, std::uint64_t generation, Millis now, Millis timeout) {
    MutexLock lock(mu_);
    task_id_ = task_id;
    generation_ = generation;
    started_ = now;
    deadline_ = now + timeout;
    timed_out_ = false;
    cancel_.store(false, std::memory_order_relaxed);
  }
  // The worker: the timed task returned. True when it had been reported timed
  // out (the head runs it elsewhere: its late answer is dropped); the worker
  // is free again either way.
  bool end() {
    MutexLock lock(mu_);
    deadline_ = 0;
    // The flag is the worker's, shared by its next tasks: one without a
    // timeout (no begin()) must not start out cancelled.
    cancel_.store(false, std::memory_order_relaxed);
    if (!timed_out_) return false;
    timed_out_ = false;
    stuck_.store(false);
    return true;
  }
  // The I/O thread: true when the running task is past its deadline and was
  // not reported yet; then it is marked timed out, its call cancelled, the
  // worker stuck, and `*out` says which. Otherwise `*next` is lowered to the
  // time left until a running task's deadline.
  bool check(Millis now, TimedOut* out, Millis* next) {
    MutexLock lock(mu_);
    if (deadline_ == 0 || timed_out_) return false;
    if (now < deadline_) {
      *next = std::min(*next, deadline_ - now);
      return false;
    }
    timed_out_ = true;
    stuck_.store(true);
    cancel_.store(true);
    *out = TimedOut{task_id_, generation_, now - started_};
    return true;
  }
  bool stuck() const { return stuck_.load(); }  // timed out and still inside the call
  const std::atomic<bool>* cancel_flag() const { return &cancel_; }  // Output::cancel_flag

 private:
  Mutex mu_;
  std::uint64_t task_id_ ZG_GUARDED_BY(mu_) = 0;
  std::uint64_t generation_ ZG_GUARDED_BY(mu_) = 0;
  Millis started_ ZG_GUARDED_BY(mu_) = 0;
  Millis deadline_ ZG_GUARDED_BY(mu_) = 0;     // 0: no timed task running
  bool timed_out_ ZG_GUARDED_BY(mu_) = false;  // reported; its answer is dropped
  std::atomic<bool> cancel_{false};            // Output::cancel_flag of the running task
  std::atomic<bool> stuck_{false};             // timed out and still inside the call
};

class WorkerPool {
 public:
  // Starts `workers` threads; each connects its PUSH to `results_endpoint`,
  // a PULL in `ctx` the caller has bound and reads. `faulty`:
  // NodeTestHooks::faulty. The Host must outlive the pool.
  WorkerPool(zmq::context_t& ctx, std::string results_endpoint, svc::Host& host, int workers,
             bool faulty);
  ~WorkerPool();  // stop()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int workers() const { return static_cast<int>(slots_.size()); }
  const TaskClock& task_clock() const { return task_clock_; }
  // Tasks the I/O thread ran itself count in the task clock like the workers'.
  void add_task_time(std::uint64_t ns, std::uint64_t tasks) {
    task_clock_.busy_ns.fetch_add(ns, std::memory_order_relaxed);
    task_clock_.tasks.fetch_add(tasks, std::memory_order_relaxed);
  }
  ServiceTimes& service_times() { return service_times_; }
  // A worker waits for work and nothing is queued (WorkQueue::idle).
  bool idle() { return queue_.idle(); }

  // Queues a batch (at least one task) for the workers.
  void push(std::shared_ptr<Batch> batch) { queue_.push(std::move(batch)); }
  // Drops queued batches of connections older than `generation`.
  void drop_older(std::uint64_t generation) { queue_.drop_older(generation); }
  // Every task no worker has claimed, taken off the queue (to hand back).
  std::vector<Unclaimed> take_all() { return queue_.take_all(); }

  // Task timeouts, counted from when a worker started the task: each task
  // newly past its deadline is cancelled, its worker marked stuck, and
  // appended to `*timed_out` (cleared first). `*stuck`: workers stuck now.
  // Returns the milliseconds until the next deadline (at most a second,
  // at least 1).
  Millis check_timeouts(Millis now, std::vector<TimedOut>* timed_out, std::uint64_t* stuck);

  // Workers finish the run they claimed and end; joins them. Idempotent.
  void stop();

 private:
  void work(WorkerSlot& slot);  // one worker thread

  zmq::context_t& ctx_;
  std::string results_endpoint_;
  svc::Host& host_;
  bool faulty_;
  WorkQueue queue_;
  TaskClock task_clock_;
  ServiceTimes service_times_;
  std::vector<WorkerSlot> slots_;  // one per worker
  std::vector<std::thread> threads_;
};

}  // namespace zgrid::node
