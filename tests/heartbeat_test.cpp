// Heartbeats that scale with the grid (docs/protocol.md, "Nodes"): the head
// tells its nodes an interval of --heartbeat, or longer once their
// heartbeats would pass --heartbeat-rate a second; it answers each node's
// heartbeat instead of sending its own; a node is lost after `misses` of
// its own interval without a message, and a node finds a frozen head after
// `misses` of them without an answer. Real head and node processes (and
// simulated nodes, which follow the same protocol) on loopback; a node of
// the older protocol, which never says its interval, is a bare DEALER.
#include <gtest/gtest.h>
#include <signal.h>
#include <zgrid/client.hpp>

#include <string>
#include <zmq.hpp>

#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/zmq_util.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using testing::Grid;
using testing::wait_until;

std::uint64_t Nodes(client::Connection& c) {
  auto st = c.grid_status();
  return st.ok() ? st->u64("nodes") : 0;
}

std::uint64_t Interval(client::Connection& c) {
  auto st = c.grid_status();
  return st.ok() ? st->u64("heartbeat_ms") : 0;
}

// Every node's row says it is held to `ms`.
bool AllHeldTo(client::Connection& c, std::uint64_t ms) {
  auto rows = c.nodes();
  if (!rows.ok() || rows->empty()) return false;
  for (const auto& r : *rows)
    if (r.u64("heartbeat_ms") != ms) return false;
  return true;
}

Millis Now() {
  return SteadyClock::instance().now_ms();
}

// 200 ms and 100 heartbeats a second: 20 nodes an interval. 50 nodes make it
// 600 ms (three intervals of 200 ms); a simulated node frozen among them is
// lost after three of those, not three of 200 ms; the others are not. Then
// 30 of them go (SIGKILL): the interval is 200 ms again, and the 20 left,
// which heartbeat every 600 ms until their next answer says 200 ms, are not
// lost meanwhile.
TEST(Heartbeat, IntervalScalesWithTheNodesAndALostNodeIsFoundWithinThreeOfIt) {
  Grid g;
  g.start_head({"--heartbeat", "200ms", "--heartbeat-misses", "3", "--heartbeat-rate", "100"});
  std::size_t a = g.add_node({"--simulate", "30", "--node-id", "a", "--log-level", "warn"});
  g.add_node({"--simulate", "19", "--node-id", "b", "--log-level", "warn"});
  std::size_t lone = g.add_node({"--simulate", "1", "--node-id", "lone", "--log-level", "warn"});
  ASSERT_TRUE(g.wait_nodes(50, 20'000));
  auto conn = g.connect();
  EXPECT_EQ(Interval(*conn), 600u);
  // Each node learns it from the answer to its next heartbeat and says so.
  ASSERT_TRUE(wait_until([&] { return AllHeldTo(*conn, 600); }, 10'000, 50));

  g.node(lone).signal(SIGSTOP);  // no disconnect: found by its silence alone
  Millis stopped = Now();
  ASSERT_TRUE(wait_until([&] { return Nodes(*conn) == 49; }, 10'000, 20));
  Millis found = Now() - stopped;
  // Silent for more than 3 x 600 ms; its last heartbeat came at most 600 ms
  // before the stop, and the head looks every 200 ms.
  EXPECT_GE(found, 1'100) << "lost by the unscaled interval";
  EXPECT_LE(found, 3 * 600 + 200 + 1'000);
  EXPECT_NE(g.head_log().find("node lost node=lone-0"), std::string::npos) << g.head_log();
  // Nobody else is lost, for several intervals.
  EXPECT_FALSE(wait_until([&] { return Nodes(*conn) != 49; }, 2'500, 50));
  g.node(lone).kill_now();

  g.node(a).kill_now();
  ASSERT_TRUE(wait_until([&] { return Nodes(*conn) == 19; }, 10'000, 20));
  EXPECT_EQ(Interval(*conn), 200u);
  ASSERT_TRUE(wait_until([&] { return AllHeldTo(*conn, 200); }, 5'000, 20));
  EXPECT_FALSE(wait_until([&] { return Nodes(*conn) != 19; }, 2'000, 50))
      << "a node lost while its interval shrank";
}

// A crashed node (SIGKILL: its connection closes) is lost at once, not after
// three of its scaled intervals: the head hears of the closed connection and
// finds the node it carried unreachable.
TEST(Heartbeat, ACrashedNodeIsLostAtOnceNotAfterItsIntervals) {
  Grid g;
  g.start_head({"--heartbeat", "200ms", "--heartbeat-misses", "3", "--heartbeat-rate", "100"});
  g.add_node({"--simulate", "49", "--node-id", "s", "--log-level", "warn"});
  std::size_t lone = g.add_node({"--simulate", "1", "--node-id", "lone", "--log-level", "warn"});
  ASSERT_TRUE(g.wait_nodes(50, 20'000));
  auto conn = g.connect();
  ASSERT_TRUE(wait_until([&] { return AllHeldTo(*conn, 600); }, 10'000, 50));
  Millis killed = Now();
  g.node(lone).kill_now();
  ASSERT_TRUE(wait_until([&] { return Nodes(*conn) == 49; }, 10'000, 10));
  EXPECT_LT(Now() - killed, 1'100)
      << "found by its silence (3 x 600 ms), not its closed connection";
  EXPECT_NE(g.head_log().find("reason=unreachable"), std::string::npos) << g.head_log();
}

// A real node follows the interval the head sets, heartbeats by it, and
// finds its frozen head (SIGSTOP) after three of it without an answer; it
// registers again once the head wakes.
TEST(Heartbeat, ARealNodeFollowsTheIntervalAndFindsAFrozenHead) {
  Grid g;
  // One heartbeat a second allowed at 200 ms: the interval is 200 ms per node.
  g.start_head({"--heartbeat", "200ms", "--heartbeat-misses", "3", "--heartbeat-rate", "5"});
  std::size_t real = g.add_node({"--node-id", "real", "--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  g.add_node({"--simulate", "3", "--node-id", "s", "--log-level", "warn"});
  ASSERT_TRUE(g.wait_nodes(4, 20'000));
  auto conn = g.connect();
  EXPECT_EQ(Interval(*conn), 800u);
  ASSERT_TRUE(wait_until([&] { return AllHeldTo(*conn, 800); }, 10'000, 50));
  const std::string log_path = g.dir().file("node" + std::to_string(real) + ".log");
  EXPECT_NE(testing::read_file(log_path).find("head sets the heartbeat interval to 800ms"),
            std::string::npos)
      << testing::read_file(log_path);

  g.head().signal(SIGSTOP);
  Millis stopped = Now();
  bool noticed = wait_until(
      [&] { return testing::read_file(log_path).find("head silent for") != std::string::npos; },
      15'000, 20);
  Millis took = Now() - stopped;
  g.head().signal(SIGCONT);
  ASSERT_TRUE(noticed) << testing::read_file(log_path);
  // Three intervals of 800 ms without an answer (its last answer came at
  // most one interval before the stop).
  EXPECT_GE(took, 3 * 800 - 800);
  EXPECT_LE(took, 3 * 800 + 800 + 1'500);
  // Back: it registers again (a new connection) and stays.
  ASSERT_TRUE(wait_until(
      [&] {
        std::string log = testing::read_file(log_path);
        return log.find("registered with head") != log.rfind("registered with head");
      },
      15'000, 50))
      << testing::read_file(log_path);
  EXPECT_TRUE(wait_until([&] { return Nodes(*conn) == 4; }, 10'000, 50));
}

// A node of the protocol before scaled heartbeats: it heartbeats every
// `heartbeat_ms` of its `registered` (no interval in its heartbeats) and
// ignores the one in the head's answers. The head answers it, and holds it
// to the interval it registered with even when the grid's shrinks.
TEST(Heartbeat, AnOlderNodeKeepsTheIntervalItRegisteredWith) {
  Grid g;
  // 10 heartbeats a second at 200 ms: 2 nodes an interval.
  g.start_head({"--heartbeat", "200ms", "--heartbeat-misses", "3", "--heartbeat-rate", "10"});
  std::size_t sims = g.add_node({"--simulate", "9", "--node-id", "s", "--log-level", "warn"});
  ASSERT_TRUE(g.wait_nodes(9, 20'000));

  zmq::context_t ctx(1);
  zmq::socket_t old(ctx, zmq::socket_type::dealer);
  old.set(zmq::sockopt::linger, 0);
  old.connect(g.backend());
  proto::Register reg;
  reg.node_id = "old";
  reg.host = "h";
  reg.pid = 1;
  reg.workers = 1;
  reg.capacity = 1;
  reg.services = {"echo"};
  zmq::message_t rm = proto::encode_register(1, reg);
  ASSERT_EQ(zmqu::send_one(old, rm), zmqu::SendStatus::kOk);
  std::vector<zmq::message_t> frames;
  proto::Registered got;
  int answers = 0;
  // Reads what the head sent within `ms`: `registered`, heartbeats (counted).
  auto read_for = [&](Millis ms) {
    Millis until = Now() + ms;
    while (Now() < until) {
      zmq::pollitem_t item{static_cast<void*>(old), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(std::max<Millis>(1, until - Now())));
      while (zmqu::recv_message(old, &frames, 2) == zmqu::RecvStatus::kOk) {
        Envelope env;
        if (frames.size() != 1 || !decode_envelope(frames[0].data(), frames[0].size(), &env).ok())
          continue;
        if (env.type == proto::kRegistered) {
          EXPECT_TRUE(proto::decode_registered(env, &got).ok());
        }
        if (env.type == proto::kHeartbeat) ++answers;
        EXPECT_NE(env.type, proto::kError) << "the head refused the older node";
      }
    }
  };
  read_for(500);
  ASSERT_EQ(got.heartbeat_ms, 1000u) << "10 nodes, 2 an interval of 200 ms";
  auto conn = g.connect();
  ASSERT_EQ(Nodes(*conn), 10u);
  // Heartbeats of the older form (credit and stuck workers, no interval).
  auto beat = [&] {
    zmq::message_t hb = proto::encode_node_heartbeat("old", 1, 0);
    ASSERT_EQ(zmqu::send_one(old, hb), zmqu::SendStatus::kOk);
  };
  beat();
  read_for(1000);
  EXPECT_GE(answers, 1) << "the head answers every heartbeat";

  // The grid shrinks to the older node alone: 200 ms from now on for nodes
  // that follow, but this one keeps its 1 s and must not be lost.
  g.node(sims).kill_now();
  Millis until = Now() + 6'000;
  while (Now() < until) {
    beat();
    read_for(1000);
  }
  EXPECT_EQ(Nodes(*conn), 1u) << g.head_log();
  EXPECT_EQ(Interval(*conn), 200u);
  auto rows = conn->nodes();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].u64("heartbeat_ms"), 1000u);
  EXPECT_EQ(g.head_log().find("node lost node=old"), std::string::npos) << g.head_log();
  EXPECT_GE(answers, 5);

  // Silent now: lost after three of its own intervals.
  Millis quiet = Now();
  ASSERT_TRUE(wait_until([&] { return Nodes(*conn) == 0; }, 10'000, 20));
  EXPECT_GE(Now() - quiet, 1'500) << "lost by the grid's 200 ms, not its own 1 s";
}

}  // namespace
}  // namespace zgrid
