// Issue 27.2: purges must not stall the journal. A burst of purges (a client
// purging 10,000 sessions at once, or a retention sweep finding thousands
// of sessions past their time) is written in groups of purges, paced, so
// another client's durable submit is acknowledged within a second
// meanwhile; LevelDB's info log stays bounded. Real processes on loopback.
#include <gtest/gtest.h>
#include <zgrid/client.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fetch_all.hpp"
#include "tests/support/grid_process.hpp"
#include "tests/support/pipeline.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::Grid;
using testing::Pipeline;
using testing::wait_until;

std::uint64_t GridField(Grid& g, const std::string& field) {
  auto st = g.connect()->grid_status();
  return st.ok() ? st->u64(field) : 0;
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Another client's durable submit of `n` echo requests: the seconds until
// it is acknowledged (the head answers a submit once it is synced), and
// its session id. Negative on failure.
double TimedSubmit(Grid& g, std::size_t n, std::string* sid) {
  auto conn = client::Connection::open(g.client_options());
  if (!conn.ok()) return -1;
  std::vector<std::string> payloads;
  for (std::size_t i = 0; i < n; ++i) payloads.push_back(std::to_string(i));
  std::vector<BrokerClient::Item> items;
  for (auto& p : payloads) items.push_back({p, p});
  auto t0 = std::chrono::steady_clock::now();
  auto made = BrokerClient::submit(**conn, {"echo", true, 0}, "other", items);
  double s = SecondsSince(t0);
  if (!made.ok()) {
    ADD_FAILURE() << made.status().ToString();
    return -1;
  }
  if (sid) *sid = (*made)->session_id();
  return s;
}

// LevelDB's own info log (DATA/journal/LOG) grew ~4 KB a purge, never
// rotated; it now goes to the head's log, rate-limited, and the file is not
// written (0 when absent).
std::uintmax_t LevelDbLogBytes(Grid& g) {
  std::error_code ec;
  auto n = std::filesystem::file_size(g.data_dir() + "/journal/LOG", ec);
  return ec ? 0 : n;
}

// 10,000 one-message durable sessions, then 10,000 pipelined purges: another
// client's durable submit of 1,000 requests is acknowledged within 1 s
// meanwhile (it waited 20 s and more when each purge was written alone and
// compacted its ranges), while most purges are still to come (so that the
// storm is what it waited behind), and every purge succeeds.
TEST(PurgeStorm, AnotherClientsSubmitIsAcknowledgedWithinASecond) {
  constexpr std::size_t kSessions = 10'000;
  Grid g;
  g.start_durable_head({"--log-level", "warn"});
  g.add_node({"--workers", "2", "--log-level", "warn"});
  ASSERT_TRUE(g.wait_nodes(1));
  Pipeline p(g.frontend());
  auto made = p.submit_sessions(kSessions, "echo", 60'000);
  ASSERT_EQ(made.ok, kSessions) << made.first_error;
  ASSERT_TRUE(wait_until([&] { return GridField(g, "done") >= kSessions; }, 60'000, 50))
      << GridField(g, "done") << " answered";

  std::uintmax_t log_before = LevelDbLogBytes(g);
  std::atomic<double> ack_s{-1};
  std::atomic<std::uint64_t> left_at_ack{0};
  std::string other_sid;
  std::thread other;
  auto t0 = std::chrono::steady_clock::now();
  auto purged = p.purge(made.session_ids, 120'000, [&] {
    // Every purge is on its way: now another client submits.
    other = std::thread([&] {
      ack_s = TimedSubmit(g, 1'000, &other_sid);
      // Asked after the acknowledgement: sessions not yet purged then (the
      // other client's own is one).
      left_at_ack = GridField(g, "sessions");
    });
  });
  double storm_s = SecondsSince(t0);
  other.join();
  EXPECT_EQ(purged.ok, kSessions) << purged.first_error;
  EXPECT_FALSE(purged.timed_out);
  std::printf(
      "purge storm: %zu purges in %.2f s (%.0f/s); another client's submit of 1,000 "
      "acknowledged in %.3f s\n",
      purged.ok, storm_s, static_cast<double>(purged.ok) / storm_s, ack_s.load());
  EXPECT_GE(ack_s.load(), 0.0);
  EXPECT_LE(ack_s.load(), 1.0) << "another client's durable submit waited behind the purges";
  // The storm was under way when it was acknowledged (else this proves nothing).
  EXPECT_GT(left_at_ack.load(), 1u) << "every purge was done before the other submit";

  // The purged sessions are gone, the other one is whole.
  EXPECT_TRUE(wait_until([&] { return GridField(g, "sessions") == 1; }, 10'000, 20))
      << GridField(g, "sessions") << " sessions";
  auto conn = g.connect();
  auto all = testing::fetch_all(*conn, other_sid, 60'000);
  EXPECT_EQ(all.size(), 1'000u);
  // LevelDB's LOG file did not grow with the 10,000 purges (it took 40 MB).
  EXPECT_LE(LevelDbLogBytes(g), log_before + (64u << 10)) << "LevelDB's LOG grows with the purges";
}

// --retention: two bursts of 3,000 sessions, each made within a second or
// so, 700 ms apart: each burst passes its retention together. The sweep
// purges them paced, grouped: another client's durable submits, one every
// 100 ms through the sweep, are each acknowledged within 1 s (one waited
// 20 s when the sweep queued every purge at once). The second burst makes
// sure that some submits come while the sweep is under way (the first
// burst purged, the second not yet), however fast the head purges.
TEST(PurgeStorm, RetentionSweepDoesNotStallOtherClients) {
  constexpr std::size_t kBurst = 3'000, kSessions = 2 * kBurst;
  Grid g;
  g.start_durable_head({"--log-level", "warn", "--retention", "2s"});
  g.add_node({"--workers", "2", "--log-level", "warn"});
  ASSERT_TRUE(g.wait_nodes(1));
  Pipeline p(g.frontend());
  auto made = p.submit_sessions(kBurst, "echo", 60'000);
  ASSERT_EQ(made.ok, kBurst) << made.first_error;
  // The workload's shape, not a wait for something: the second burst's
  // retention ends 700 ms after the first's.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto made2 = p.submit_sessions(kBurst, "echo", 60'000);
  ASSERT_EQ(made2.ok, kBurst) << made2.first_error;
  double worst = 0;
  std::size_t submits = 0, during = 0;
  bool gone = wait_until(
      [&] {
        // Sessions: what is left of the bursts, and the other client's not
        // yet past their own retention (at most one a submit).
        std::uint64_t before = GridField(g, "sessions");
        if (before <= submits) return true;  // the bursts are gone
        if (before < kSessions) ++during;    // some are gone, some left
        double s = TimedSubmit(g, 1'000, nullptr);
        if (s < 0) return true;
        ++submits;
        worst = std::max(worst, s);
        return false;
      },
      60'000, 100);
  EXPECT_TRUE(gone) << GridField(g, "sessions") << " sessions left";
  std::printf(
      "retention sweep of %zu sessions: %zu submits meanwhile, %zu while it purged, "
      "slowest acknowledged in %.3f s\n",
      kSessions, submits, during, worst);
  EXPECT_GE(submits, 1u);
  // Some submits came while the sweep was purging (else this proves nothing).
  EXPECT_GE(during, 1u) << "no submit while the sweep purged";
  EXPECT_LE(worst, 1.0) << "a durable submit waited behind the retention sweep";
}

}  // namespace
}  // namespace zgrid
