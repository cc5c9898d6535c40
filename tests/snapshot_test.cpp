// head/snapshot and head/metrics in-process: what the snapshot carries,
// counters that never decrease from one snapshot to the next, the JSON API's
// pages, and readers on other threads while the reactor publishes (this
// test also runs in a ThreadSanitizer build: snapshot_tsan_test).
#include "head/snapshot.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "head/metrics.hpp"
#include "support/head_rooms.hpp"
#include "tests/support/prom_text.hpp"

namespace zgrid::head {
namespace {

using testing::Rooms;

StatusSources SourcesOf(Rooms& r) {
  return {r.ctx, r.sessions, r.nodes, r.durable, r.security};
}

proto::Results Answers(std::uint64_t first, std::uint64_t n, const std::string& fault = "") {
  proto::Results m;
  for (std::uint64_t i = 0; i < n; ++i)
    m.items.push_back({first + i, fault, fault.empty() ? std::string_view("ok") : "why"});
  return m;
}

TEST(Snapshot, CarriesCountersEventsNodesAndSessions) {
  Rooms r;
  NodeState& n = r.add_node("a", 4);
  Session& s = r.session(false, 6);
  r.ctx.stats_of(s).accepted += 6;
  r.dispatch();
  r.ctx.now += 12;
  r.tasks.on_results(n, Answers(1, 3));
  r.tasks.on_results(n, Answers(4, 1, "bad_input"));
  SnapshotPublisher pub(std::make_shared<SnapshotBox>());
  auto snap = pub.build(SourcesOf(r), r.ctx.observed, r.ctx.now);
  ASSERT_EQ(snap->nodes.size(), 1u);
  EXPECT_EQ(snap->nodes[0].node_id, "a");
  ASSERT_EQ(snap->sessions.size(), 1u);
  EXPECT_EQ(snap->sessions[0].done, 3u);
  const ServiceStats& st = snap->services.at("factorize");
  EXPECT_EQ(st.accepted, 6u);
  EXPECT_EQ(st.done, 3u);
  EXPECT_EQ(st.faulted.at("other"), 1u);  // a service's own code: folded
  EXPECT_EQ(st.latency.count, 4u);
  EXPECT_DOUBLE_EQ(st.latency.sum, 4 * 0.012);
  ASSERT_EQ(snap->events->size(), 1u);
  EXPECT_EQ(snap->events->front().kind, "node_registered");

  std::string text = render_metrics(*snap, ProcessFacts::read());
  EXPECT_NE(text.find("zgrid_requests_total{service=\"factorize\",outcome=\"done\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("zgrid_request_faults_total{service=\"factorize\",code=\"other\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("zgrid_nodes{state=\"ok\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("zgrid_requests_running 0\n"), std::string::npos);
  EXPECT_NE(text.find("zgrid_requests_queued 2\n"), std::string::npos);
  EXPECT_NE(text.find("zgrid_sessions{kind=\"interactive\",state=\"open\"} 1\n"),
            std::string::npos);
}

TEST(Snapshot, CountersNeverDecreaseAcrossSnapshotsEvenWhenAClientIsRemoved) {
  Rooms r;
  NodeState& n = r.add_node("a", 4);
  Session& s = r.session(false, 8);
  SnapshotPublisher pub(std::make_shared<SnapshotBox>());
  std::map<std::string, double> before;
  auto check = [&] {
    auto now = zgrid::testing::CounterSamples(
        render_metrics(*pub.build(SourcesOf(r), r.ctx.observed, r.ctx.now), {}));
    for (const auto& [k, v] : before) {
      ASSERT_TRUE(now.count(k)) << k << " vanished";
      EXPECT_GE(now[k], v) << k;
    }
    before = now;
  };
  check();
  r.dispatch();
  r.tasks.on_results(n, Answers(1, 2));
  check();
  r.tasks.lose_node(n.ordinal, NodeLoss::kSilent);  // requeued: retried grows
  check();
  // The client goes idle and is removed: the session's done count drops,
  // the service's counters do not.
  r.ctx.now += 120'000;
  ASSERT_TRUE(r.lifecycle.tick().ok());
  EXPECT_EQ(s.clients_removed, 1u);
  check();
  EXPECT_GT(before["zgrid_requests_total{service=\"factorize\",outcome=\"removed\"}"], 0);
  EXPECT_EQ(before["zgrid_nodes_lost_total{reason=\"silent\"}"], 1);
}

TEST(Snapshot, JsonPagesAndEventsSince) {
  Rooms r;
  for (int i = 0; i < 7; ++i) r.add_node(std::string(1, 'n').append(std::to_string(i)), 2);
  for (int i = 0; i < 5; ++i) r.session(true, 0);
  for (int i = 0; i < 4; ++i)
    r.ctx.event("node_lost", "x", std::string(1, 'e').append(std::to_string(i)));
  SnapshotPublisher pub(std::make_shared<SnapshotBox>());
  auto snap = pub.build(SourcesOf(r), r.ctx.observed, r.ctx.now);
  auto nodes = nlohmann::json::parse(render_nodes_json(*snap, 5, 100));
  EXPECT_EQ(nodes["total"], 7);
  EXPECT_EQ(nodes["nodes"].size(), 2u);
  EXPECT_EQ(nodes["nodes"][0]["node_id"], "n5");
  EXPECT_EQ(nodes["nodes"][0]["free"], 2);
  auto sessions = nlohmann::json::parse(render_sessions_json(*snap, 0, 3));
  EXPECT_EQ(sessions["total"], 5);
  EXPECT_EQ(sessions["sessions"].size(), 3u);
  // 7 registrations (node_registered), then the 4 events above.
  auto events = nlohmann::json::parse(render_events_json(*snap, 9));
  ASSERT_EQ(events["events"].size(), 2u);
  EXPECT_EQ(events["events"][0]["seq"], 10);
  EXPECT_EQ(events["events"][0]["kind"], "node_lost");
  EXPECT_EQ(events["next"], 11);
  auto status = nlohmann::json::parse(render_status_json(*snap, true, true));
  EXPECT_EQ(status["grid"]["nodes"], 7);
  EXPECT_EQ(status["nodes_by_state"]["ok"], 7);
  EXPECT_EQ(status["auth"]["token_required"], true);
}

// What clients choose cannot grow the counters without bound: fault codes
// fold into the documented set plus "other", and service strings beyond
// the offered (and a few unoffered) share "(other)".
TEST(Snapshot, FaultCodesAndServicesAreABoundedLabelSet) {
  ServiceStats st;
  for (int i = 0; i < 1000; ++i) st.count_fault("code" + std::to_string(i));
  st.count_fault("\xff\xfe");
  st.count_fault("service_error", 2);
  st.count_fault("retry_limit_exceeded");
  EXPECT_EQ(st.faulted, (std::map<std::string, std::uint64_t, std::less<>>{
                            {"other", 1001}, {"retry_limit_exceeded", 1}, {"service_error", 2}}));
  for (std::string_view code : fault_labels()) EXPECT_EQ(fault_label(code), code);

  Observed o;
  o.offered({"factorize@1.0", "echo"});
  for (int i = 0; i < 500; ++i) ++o.service("nosuch" + std::to_string(i)).accepted;
  ++o.service("factorize").accepted;
  ++o.service("factorize@1.0/op").accepted;
  ++o.service("echo").accepted;
  ++o.service("bad\xff").accepted;  // not a valid name (never from a client; a journal's bytes)
  EXPECT_EQ(o.services.size(), Observed::kMaxUnofferedServices + 3 + 1);
  EXPECT_EQ(o.services.at("factorize").accepted, 1u);
  EXPECT_EQ(o.services.at("factorize@1.0/op").accepted, 1u);
  EXPECT_EQ(o.services.at(std::string(Observed::kOtherService)).accepted,
            500 - Observed::kMaxUnofferedServices + 1);
  for (int i = 0; i < 500; ++i) o.offered({"svc" + std::to_string(i)});
  for (int i = 0; i < 500; ++i) ++o.service("svc" + std::to_string(i)).accepted;
  EXPECT_EQ(o.services.size(), Observed::kMaxUnofferedServices + Observed::kMaxOfferedServices + 1);
}

TEST(Snapshot, TheEventRingKeepsTheLastThousand) {
  EventRing ring;
  for (int i = 0; i < 1500; ++i) ring.add("k", "s", "m");
  EXPECT_EQ(ring.events().size(), EventRing::kCapacity);
  EXPECT_EQ(ring.events().front().seq, 501u);
  EXPECT_EQ(ring.next_seq(), 1501u);
}

// Readers on other threads take whole snapshots while the reactor thread
// changes its state and publishes: each snapshot is internally consistent
// (its node rows sum to its grid counts) and sequence numbers only grow.
TEST(Snapshot, ConcurrentReadersSeeWholeSnapshotsInOrder) {
  Rooms r;
  auto box = std::make_shared<SnapshotBox>();
  SnapshotPublisher pub(box);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t)
    readers.emplace_back([&] {
      std::uint64_t last = 0;
      while (!stop.load()) {
        auto s = box->latest();
        if (!s) continue;
        EXPECT_GE(s->seq, last);
        last = s->seq;
        std::uint64_t workers = 0;
        for (const auto& n : s->nodes) workers += n.workers;
        EXPECT_EQ(workers, s->grid.workers);
        EXPECT_EQ(s->nodes.size(), s->grid.nodes);
        (void)render_metrics(*s, {});
        ++reads;
      }
    });
  for (int i = 0; i < 300; ++i) {
    r.add_node(std::string(1, 'n').append(std::to_string(i)), 1 + i % 3);
    r.ctx.event("node_registered", "n", "joined");
    ++r.ctx.now;
    pub.tick(SourcesOf(r), r.ctx.observed, r.ctx.now, /*force=*/true);
  }
  while (reads.load() < 100) std::this_thread::yield();
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(box->latest()->seq, 300u);
}

TEST(Snapshot, BuiltOnlyWhileSomeoneLooks) {
  Rooms r;
  auto box = std::make_shared<SnapshotBox>();
  SnapshotPublisher pub(box);
  r.ctx.now = 100'000;
  pub.tick(SourcesOf(r), r.ctx.observed, r.ctx.now);
  EXPECT_EQ(box->latest(), nullptr);  // nobody looked
  box->want(r.ctx.now);
  pub.tick(SourcesOf(r), r.ctx.observed, r.ctx.now);
  ASSERT_NE(box->latest(), nullptr);
  r.ctx.now += SnapshotBox::kKeepBuildingMs + 1;
  pub.tick(SourcesOf(r), r.ctx.observed, r.ctx.now);
  EXPECT_EQ(box->latest()->seq, 1u);  // not rebuilt after a quiet spell
}

}  // namespace
}  // namespace zgrid::head
