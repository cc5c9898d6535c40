#include "node/worker_pool.hpp"

#include <chrono>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "node/instances.hpp"

namespace zgrid::node {

namespace {

constexpr std::size_t kMaxResultBytes = 4u << 20;
// A pipelined run holds about this much work at its service's measured task
// time: micro-tasks share a round trip, long ones still spread one at a time
// across the workers (a task claimed into a run waits for those before it).
constexpr double kPipelineWorkNs = 2e6;

// Results of one worker, sent in messages of at most kMaxResultBytes (well
// under the 8 MiB frame limit) or kMaxResultItems, and at least every
// kMaxResultDelay while tasks keep coming, so results stream back.
class ResultBuffer {
 public:
  explicit ResultBuffer(zmq::socket_t& push) : push_(push) {}
  // `now`: when the task finished (the worker reads the clock once per task).
  void add(std::uint64_t generation, std::uint64_t task_id, const svc::Output& out,
           std::chrono::steady_clock::time_point now) {
    if (count_ > 0 && generation != generation_) flush(/*more=*/true);
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
      flush(/*more=*/true);  // mid-run: the run goes on
  }
  // Sends what is buffered. `more`: this worker has more work claimed, so
  // its next results come soon (the I/O thread may hold this message for
  // them, node/result_hold.hpp). Returns false when the node is stopping
  // (context terminated).
  bool flush(bool more) {
    if (count_ == 0) return true;
    body_.patch_array32(count_at_, count_);
    zmq::message_t gen(sizeof(std::uint64_t) + 1);
    std::memcpy(gen.data(), &generation_, sizeof(std::uint64_t));
    static_cast<char*>(gen.data())[sizeof(std::uint64_t)] = more ? 1 : 0;
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

}  // namespace

WorkerPool::WorkerPool(zmq::context_t& ctx, std::string results_endpoint, svc::Host& host,
                       int workers, bool faulty)
    : ctx_(ctx),
      results_endpoint_(std::move(results_endpoint)),
      host_(host),
      faulty_(faulty),
      service_times_(host),
      slots_(static_cast<std::size_t>(workers)) {
  for (WorkerSlot& slot : slots_) threads_.emplace_back([this, &slot] { work(slot); });
}

WorkerPool::~WorkerPool() {
  stop();
}

void WorkerPool::stop() {
  queue_.stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

Millis WorkerPool::check_timeouts(Millis now, std::vector<TimedOut>* timed_out,
                                  std::uint64_t* stuck) {
  timed_out->clear();
  Millis next = 1000;
  *stuck = 0;
  for (WorkerSlot& slot : slots_) {
    TimedOut t;
    if (slot.check(now, &t, &next)) timed_out->push_back(t);
    if (slot.stuck()) ++*stuck;
  }
  return std::max<Millis>(1, next);
}

void WorkerPool::work(WorkerSlot& slot) {
  zmq::socket_t push(ctx_, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 0);
  push.set(zmq::sockopt::sndhwm, 0);  // inproc to our own I/O thread: never drop
  push.connect(results_endpoint_);

  Instances instances(host_, slots_.size(), faulty_);
  svc::Output out;
  out.cancel_flag = slot.cancel_flag();
  ResultBuffer results(push);
  std::shared_ptr<Batch> batch;
  std::size_t index = 0;
  // Pipelined runs: the tasks claimed together, their outputs (reused), and
  // per service the measured time per task of its pipelined runs.
  struct Claim {
    std::shared_ptr<Batch> batch;
    std::size_t index;
  };
  std::vector<Claim> claims;
  std::vector<std::string_view> payloads;
  std::vector<svc::Output> outs;
  std::unordered_map<const void*, double> pipeline_ns;
  // Task time, published to task_clock_ at most every millisecond of work (an
  // atomic add per task would be shared-cache traffic for microsecond tasks).
  using SteadyTime = std::chrono::steady_clock::time_point;
  SteadyTime last;
  std::uint64_t busy_ns = 0, tasks = 0;
  auto publish = [&] {
    if (tasks == 0) return;
    task_clock_.busy_ns.fetch_add(busy_ns, std::memory_order_relaxed);
    task_clock_.tasks.fetch_add(tasks, std::memory_order_relaxed);
    busy_ns = tasks = 0;
  };
  while (true) {
    publish();
    batch.reset();
    // Send what this worker has before the next run, saying whether more
    // work is claimed already (the I/O thread may then hold the message a
    // moment for the next results); nothing claimable: send, then block.
    bool claimed = queue_.claim(&batch, &index, /*wait=*/false);
    if (!results.flush(/*more=*/claimed)) break;
    if (!claimed && !queue_.claim(&batch, &index)) break;
    last = std::chrono::steady_clock::now();
    const Instances::Resolved& svc = instances.resolve(batch->tasks.service);
    const Millis timeout = static_cast<Millis>(batch->tasks.timeout_ms);
    // This run's successful tasks and their time, for the service's estimate
    // (ServiceTimes: services that may run inline only).
    std::uint64_t run_ns = 0, run_tasks = 0;
    // `session`: the instance key of a stateful session's task (else empty:
    // the task runs on `instance`, leased from the pool).
    // Returns false when the task's run was lost (it faulted `retryable` or
    // ran past its timeout).
    auto run_one = [&](svc::Service* instance, std::string_view session) -> bool {
      const proto::Task& task = batch->tasks.items[index];
      if (timeout > 0)
        slot.begin(task.task_id, batch->generation, SteadyClock::instance().now_ms(), timeout);
      if (session.empty())
        instances.run(instance, svc, task, out);
      else
        instances.run_session(svc, session, batch->generation, task, out);
      if (timeout > 0 && slot.end()) {
        // The I/O thread reported this task timed out and the head runs it
        // elsewhere: its late answer is dropped. The worker is free again.
        SteadyTime now = std::chrono::steady_clock::now();
        run_ns += static_cast<std::uint64_t>(  // a long task: none runs inline for a while
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count());
        ++run_tasks;
        last = now;
        return false;
      }
      SteadyTime now = std::chrono::steady_clock::now();
      // Only successful runs say how long the work takes: a broken service
      // that faults at once must not earn its node a deep queue.
      if (out.fault_code.empty()) {
        std::uint64_t took = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count());
        busy_ns += took;
        ++tasks;
        run_ns += took;
        ++run_tasks;
      }
      last = now;
      if (busy_ns >= 1'000'000) publish();
      results.add(batch->generation, task.task_id, out, now);
      return out.fault_code != svc::kRetryable;
    };
    // A pipelined run (a pooled instance whose pipeline_depth() > 1): up to
    // `depth` tasks of this batch claimed together, at most about
    // kPipelineWork of work at this service's measured task time, and run
    // through Instances::run_pipelined with per-task semantics: each task's
    // timeout counts from when the previous one's answer came back, each
    // result is added as it comes.
    auto run_many = [&](svc::Service* instance, std::size_t depth) {
      double& per_task = pipeline_ns[svc.service];
      std::size_t want = 1;  // never measured: one, then grow
      if (per_task > 0) {
        double fit = kPipelineWorkNs / per_task;
        want = fit < 1 ? 1 : std::min(depth, static_cast<std::size_t>(fit));
      }
      // This batch's tasks first, then those of the batches queued behind it
      // for the same service (a client streaming calls one at a time makes
      // many small batches).
      claims.clear();
      claims.push_back({batch, index});
      while (claims.size() < want && WorkQueue::claim_more(batch, &index))
        claims.push_back({batch, index});
      std::shared_ptr<Batch> other;
      std::size_t other_index = 0;
      while (claims.size() < want && queue_.claim_same(*batch, &other, &other_index))
        claims.push_back({other, other_index});
      const std::size_t n = claims.size();
      if (outs.size() < n) {
        outs.resize(n);
        for (svc::Output& o : outs) o.cancel_flag = slot.cancel_flag();
      }
      payloads.clear();
      for (const Claim& c : claims) payloads.push_back(c.batch->tasks.items[c.index].payload);
      // Times claim i's task from now, if it has a timeout.
      auto begin = [&](std::size_t i) {
        const Batch& b = *claims[i].batch;
        if (b.tasks.timeout_ms > 0)
          slot.begin(b.tasks.items[claims[i].index].task_id, b.generation,
                     SteadyClock::instance().now_ms(), static_cast<Millis>(b.tasks.timeout_ms));
      };
      const SteadyTime run_start = std::chrono::steady_clock::now();
      begin(0);
      instances.run_pipelined(instance, svc, payloads, outs, [&](std::size_t i) {
        const Batch& b = *claims[i].batch;
        const proto::Task& task = b.tasks.items[claims[i].index];
        const svc::Output& o = outs[i];
        // Reported timed out: the head runs it elsewhere, its late answer is dropped.
        bool dropped = b.tasks.timeout_ms > 0 && slot.end();
        SteadyTime now = std::chrono::steady_clock::now();
        if (!dropped) {
          if (o.fault_code.empty()) {
            busy_ns += static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count());
            ++tasks;
          }
          results.add(b.generation, task.task_id, o, now);
        }
        last = now;
        if (busy_ns >= 1'000'000) publish();
        if (i + 1 < n) begin(i + 1);
      });
      // Rise at once (long tasks must spread across workers again), fall by halves.
      double took = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            std::chrono::steady_clock::now() - run_start)
                                            .count()) /
                    static_cast<double>(n);
      per_task = took >= per_task ? took : (per_task + took) / 2;
      claims.clear();  // lets go of the other batches
    };
    switch (instances.way(svc, batch->tasks)) {
      case Instances::Way::kUnresolved:
        do run_one(nullptr, {});
        while (WorkQueue::claim_more(batch, &index));
        break;
      case Instances::Way::kSession: {
        // A stateful session: its own instance, not one of the pool, the
        // message's tasks in order. Once a run is lost the instance's state
        // is suspect (the head starts a fresh one): the rest go back unstarted.
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
        break;
      }
      case Instances::Way::kLeasePerRun: {
        svc::Host::Lease lease = instances.lease(svc);
        std::size_t depth = lease->pipeline_depth();
        if (depth > 1) {
          do run_many(lease.get(), depth);
          while (WorkQueue::claim_more(batch, &index));
          break;
        }
        do run_one(lease.get(), {});
        while (WorkQueue::claim_more(batch, &index));
        break;
      }
      case Instances::Way::kLeasePerTask:
        do {
          svc::Host::Lease lease = instances.lease(svc);
          std::size_t depth = lease->pipeline_depth();
          if (depth > 1)
            run_many(lease.get(), depth);  // a lease per pipelined run
          else
            run_one(lease.get(), {});
        } while (WorkQueue::claim_more(batch, &index));
        break;
    }
    if (run_tasks > 0 && svc.service != nullptr && svc.service->info.run_inline)
      service_times_.note(svc.service, run_ns, run_tasks);
  }
  (void)results.flush(/*more=*/false);
}

}  // namespace zgrid::node
