// node/io_loop's failover (docs/operations.md, "Failover: nodes"): a node
// given several heads registers with one at a time, follows a standby's
// not_active to the active head, finds a head that took over within a
// fraction of a second of the old one falling silent, drops the old head's
// work, and never stays with a head whose epoch is older than one it saw.
// The heads are fakes: ROUTERs on loopback in the test thread, answering as
// docs/protocol.md ("Nodes", "Failover") says. The node is run_node on a
// thread of this process.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <thread>

#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/zmq_util.hpp"
#include "node/node.hpp"
#include "services/service.hpp"
#include "tests/support/fake_head.hpp"

namespace zgrid::node {
namespace {

using zgrid::testing::FakeHead;
using zgrid::testing::Got;

// run_node on a thread, stopped and joined when it goes.
class Node {
 public:
  explicit Node(const std::string& heads) {
    svc::register_builtins(registry_);
    o_.head = heads;
    o_.workers = 2;
    o_.prefetch = 4;
    o_.node_id = "n1";
    o_.heartbeat_ms = 200;
    thread_ = std::thread([this] { status_ = run_node(o_, registry_, stop_); });
  }
  ~Node() {
    stop_ = true;
    thread_.join();
    EXPECT_TRUE(status_.ok()) << status_.ToString();
  }

 private:
  svc::Registry registry_;
  NodeOptions o_;
  std::atomic<bool> stop_{false};
  Status status_;
  std::thread thread_;
};

Millis Now() {
  return SteadyClock::instance().now_ms();
}

// The whole takeover at the default heartbeat (1 s x 3): A active (epoch
// 3), B a standby that names A. While A talks, B hears nothing. A falls
// silent with a task running; B takes over (epoch 4): the node registers
// with B within a fraction of a second of 1.5 heartbeats — before it would
// have given A up — says so in one line, and the task's result, of A's
// generation, never reaches B.
TEST(NodeFailover, FindsTheHeadThatTookOverAndDropsTheOldHeadsWork) {
  zmq::context_t ctx(1);
  FakeHead a(ctx), b(ctx);
  ::testing::internal::CaptureStderr();
  auto node = std::make_unique<Node>(a.endpoint() + "," + b.endpoint());

  // At start the node asks both: A registers it, B says A is active.
  Got reg;
  ASSERT_TRUE(a.recv_type(proto::kRegister, &reg, 10'000));
  a.registered(reg, 3, 1'000);
  Got breg;
  ASSERT_TRUE(b.recv_type(proto::kRegister, &breg, 10'000));
  b.not_active(breg, 3, a.endpoint());
  std::string rid = reg.rid;

  // A healthy head: heartbeats every 500 ms for 2.5 s; B hears nothing
  // (beyond registers the node sent before A answered).
  Got m;
  ASSERT_TRUE(a.recv_type(proto::kHeartbeat, &m, 5'000));
  Millis quiet_from = Now() + 300;
  std::size_t late_registers = 0;
  for (Millis until = Now() + 2'500; Now() < until;) {
    a.heartbeat(rid);
    while (a.recv(&m, 0)) {
    }
    for (Millis next = Now() + 500; Now() < next;)
      if (b.recv(&m, next - Now()) && Now() > quiet_from) ++late_registers;
  }
  EXPECT_EQ(late_registers, 0u) << "the node asked B while A was talking";

  // A task that takes 800 ms, then A goes silent.
  a.tasks(rid, "sleep", 1, "800");
  const Millis silent_from = Now();

  // B hears registers after ~1.5 heartbeats of silence: the first while
  // the lease is still A's, then during the takeover, then B is active.
  ASSERT_TRUE(b.recv_type(proto::kRegister, &breg, 5'000));
  Millis first_probe = Now() - silent_from;
  EXPECT_GE(first_probe, 1'400) << "asked before A was silent for 1.5 heartbeats";
  b.not_active(breg, 3, a.endpoint());
  ASSERT_TRUE(b.recv_type(proto::kRegister, &breg, 5'000));
  b.not_active(breg, 4, "");
  ASSERT_TRUE(b.recv_type(proto::kRegister, &breg, 5'000));
  b.registered(breg, 4);
  Millis switched = Now() - silent_from;
  ASSERT_TRUE(b.recv_type(proto::kHeartbeat, &m, 2'000));
  EXPECT_LT(switched, 3'000) << "the node waited for the full silence";

  // A's task finishes ~800 ms after it came: its result is not forwarded to
  // B. B's own task is answered.
  b.tasks(breg.rid, "echo", 100, "hello");
  std::set<std::uint64_t> at_b;
  for (Millis until = Now() + 1'500; Now() < until;) {
    b.heartbeat(breg.rid);
    if (b.recv(&m, 100) && m.type == proto::kResults)
      for (const auto& r : m.results) at_b.insert(r.task_id);
  }
  EXPECT_EQ(at_b, (std::set<std::uint64_t>{100}));
  node.reset();
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("head " + a.endpoint() + " silent for "), std::string::npos) << log;
  EXPECT_NE(log.find("; registered with " + b.endpoint() + " (epoch 4)"), std::string::npos) << log;
  EXPECT_EQ(log.find("reconnecting"), std::string::npos) << log;
}

// A node given only a standby goes to the active head it names, though that
// head is not in its list; a head's not_active to a heartbeat (it stood
// down) sends the node on the same way.
TEST(NodeFailover, FollowsNotActiveToTheNamedHeadEvenOffTheList) {
  zmq::context_t ctx(1);
  FakeHead standby(ctx), active(ctx);
  Node node(standby.endpoint());

  Got reg;
  ASSERT_TRUE(standby.recv_type(proto::kRegister, &reg, 10'000));
  standby.not_active(reg, 5, active.endpoint());
  ASSERT_TRUE(active.recv_type(proto::kRegister, &reg, 5'000));
  active.registered(reg, 5);
  Got m;
  ASSERT_TRUE(active.recv_type(proto::kHeartbeat, &m, 2'000));

  // The active head stands down: it answers a heartbeat not_active, naming
  // the first head, now active (epoch 6).
  active.not_active(m, 6, standby.endpoint());
  ASSERT_TRUE(standby.recv_type(proto::kRegister, &reg, 5'000));
  standby.registered(reg, 6);
  ASSERT_TRUE(standby.recv_type(proto::kHeartbeat, &m, 2'000));
}

// A head with an older epoch than one the node saw (it froze; another took
// over) is never used: it is told bye, and the node registers with the new
// one. Whichever answered first, after the first bye the old head gets
// nothing but registers and byes.
TEST(NodeFailover, NeverStaysWithAHeadOlderThanTheNewestEpochSeen) {
  zmq::context_t ctx(1);
  FakeHead a(ctx), b(ctx);
  Node node(a.endpoint() + "," + b.endpoint());

  // A answers every register with epoch 6 and sends no heartbeat (a head
  // that froze and came back). B: a takeover to epoch 7 under way.
  bool a_told_bye = false, after_bye_only_register_or_bye = true;
  std::size_t b_answers = 0;
  for (Millis until = Now() + 10'000; Now() < until && !(a_told_bye && b_answers >= 3);) {
    Got m;
    while (a.recv(&m, 0)) {
      if (m.type == proto::kRegister) a.registered(m, 6);
      if (a_told_bye && m.type != proto::kRegister && m.type != proto::kBye)
        after_bye_only_register_or_bye = false;
      if (m.type == proto::kBye) a_told_bye = true;
    }
    if (b.recv(&m, 20) && m.type == proto::kRegister) {
      b.not_active(m, 7, "");
      ++b_answers;
    }
  }
  EXPECT_TRUE(a_told_bye);
  EXPECT_TRUE(after_bye_only_register_or_bye);

  // B becomes active: the node registers with it.
  Got m;
  ASSERT_TRUE(b.recv_type(proto::kRegister, &m, 5'000));
  b.registered(m, 7);
  ASSERT_TRUE(b.recv_type(proto::kHeartbeat, &m, 2'000));
  // And A, answering with epoch 6, gets nothing but registers and byes.
  for (Millis until = Now() + 500; Now() < until;)
    if (a.recv(&m, 50)) {
      EXPECT_TRUE(m.type == proto::kRegister || m.type == proto::kBye) << m.type;
      if (m.type == proto::kRegister) a.registered(m, 6);
    }
}

// The registered head reached under another name (a standby names it as
// it advertises itself, e.g. by host name): when it answers a probe as the
// same head (instance and epoch), it has moved the registration to that
// connection, so the node goes with it instead of telling it bye.
TEST(NodeFailover, TheSameHeadUnderAnotherNameIsFollowedNotToldBye) {
  zmq::context_t ctx(1);
  FakeHead x(ctx), y(ctx);
  Node node(x.endpoint() + "," + y.endpoint());
  Got reg;
  ASSERT_TRUE(x.recv_type(proto::kRegister, &reg, 10'000));
  x.registered(reg, 3);
  Got m;
  ASSERT_TRUE(x.recv_type(proto::kHeartbeat, &m, 5'000));
  // X falls silent: Y is asked, and answers as the same head (fake3, epoch
  // 3). (A register the node sent Y at start, on a link it closed since,
  // gets its answer nowhere.)
  bool heartbeat = false;
  for (Millis until = Now() + 5'000; Now() < until && !heartbeat;) {
    if (!y.recv(&m, 100)) continue;
    EXPECT_NE(m.type, proto::kBye) << "the node told its own head bye";
    if (m.type == proto::kRegister) y.registered(m, 3);
    heartbeat = m.type == proto::kHeartbeat;
  }
  EXPECT_TRUE(heartbeat) << "the node did not stay with the head under its other name";
}

}  // namespace
}  // namespace zgrid::node
