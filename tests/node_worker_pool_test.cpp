// node/worker_pool, node/instances and node/credit in-process: the claim
// order of the work queue, the stuck-worker accounting of the timeout slots,
// the credit, and real worker threads over a service host, their results read
// from the inproc PULL the I/O thread would read. No head, no TCP.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <thread>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "node/credit.hpp"
#include "node/instances.hpp"
#include "node/worker_pool.hpp"
#include "services/host.hpp"
#include "services/service.hpp"
#include "tests/support/fake_head.hpp"

namespace zgrid::node {
namespace {

using namespace std::chrono_literals;

// A `tasks` message as the head sends it, decoded as the I/O thread does.
std::shared_ptr<Batch> MakeBatch(std::string_view service, std::uint64_t first_id,
                                 const std::vector<std::string>& payloads,
                                 std::uint64_t generation = 1, std::uint64_t timeout_ms = 0,
                                 std::string_view instance = {}) {
  auto b = std::make_shared<Batch>();
  b->frame = testing::tasks_message(service, first_id, payloads, timeout_ms, instance);
  EXPECT_TRUE(decode_envelope(b->frame.data(), b->frame.size(), &b->env).ok());
  EXPECT_TRUE(proto::decode_tasks(b->env, &b->tasks).ok());
  b->generation = generation;
  b->serial = !b->tasks.instance.empty();
  return b;
}

std::shared_ptr<Batch> MakeBatch(std::uint64_t first_id, std::size_t n, std::uint64_t gen = 1) {
  return MakeBatch("echo", first_id, std::vector<std::string>(n, "x"), gen);
}

std::uint64_t TaskAt(const Batch& b, std::size_t i) {
  return b.tasks.items[i].task_id;
}

// ---- the work queue ---------------------------------------------------------------

TEST(NodeWorkQueue, ClaimsOneTaskAtATimeOldestBatchFirst) {
  WorkQueue q;
  q.push(MakeBatch(10, 3));
  q.push(MakeBatch(20, 2));
  std::shared_ptr<Batch> b;
  std::size_t i = 0;
  ASSERT_TRUE(q.claim(&b, &i));
  EXPECT_EQ(TaskAt(*b, i), 10u);
  ASSERT_TRUE(WorkQueue::claim_more(b, &i));  // the claimer goes on in its batch
  EXPECT_EQ(TaskAt(*b, i), 11u);
  std::shared_ptr<Batch> other;
  std::size_t j = 0;
  ASSERT_TRUE(q.claim(&other, &j));  // another worker gets the next task of the same batch
  EXPECT_EQ(TaskAt(*other, j), 12u);
  EXPECT_FALSE(WorkQueue::claim_more(b, &i));  // exhausted
  ASSERT_TRUE(q.claim(&b, &i));                // the older batch is gone: the next one
  EXPECT_EQ(TaskAt(*b, i), 20u);
  ASSERT_TRUE(WorkQueue::claim_more(b, &i));
  EXPECT_EQ(TaskAt(*b, i), 21u);
  EXPECT_FALSE(WorkQueue::claim_more(b, &i));
  EXPECT_TRUE(q.take_all().empty());
}

TEST(NodeWorkQueue, AStatefulSessionsBatchIsClaimedWholeByOneWorker) {
  WorkQueue q;
  q.push(MakeBatch("running_sum", 1, {"1", "2", "3"}, 1, 0, "s.1"));
  q.push(MakeBatch(7, 1));
  std::shared_ptr<Batch> b;
  std::size_t i = 0;
  ASSERT_TRUE(q.claim(&b, &i));
  EXPECT_EQ(TaskAt(*b, i), 1u);
  std::shared_ptr<Batch> other;
  std::size_t j = 0;
  ASSERT_TRUE(q.claim(&other, &j));  // not task 2: the claimer has them all
  EXPECT_EQ(TaskAt(*other, j), 7u);
  std::vector<std::uint64_t> order;
  while (WorkQueue::claim_more(b, &i)) order.push_back(TaskAt(*b, i));
  EXPECT_EQ(order, (std::vector<std::uint64_t>{2, 3}));
}

TEST(NodeWorkQueue, TakeAllHandsBackOnlyUnclaimedTasksInOrder) {
  WorkQueue q;
  q.push(MakeBatch(10, 3));
  q.push(MakeBatch(20, 2));
  std::shared_ptr<Batch> b;
  std::size_t i = 0;
  ASSERT_TRUE(q.claim(&b, &i));  // 10 runs
  std::vector<std::uint64_t> back;
  for (const Unclaimed& u : q.take_all()) back.push_back(TaskAt(*u.batch, u.index));
  EXPECT_EQ(back, (std::vector<std::uint64_t>{11, 12, 20, 21}));
  EXPECT_FALSE(WorkQueue::claim_more(b, &i));  // the claimer's batch was handed back too
  EXPECT_TRUE(q.take_all().empty());
}

TEST(NodeWorkQueue, DropOlderKeepsTheCurrentConnectionsWork) {
  WorkQueue q;
  q.push(MakeBatch(10, 2, /*gen=*/1));
  q.push(MakeBatch(20, 2, /*gen=*/2));
  q.push(MakeBatch(30, 1, /*gen=*/1));
  q.drop_older(2);
  std::vector<std::uint64_t> left;
  for (const Unclaimed& u : q.take_all()) left.push_back(TaskAt(*u.batch, u.index));
  EXPECT_EQ(left, (std::vector<std::uint64_t>{20, 21}));
}

TEST(NodeWorkQueue, StopWakesAWaitingWorker) {
  WorkQueue q;
  auto waiter = std::async(std::launch::async, [&] {
    std::shared_ptr<Batch> b;
    std::size_t i = 0;
    return q.claim(&b, &i);
  });
  EXPECT_EQ(waiter.wait_for(50ms), std::future_status::timeout);  // blocked: nothing queued
  q.stop();
  ASSERT_EQ(waiter.wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(waiter.get());
}

// ---- a worker's timeout slot: the stuck-worker accounting -------------------------

TEST(NodeWorkerSlot, ATaskPastItsDeadlineIsReportedOnceAndItsWorkerStuckUntilItReturns) {
  WorkerSlot slot;
  TimedOut t;
  Millis next = 1000;
  EXPECT_FALSE(slot.check(500, &t, &next));  // nothing timed runs
  EXPECT_EQ(next, 1000);

  slot.begin(/*task_id=*/42, /*generation=*/3, /*now=*/100, /*timeout=*/50);
  EXPECT_FALSE(slot.check(120, &t, &next));
  EXPECT_EQ(next, 30);  // time left to its deadline
  EXPECT_FALSE(slot.stuck());
  EXPECT_FALSE(slot.cancel_flag()->load());

  next = 1000;
  ASSERT_TRUE(slot.check(160, &t, &next));
  EXPECT_EQ(t.task_id, 42u);
  EXPECT_EQ(t.generation, 3u);
  EXPECT_EQ(t.ran, 60);
  EXPECT_TRUE(slot.stuck());
  EXPECT_TRUE(slot.cancel_flag()->load());   // the call is asked to give up
  EXPECT_FALSE(slot.check(500, &t, &next));  // reported once
  EXPECT_TRUE(slot.stuck());                 // still inside the call

  EXPECT_TRUE(slot.end());  // returned: its answer is dropped, the worker free
  EXPECT_FALSE(slot.stuck());
  EXPECT_FALSE(slot.check(900, &t, &next));
  // The worker's next task may have no timeout (no begin()): it must not
  // start out cancelled, or it would be killed and charged for its neighbour.
  EXPECT_FALSE(slot.cancel_flag()->load());

  slot.begin(43, 3, 1000, 50);  // a new task starts uncancelled
  EXPECT_FALSE(slot.cancel_flag()->load());
  EXPECT_FALSE(slot.end());  // in time: its answer counts
}

// ---- the credit --------------------------------------------------------------------

TEST(NodeCredit, PrefetchPerFreeWorkerCappedAtTheProtocolLimit) {
  Credit c(4, 10);
  EXPECT_FALSE(c.adaptive());
  EXPECT_EQ(c.capacity(), 40u);
  EXPECT_EQ(c.capacity_for(1), 30u);
  c.set_stuck(3);
  EXPECT_EQ(c.capacity(), 10u);
  EXPECT_FALSE(c.all_stuck());
  c.set_stuck(4);
  EXPECT_EQ(c.capacity(), 0u);
  EXPECT_TRUE(c.all_stuck());
  EXPECT_EQ(c.capacity_for(9), 0u);
  EXPECT_EQ(Credit(4096, 100'000).capacity(), proto::kMaxCapacity);
}

TEST(NodeCredit, AdaptivePrefetchFollowsTheMeasuredTaskTimeAtMostEvery20ms) {
  TaskClock clock;
  Credit fixed(2, 8);
  clock.busy_ns = 1'000'000;
  clock.tasks = 1000;  // 1 us a task
  EXPECT_FALSE(fixed.adapt(100, clock));
  EXPECT_EQ(fixed.prefetch(), 8u);

  Credit c(2, 0);
  EXPECT_TRUE(c.adaptive());
  EXPECT_EQ(c.prefetch(), PrefetchPolicy{}.start);
  EXPECT_FALSE(c.adapt(10, clock));  // not yet 20 ms since the start
  ASSERT_TRUE(c.adapt(20, clock));   // 5 ms of 1 us tasks: the deepest queue
  EXPECT_EQ(c.prefetch(), PrefetchPolicy{}.max);
  EXPECT_EQ(c.capacity(), 2 * PrefetchPolicy{}.max);
  clock.busy_ns += 1'000'000'000;
  clock.tasks += 1000;               // now 1 ms a task
  EXPECT_FALSE(c.adapt(30, clock));  // too soon
  ASSERT_TRUE(c.adapt(40, clock));
  EXPECT_EQ(c.prefetch(), 5u);
  EXPECT_FALSE(c.adapt(60, clock));  // nothing finished since: kept
  EXPECT_EQ(c.prefetch(), 5u);
}

// ---- worker threads over a service host --------------------------------------------

struct Reply {
  std::uint64_t generation;
  std::uint64_t task_id;
  std::string fault;
  std::string data;
  bool more = false;  // its message said the worker had more work claimed
};

// A pool of real workers and the PULL the I/O thread would read.
class PoolFixture {
 public:
  explicit PoolFixture(int workers, bool faulty = false,
                       const std::function<void(svc::Registry&)>& more = {})
      : pull_(ctx_, zmq::socket_type::pull) {
    svc::register_builtins(registry_);
    if (more) more(registry_);
    auto h = svc::Host::start(registry_, {}, workers);
    EXPECT_TRUE(h.ok()) << h.status().ToString();
    host_ = std::move(h).value();
    pull_.set(zmq::sockopt::linger, 0);
    pull_.bind("inproc://node-pool-test");
    pool_ = std::make_unique<WorkerPool>(ctx_, "inproc://node-pool-test", *host_, workers, faulty);
  }
  ~PoolFixture() {
    host_->cancel_all();
    pool_->stop();
    host_->end_all_sessions();
  }
  WorkerPool& pool() { return *pool_; }
  svc::Host& host() { return *host_; }

  // The next results message, or false after `wait` without one.
  bool next_message(std::vector<Reply>* out, std::chrono::milliseconds wait = 10s) {
    out->clear();
    zmq::pollitem_t item{static_cast<void*>(pull_), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) == 0) return false;
    std::vector<zmq::message_t> frames;
    if (zmqu::recv_message(pull_, &frames, 2) != zmqu::RecvStatus::kOk) return false;
    EXPECT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0].size(), sizeof(std::uint64_t) + 1);
    std::uint64_t gen = 0;
    std::memcpy(&gen, frames[0].data(), sizeof gen);
    const bool more = static_cast<const char*>(frames[0].data())[sizeof gen] != 0;
    Envelope env;
    EXPECT_TRUE(decode_envelope(frames[1].data(), frames[1].size(), &env).ok());
    EXPECT_EQ(env.type, proto::kResults);
    proto::Results r;
    EXPECT_TRUE(proto::decode_results(env, &r).ok());
    for (const auto& it : r.items)
      out->push_back({gen, it.task_id, std::string(it.fault_code), std::string(it.data), more});
    return true;
  }

  // Every result until `n` have come (each message at most 512), by task id.
  std::map<std::uint64_t, Reply> collect(std::size_t n) {
    std::map<std::uint64_t, Reply> got;
    std::vector<Reply> msg;
    while (got.size() < n && next_message(&msg)) {
      EXPECT_LE(msg.size(), 512u);
      for (auto& r : msg) EXPECT_TRUE(got.emplace(r.task_id, r).second) << "twice: " << r.task_id;
    }
    return got;
  }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t pull_;
  svc::Registry registry_;
  std::unique_ptr<svc::Host> host_;
  std::unique_ptr<WorkerPool> pool_;
};

TEST(NodeWorkerPool, EveryTaskIsAnsweredOnceTaggedWithItsGeneration) {
  PoolFixture f(2);
  std::vector<std::string> payloads;
  for (int i = 0; i < 1500; ++i) payloads.push_back(std::to_string(i) + "p");
  f.pool().push(MakeBatch("echo", 1000, payloads, /*generation=*/7));
  auto got = f.collect(payloads.size());
  ASSERT_EQ(got.size(), payloads.size());
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    const Reply& r = got.at(1000 + i);
    EXPECT_EQ(r.generation, 7u);
    EXPECT_EQ(r.fault, "");
    EXPECT_EQ(r.data, payloads[i]);
  }
  EXPECT_GT(f.pool().task_clock().tasks.load(), 0u);  // measured for adaptive prefetch
}

TEST(NodeWorkerPool, AWorkerSaysWhetherMoreOfItsResultsAreComing) {
  // One worker; 200 short tasks queued as 200 batches behind a 100 ms one.
  // Each run's results go before the next run, saying "more" while the
  // worker has claimed more work (the I/O thread may hold them a moment,
  // node/result_hold.hpp); the last says it has none.
  PoolFixture f(1);
  f.pool().push(MakeBatch("sleep", 1, {"100"}));
  for (std::uint64_t i = 0; i < 200; ++i) f.pool().push(MakeBatch("echo", 100 + i, {"x"}));
  std::set<std::uint64_t> got;
  std::vector<Reply> msg;
  std::vector<bool> more;
  while (got.size() < 201 && f.next_message(&msg)) {
    more.push_back(msg.front().more);
    for (const Reply& r : msg) {
      EXPECT_EQ(r.fault, "");
      EXPECT_TRUE(got.insert(r.task_id).second) << "twice: " << r.task_id;
    }
  }
  ASSERT_EQ(got.size(), 201u);
  ASSERT_GE(more.size(), 2u);
  EXPECT_TRUE(more.front()) << "the 100 ms task's result: 200 more were claimable";
  EXPECT_FALSE(more.back()) << "the last: nothing left to claim";
}

TEST(NodeWorkerPool, ALoneTasksResultIsSentBeforeTheWorkerWaitsForMore) {
  // Nothing more to claim: the worker sends what it has before it blocks,
  // saying no more is coming, so a lone request's answer never waits.
  PoolFixture f(1);
  for (int round = 0; round < 3; ++round) {
    f.pool().push(MakeBatch("sleep", 10 + round, {"1"}));
    std::vector<Reply> msg;
    ASSERT_TRUE(f.next_message(&msg, 2s)) << "round " << round;
    ASSERT_EQ(msg.size(), 1u);
    EXPECT_EQ(msg[0].task_id, static_cast<std::uint64_t>(10 + round));
    EXPECT_FALSE(msg[0].more);
  }
}

TEST(NodeWorkerPool, UnknownServicesAndTheFaultyHookFaultEveryTask) {
  {
    PoolFixture f(1);
    f.pool().push(MakeBatch("no_such_service", 1, {"a", "b"}));
    auto got = f.collect(2);
    ASSERT_EQ(got.size(), 2u);
    for (auto& [id, r] : got) EXPECT_EQ(r.fault, proto::fault::kUnknownService) << id;
  }
  PoolFixture f(1, /*faulty=*/true);
  f.pool().push(MakeBatch("echo", 1, {"a", "b"}));
  auto got = f.collect(2);
  ASSERT_EQ(got.size(), 2u);
  for (auto& [id, r] : got) {
    EXPECT_EQ(r.fault, proto::fault::kServiceError) << id;
    EXPECT_EQ(r.data, "this node is broken (test hook)");
  }
}

TEST(NodeWorkerPool, AStatefulSessionRunsInOrderAndALostRunSendsTheRestBackUnstarted) {
  PoolFixture f(2);
  f.pool().push(MakeBatch("running_sum", 1, {"1", "2", "3"}, 1, 0, "sess.1"));
  auto got = f.collect(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got.at(1).data, "1");
  EXPECT_EQ(got.at(2).data, "3");
  EXPECT_EQ(got.at(3).data, "6");
  // A task of an older connection gets no instance (retryable): its
  // instance's state is suspect, so the rest of the message is not run.
  f.host().end_all_sessions(/*generation=*/5);
  f.pool().push(MakeBatch("running_sum", 10, {"1", "2", "3"}, /*generation=*/4, 0, "sess.2"));
  got = f.collect(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got.at(10).fault, proto::fault::kRetryable);
  EXPECT_EQ(got.at(11).fault, proto::fault::kNotRun);
  EXPECT_EQ(got.at(12).fault, proto::fault::kNotRun);
}

// The stuck-worker accounting as the I/O thread drives it: a task past its
// timeout is reported once, its worker counts as stuck (queued tasks can be
// handed back) until the call returns, and its late answer is dropped.
TEST(NodeWorkerPool, ATimedOutTaskStaysStuckUntilItReturnsAndItsAnswerIsDropped) {
  PoolFixture f(1);
  std::vector<TimedOut> timed_out;
  std::uint64_t stuck = 0;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  auto wait_for = [&](const std::function<bool()>& cond) {
    while (!cond() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(2ms);
    return cond();
  };
  // The sleep service gives up when cancelled.
  f.pool().push(MakeBatch("sleep", 5, {"60000"}, /*generation=*/2, /*timeout_ms=*/500));
  // Running: its slot has a deadline, so the next check is due in under a second.
  std::vector<TimedOut> reported;
  ASSERT_TRUE(wait_for([&] {
    Millis next = f.pool().check_timeouts(SteadyClock::instance().now_ms(), &timed_out, &stuck);
    reported.insert(reported.end(), timed_out.begin(), timed_out.end());
    return next < 1000 || !reported.empty();
  }));
  ASSERT_TRUE(reported.empty()) << "the machine stalled past the task's timeout";
  f.pool().push(MakeBatch(100, 3, /*gen=*/2));  // queued behind the sleeping worker
  std::vector<std::uint64_t> back;
  for (const Unclaimed& u : f.pool().take_all()) back.push_back(TaskAt(*u.batch, u.index));
  EXPECT_EQ(back, (std::vector<std::uint64_t>{100, 101, 102}));  // none was started

  ASSERT_TRUE(wait_for([&] {
    f.pool().check_timeouts(SteadyClock::instance().now_ms(), &timed_out, &stuck);
    reported.insert(reported.end(), timed_out.begin(), timed_out.end());
    return !reported.empty();
  }));
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].task_id, 5u);
  EXPECT_EQ(reported[0].generation, 2u);
  EXPECT_GE(reported[0].ran, 500);
  // Cancelled, the call returns soon: the worker is free again, and the
  // timed-out task is not reported twice.
  ASSERT_TRUE(wait_for([&] {
    f.pool().check_timeouts(SteadyClock::instance().now_ms(), &timed_out, &stuck);
    EXPECT_TRUE(timed_out.empty());
    return stuck == 0;
  }));
  f.pool().push(MakeBatch(200, 1, /*gen=*/2));
  auto got = f.collect(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got.begin()->first, 200u);  // not 5: its late answer was dropped
  std::vector<Reply> more;
  EXPECT_FALSE(f.next_message(&more, 100ms));
}

// ---- pipelined runs -----------------------------------------------------------------

// A service that takes up to 64 requests at once and records how many each
// run_pipelined call got. "gate" waits for Piped::open; "sleep:MS" sleeps;
// "wait" waits until cancelled (a task timeout); anything else is echoed.
struct Piped final : svc::Service {
  static inline std::mutex mu;
  static inline std::vector<std::size_t> runs;
  static inline std::atomic<bool> open{false};
  void handle(std::string_view request, svc::Output& out) override { run("", request, out); }
  void run(std::string_view, std::string_view request, svc::Output& out) override {
    if (request == "gate") {
      while (!open.load()) std::this_thread::sleep_for(1ms);
    } else if (request.rfind("sleep:", 0) == 0) {
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::stoi(std::string(request.substr(6)))));
    } else if (request == "wait") {
      while (!out.cancelled()) std::this_thread::sleep_for(1ms);
      return out.fault(svc::kRetryable, "cancelled");
    }
    out.data.assign(request);
  }
  std::size_t pipeline_depth() const override { return 64; }
  void run_pipelined(std::string_view operation, std::span<const std::string_view> requests,
                     std::span<svc::Output> out,
                     const std::function<void(std::size_t)>& done) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      runs.push_back(requests.size());
    }
    Service::run_pipelined(operation, requests, out, done);
  }
  static void reset() {
    std::lock_guard<std::mutex> lock(mu);
    runs.clear();
    open = false;
  }
  static std::vector<std::size_t> seen() {
    std::lock_guard<std::mutex> lock(mu);
    return runs;
  }
};

void AddPiped(svc::Registry& r) {
  r.add("piped", [] { return std::unique_ptr<svc::Service>(std::make_unique<Piped>()); });
}

// Micro-tasks arriving as many small batches share runs (tasks claimed from
// the batches behind the first), each answered once, correctly.
TEST(NodeWorkerPool, APipelinedServiceTakesShortTasksManyARunAcrossBatches) {
  Piped::reset();
  PoolFixture f(1, false, AddPiped);
  f.pool().push(MakeBatch("piped", 1, {"gate"}));
  std::vector<std::string> four{"a", "b", "c", "d"};
  for (int b = 0; b < 100; ++b) f.pool().push(MakeBatch("piped", 100 + 4 * b, four));
  Piped::open = true;
  auto got = f.collect(401);
  ASSERT_EQ(got.size(), 401u);
  for (int i = 0; i < 400; ++i) EXPECT_EQ(got.at(100 + i).data, four[i % 4]) << i;
  auto runs = Piped::seen();
  std::size_t most = *std::max_element(runs.begin(), runs.end());
  EXPECT_GT(most, 4u);   // more than one batch in a run
  EXPECT_LE(most, 64u);  // never past the depth
}

// Long tasks are not held behind each other: one per run, spread over the workers.
TEST(NodeWorkerPool, APipelinedServiceRunsLongTasksOneARun) {
  Piped::reset();
  PoolFixture f(2, false, AddPiped);
  f.pool().push(MakeBatch("piped", 1, std::vector<std::string>(12, "sleep:15")));
  auto got = f.collect(12);
  ASSERT_EQ(got.size(), 12u);
  auto runs = Piped::seen();
  EXPECT_EQ(*std::max_element(runs.begin(), runs.end()), 1u);
}

// Each task of a run keeps its own timeout: the one past it is reported and
// its answer dropped; those before and after it are answered.
TEST(NodeWorkerPool, APipelinedRunTimesEachTaskFromThePreviousAnswer) {
  Piped::reset();
  PoolFixture f(1, false, AddPiped);
  f.pool().push(MakeBatch("piped", 1, {"warm"}));
  ASSERT_EQ(f.collect(1).size(), 1u);
  f.pool().push(MakeBatch("piped", 10, {"a", "b", "wait", "c", "d"}, 1, /*timeout_ms=*/300));
  std::vector<TimedOut> timed_out, reported;
  std::uint64_t stuck = 0;
  std::map<std::uint64_t, Reply> got;
  std::vector<Reply> msg;
  auto until = std::chrono::steady_clock::now() + 10s;
  while (got.size() < 4 && std::chrono::steady_clock::now() < until) {
    f.pool().check_timeouts(SteadyClock::instance().now_ms(), &timed_out, &stuck);
    reported.insert(reported.end(), timed_out.begin(), timed_out.end());
    if (f.next_message(&msg, 5ms)) {
      for (auto& r : msg) EXPECT_TRUE(got.emplace(r.task_id, r).second);
    }
  }
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0].task_id, 12u);
  EXPECT_GE(reported[0].ran, 300);
  EXPECT_EQ(got.size(), 4u);
  EXPECT_EQ(got.count(12), 0u);  // dropped: the head runs it again
  for (std::uint64_t id : {10, 11, 13, 14}) EXPECT_EQ(got.at(id).fault, "") << id;
  EXPECT_FALSE(f.next_message(&msg, 100ms));
}

// A call that ignores cancellation keeps its worker stuck for as long as it runs.
TEST(NodeWorkerPool, ACallThatIgnoresCancellationKeepsItsWorkerStuck) {
  PoolFixture f(2);
  std::vector<TimedOut> timed_out;
  std::uint64_t stuck = 0;
  const Millis pushed = SteadyClock::instance().now_ms();
  f.pool().push(MakeBatch("fail", 1, {"hang:600"}, 1, /*timeout_ms=*/50));
  auto until = std::chrono::steady_clock::now() + 10s;
  std::uint64_t most = 0;
  Millis freed_at = 0;
  while (std::chrono::steady_clock::now() < until) {
    Millis now = SteadyClock::instance().now_ms();
    f.pool().check_timeouts(now, &timed_out, &stuck);
    most = std::max(most, stuck);
    if (most > 0 && stuck == 0) {
      freed_at = now;
      break;
    }
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_EQ(most, 1u);  // one of two workers
  ASSERT_GT(freed_at, 0);
  EXPECT_GE(freed_at - pushed, 600);  // stuck until hang:600 returned by itself
}

}  // namespace
}  // namespace zgrid::node
