// node/io_loop's lone tasks run inline (docs/architecture.md, "Lone tasks
// run inline"): a short task of a service that declares it may
// (ServiceInfo::run_inline) runs on the I/O thread once the service has been
// measured, while a worker is idle; anything long, unmeasured, undeclared,
// stateful or in a bigger message goes to the workers; an inline task past
// its timeout is reported task_timeout and its answer dropped. The head is
// a fake (tests/support/fake_head.hpp); the node is run_node on a thread of
// this process, so the thread a task ran on tells where it ran.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "node/io_loop.hpp"
#include "node/node.hpp"
#include "node/worker_pool.hpp"
#include "services/service.hpp"
#include "tests/support/fake_head.hpp"

namespace zgrid::node {
namespace {

using namespace std::chrono_literals;
using zgrid::testing::FakeHead;
using zgrid::testing::Got;

// Records the thread each request ran on. "sleep:MS" sleeps MS
// milliseconds, "throw" throws; anything else is echoed.
struct Probe final : svc::Service {
  static inline std::mutex mu;
  static inline std::map<std::string, std::thread::id> ran_on;
  void handle(std::string_view request, svc::Output& out) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      ran_on[std::string(request)] = std::this_thread::get_id();
    }
    if (request.rfind("sleep:", 0) == 0)
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::stoi(std::string(request.substr(6)))));
    if (request == "throw") throw std::runtime_error("requested exception");
    out.data.assign(request);
  }
  Status open_session(std::string_view) override { return Status::OK(); }
  static std::thread::id where(const std::string& request) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ran_on.find(request);
    return it == ran_on.end() ? std::thread::id() : it->second;
  }
};

void AddProbes(svc::Registry& r) {
  for (bool run_inline : {true, false}) {
    svc::ServiceInfo info;
    info.name = run_inline ? "probe" : "probe_workers";  // the second never declares it
    info.run_inline = run_inline;
    info.sessions = true;
    info.make = []() -> Result<std::unique_ptr<svc::Service>> {
      return std::unique_ptr<svc::Service>(std::make_unique<Probe>());
    };
    ASSERT_TRUE(r.add(std::move(info)).ok());
  }
}

// run_node on a thread (two workers), registered with `head`.
class InlineNode {
 public:
  explicit InlineNode(FakeHead& head) : head_(head) {
    svc::register_builtins(registry_);
    AddProbes(registry_);
    o_.head = head.endpoint();
    o_.workers = 2;
    o_.prefetch = 4;
    o_.node_id = "n1";
    thread_ = std::thread([this] { status_ = run_node(o_, registry_, stop_); });
    Got reg;
    EXPECT_TRUE(head.recv_type(proto::kRegister, &reg, 10'000));
    rid_ = reg.rid;
    head.registered(reg, 1, /*hb_ms=*/60'000);  // no reconnect while the test runs
  }
  ~InlineNode() {
    stop_ = true;
    thread_.join();
    EXPECT_TRUE(status_.ok()) << status_.ToString();
  }
  std::thread::id io_thread() const { return thread_.get_id(); }

  // Sends one task (or a message of several) and waits for every answer, by task id.
  std::map<std::uint64_t, std::pair<std::string, std::string>> run(
      std::string_view service, std::uint64_t first_id, const std::vector<std::string>& payloads,
      std::uint64_t timeout_ms = 0, std::string_view instance = {}) {
    head_.tasks(rid_, service, first_id, payloads, timeout_ms, instance);
    std::map<std::uint64_t, std::pair<std::string, std::string>> got;  // fault, data
    Got m;
    while (got.size() < payloads.size() && head_.recv_type(proto::kResults, &m, 10'000))
      for (const auto& r : m.results)
        got[r.task_id] = {std::string(r.fault_code), std::string(r.data)};
    return got;
  }
  // Where a request ran: true on the I/O thread.
  bool ran_inline(const std::string& request) const {
    std::thread::id where = Probe::where(request);
    EXPECT_NE(where, std::thread::id()) << request << " did not run";
    return where == io_thread();
  }

 private:
  FakeHead& head_;
  svc::Registry registry_;
  NodeOptions o_;
  std::atomic<bool> stop_{false};
  Status status_;
  std::thread thread_;
  std::string rid_;
};

using Answer = std::pair<std::string, std::string>;  // fault code, data

// Sends one-task messages of `service` (ids from `*id` on) until one runs on
// the I/O thread, at most 20: the estimate starts at the first (worker's)
// run, which a loaded machine may have slowed past the budget; it falls
// by halves. Returns whether one did.
bool WarmUp(InlineNode& node, std::string_view service, std::uint64_t* id) {
  for (int i = 0; i < 20; ++i, ++*id) {
    std::string p = "warm" + std::to_string(*id);
    if (node.run(service, *id, {p}).at(*id) != Answer{"", p}) return false;
    if (node.ran_inline(p)) return true;
  }
  return false;
}

TEST(NodeInline, ALoneShortTaskRunsOnTheIoThreadOnceItsServiceWasMeasured) {
  zmq::context_t ctx(1);
  FakeHead head(ctx);
  InlineNode node(head);
  // Never measured: a worker runs it (and measures it).
  EXPECT_EQ(node.run("probe", 1, {"a1"}).at(1), (Answer{"", "a1"}));
  EXPECT_FALSE(node.ran_inline("a1"));
  std::uint64_t id = 2;
  ASSERT_TRUE(WarmUp(node, "probe", &id));
  // Measured short, a worker idle, nothing queued: the I/O thread runs them
  // (all but a few a stalled machine may have measured long).
  int inline_runs = 0;
  for (int i = 0; i < 20; ++i, ++id) {
    std::string p = "a" + std::to_string(id);
    EXPECT_EQ(node.run("probe", id, {p}).at(id), (Answer{"", p}));
    if (node.ran_inline(p)) ++inline_runs;
  }
  EXPECT_GE(inline_runs, 15);
  // A few in one message too; an exception faults its task only, as on a
  // worker; the answers are exact.
  bool ran_inline = false;
  for (int round = 0; round < 5 && !ran_inline; ++round, id += 3) {
    std::string b1 = "b1." + std::to_string(round), b3 = "b3." + std::to_string(round);
    auto got = node.run("probe", id, {b1, "throw", b3});
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got.at(id), (Answer{"", b1}));
    EXPECT_EQ(got.at(id + 1), (Answer{"service_error", "requested exception"}));
    EXPECT_EQ(got.at(id + 2), (Answer{"", b3}));
    ran_inline = node.ran_inline(b1) && node.ran_inline(b3);
  }
  EXPECT_TRUE(ran_inline);
}

TEST(NodeInline, UndeclaredBigStatefulAndLongTasksRunOnTheWorkers) {
  zmq::context_t ctx(1);
  FakeHead head(ctx);
  InlineNode node(head);
  // A service that does not declare run_inline: always a worker.
  for (int i = 1; i <= 5; ++i) {
    std::string p = "w" + std::to_string(i);
    EXPECT_EQ(node.run("probe_workers", i, {p}).at(i), (Answer{"", p}));
    EXPECT_FALSE(node.ran_inline(p)) << p;
  }
  std::uint64_t id = 10;
  ASSERT_TRUE(WarmUp(node, "probe", &id));
  // More than kMaxInlineTasks in one message: the workers.
  std::vector<std::string> many;
  for (std::size_t i = 0; i <= IoLoop::kMaxInlineTasks; ++i)
    many.push_back("n" + std::to_string(i));
  auto got = node.run("probe", 100, many);
  ASSERT_EQ(got.size(), many.size());
  for (std::size_t i = 0; i < many.size(); ++i) {
    EXPECT_EQ(got.at(100 + i), (Answer{"", many[i]}));
    EXPECT_FALSE(node.ran_inline(many[i])) << many[i];
  }
  // A stateful session's tasks: its own instance, on a worker, in order.
  ASSERT_TRUE(WarmUp(node, "probe", &id));
  got = node.run("probe", 200, {"s1", "s2"}, 0, "sess.1");
  EXPECT_EQ(got.at(200), (Answer{"", "s1"}));
  EXPECT_EQ(got.at(201), (Answer{"", "s2"}));
  EXPECT_FALSE(node.ran_inline("s1"));
  EXPECT_FALSE(node.ran_inline("s2"));
  ASSERT_TRUE(WarmUp(node, "probe", &id));
  // A long task (over the budget) runs inline once, then is measured: the
  // next go to the workers until the estimate falls back.
  ASSERT_EQ(node.run("probe", 300, {"sleep:5"}).at(300).second, "sleep:5");
  EXPECT_TRUE(node.ran_inline("sleep:5"));
  ASSERT_EQ(node.run("probe", 301, {"after"}).at(301).second, "after");
  EXPECT_FALSE(node.ran_inline("after")) << "the 5 ms task's estimate is over the budget";
}

TEST(NodeInline, AnInlineTaskPastItsTimeoutFaultsTaskTimeoutAndItsAnswerIsDropped) {
  zmq::context_t ctx(1);
  FakeHead head(ctx);
  InlineNode node(head);
  std::uint64_t id = 1;
  ASSERT_TRUE(WarmUp(node, "probe", &id));
  // Runs inline (its estimate is short) and overruns its 5 ms timeout: the
  // head hears task_timeout, not the answer.
  auto got = node.run("probe", 100, {"sleep:30"}, /*timeout_ms=*/5);
  EXPECT_TRUE(node.ran_inline("sleep:30"));
  EXPECT_EQ(got.at(100).first, proto::fault::kTaskTimeout);
  EXPECT_NE(got.at(100).second.find("ran past its task timeout"), std::string::npos);
  // The next is long by the estimate now: a worker runs it, reported at
  // the deadline, its answer dropped.
  got = node.run("probe", 101, {"sleep:300"}, /*timeout_ms=*/50);
  EXPECT_FALSE(node.ran_inline("sleep:300"));
  EXPECT_EQ(got.at(101).first, proto::fault::kTaskTimeout);
}

// ---- the work queue's idle check ---------------------------------------------------

TEST(NodeWorkQueue, IdleOnlyWhileAWorkerWaitsAndNothingIsUnclaimed) {
  WorkQueue q;
  EXPECT_FALSE(q.idle()) << "no worker waits";
  std::shared_ptr<Batch> b;
  std::size_t i = 0;
  std::atomic<bool> claimed{false};
  std::thread worker([&] { claimed = q.claim(&b, &i); });
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!q.idle() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(q.idle()) << "the worker waits, nothing queued";
  q.stop();
  worker.join();
  EXPECT_FALSE(claimed.load());
}

}  // namespace
}  // namespace zgrid::node
