// Durable sessions with real processes: the seed scenario, SIGKILL of the
// head (at random, seeded and logged moments, and at injected crash points)
// and of nodes, several clients, purge, and a journal that cannot write.
#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zgrid/client.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/codec.hpp"
#include "head/journal_records.hpp"
#include "services/factorize_kernel.hpp"
#include "tests/support/fetch_all.hpp"
#include "tests/support/grid_process.hpp"
#include "tests/support/small_disk.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::Grid;
using testing::run_cli;

bool IsFactorization(std::uint64_t n, const std::string& text) {
  return testing::is_factorization(n, text);
}

// The numbers `zgrid submit --random N --seed S --bits B` sends.
std::multiset<std::string> CliRandomInputs(std::uint64_t n, std::uint64_t seed, int bits) {
  std::mt19937_64 rng(seed);
  std::uint64_t max = bits >= 64 ? UINT64_MAX : (std::uint64_t{1} << bits) - 1;
  std::multiset<std::string> out;
  for (std::uint64_t i = 0; i < n; ++i)
    out.insert(std::to_string(1 + (max == UINT64_MAX ? rng() % UINT64_MAX : rng() % max)));
  return out;
}

std::vector<proto::Response> FetchAll(client::Connection& conn, const std::string& sid,
                                      Millis timeout_ms = 120'000) {
  return testing::fetch_all(conn, sid, timeout_ms);
}

std::string SessionIdFromLog(const std::string& log) {
  auto p = log.find("zgrid: session ");
  if (p == std::string::npos) return "";
  return log.substr(p + 15, 32);
}

TEST(Durable, SeedScenario) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto r = run_cli({"--head", g.frontend(), "submit", "--durable", "--service", "factorize",
                    "--random", "100", "--seed", "11"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, r.out.size() - 1);
  ASSERT_EQ(sid.size(), 32u) << "stdout must be the bare session id: " << r.out;
  EXPECT_EQ(r.out, sid + "\n");
  EXPECT_NE(r.err.find(sid), std::string::npos)
      << "the id is on stderr as soon as the session exists";
  // The submitter has exited; another process fetches, twice.
  auto f1 = run_cli({"--head", g.frontend(), "fetch", sid});
  ASSERT_EQ(f1.code, 0) << f1.err;
  auto f2 = run_cli({"--head", g.frontend(), "fetch", sid});
  ASSERT_EQ(f2.code, 0) << f2.err;
  auto lines = [](const std::string& s) {
    std::multiset<std::string> out;
    std::size_t p = 0;
    while (p < s.size()) {
      auto e = s.find('\n', p);
      out.insert(s.substr(p, e - p));
      p = e + 1;
    }
    return out;
  };
  auto l1 = lines(f1.out);
  EXPECT_EQ(l1.size(), 100u);
  EXPECT_EQ(l1, lines(f2.out));
  std::multiset<std::string> inputs;
  for (const auto& line : l1) {
    auto eq = line.find(" = ");
    ASSERT_NE(eq, std::string::npos) << line;
    EXPECT_TRUE(IsFactorization(std::stoull(line.substr(0, eq)), line.substr(eq + 3))) << line;
    inputs.insert(line.substr(0, eq));
  }
  EXPECT_EQ(inputs, CliRandomInputs(100, 11, 31));
  // --json carries request id and input.
  auto fj = run_cli({"--head", g.frontend(), "fetch", sid, "--json"});
  EXPECT_EQ(fj.code, 0);
  EXPECT_NE(fj.out.find("\"request_id\": 1,"), std::string::npos) << fj.out.substr(0, 200);
  // Purge: every request and response goes; fetch then fails clearly.
  auto p = run_cli({"--head", g.frontend(), "close", sid, "--purge"});
  EXPECT_EQ(p.code, 0) << p.err;
  auto p2 = run_cli({"--head", g.frontend(), "close", sid, "--purge"});
  EXPECT_EQ(p2.code, 0) << "purge is idempotent: " << p2.err;
  auto f3 = run_cli({"--head", g.frontend(), "fetch", sid});
  EXPECT_EQ(f3.code, 2);
  EXPECT_NE(f3.err.find("was purged"), std::string::npos) << f3.err;
  EXPECT_EQ(std::count(f3.err.begin(), f3.err.end(), '\n'), 1) << f3.err;
}

// A durable client opened but with nothing journaled yet, its head
// restarted so fast that no silence told the client: its EndRequests is the
// first word the new head hears of it ("unknown client"). The client finds
// the new instance, re-opens and commits (it failed with exit 2).
TEST(Durable, EndRequestsToAHeadThatRestartedUnnoticedReopensAndCommits) {
  Grid g;
  g.start_durable_head();
  auto conn = g.connect();
  proto::CreateSession cs;
  cs.service = "factorize";
  cs.durable = true;
  auto info = conn->create_session(cs);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto bc = client::BrokerClient::open(*conn, info->session_id, "c1");
  ASSERT_TRUE(bc.ok()) << bc.status().ToString();
  g.kill_head();
  g.restart_head();
  Status st = (*bc)->end_requests();
  EXPECT_TRUE(st.ok()) << st.ToString();
  auto status = conn->session_status(info->session_id);
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->u64("clients_open"), 0u);
  EXPECT_TRUE(status->boolean("complete"));
}

TEST(Durable, HeadKilledRepeatedlyDuringALargeSessionLosesAndDoublesNothing) {
  const std::uint64_t kN = 200'000, kSeed = 77;
  const int kBits = 48;
  std::uint64_t test_seed = std::random_device()();
  std::printf("kill schedule seed: %llu\n", static_cast<unsigned long long>(test_seed));
  std::mt19937_64 rng(test_seed);
  Grid g;
  g.start_durable_head({"--heartbeat", "250ms"});
  g.add_node({"--workers", "1"});
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(2));
  testing::Process submitter({ZGRID_CLI_BIN, "--head", g.frontend(), "--timeout", "30s", "submit",
                              "--durable", "--service", "factorize", "--random", std::to_string(kN),
                              "--seed", std::to_string(kSeed), "--bits", std::to_string(kBits)},
                             g.dir().file("submit.log"));
  // Kills: at random moments, and at crash points injected into the head.
  // after-segment-sync: a group durable in its segment file (its redo
  // record), not yet in LevelDB (journal format v4).
  const std::vector<std::string> schedule = {
      "random", "before-ack:5",        "random", "after-results:3", "after-sync:4",
      "random", "after-segment-sync:3"};
  int kills = 0;
  for (const auto& what : schedule) {
    if (what == "random") {
      Millis delay = 100 + static_cast<Millis>(rng() % 500);
      std::printf("kill %d: SIGKILL after %lld ms\n", kills + 1, static_cast<long long>(delay));
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      g.kill_head();
      ++kills;
      g.restart_head();
    } else {
      std::printf("kill %d: crash point %s\n", kills + 1, what.c_str());
      g.restart_head({"ZGRID_CRASH_POINT=" + what});
      if (!g.wait_head_exit(15'000))
        std::printf("  crash point not reached in time; SIGKILL instead\n");
      ++kills;
      g.restart_head();
    }
    std::fflush(stdout);
  }
  EXPECT_GE(kills, 5);
  ASSERT_EQ(submitter.wait(180'000), 0) << testing::read_file(g.dir().file("submit.log"));
  std::string log = testing::read_file(g.dir().file("submit.log"));
  std::string sid = SessionIdFromLog(log);
  ASSERT_EQ(sid.size(), 32u) << log;
  auto conn = g.connect(30'000);
  auto all = FetchAll(*conn, sid, 300'000);
  ASSERT_EQ(all.size(), kN);
  std::set<std::uint64_t> ids;
  std::multiset<std::string> inputs;
  for (const auto& r : all) {
    ASSERT_TRUE(ids.insert(r.request_id).second) << "request " << r.request_id << " answered twice";
    ASSERT_TRUE(r.ok()) << r.fault_code << ": " << r.data;
    ASSERT_TRUE(IsFactorization(std::stoull(r.user_data), r.data))
        << r.user_data << " = " << r.data;
    inputs.insert(r.user_data);
  }
  EXPECT_EQ(inputs, CliRandomInputs(kN, kSeed, kBits));
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("total"), kN);
  EXPECT_EQ(st->u64("done"), kN);
  EXPECT_TRUE(st->boolean("complete"));
}

// The machine crash after the work was acknowledged: LevelDB's log keeps
// its unsynced writes in memory (ZGRID_JOURNAL_VOLATILE_LOG), so the SIGKILL
// loses every group made durable by its segment file alone. The restarted
// head (with no node left to run anything again) applies their redo
// records: every request and every answer is there, exactly once.
TEST(Durable, AcknowledgedWorkSurvivesLosingLevelDbsUnsyncedWrites) {
  const std::uint64_t kN = 20'000, kSeed = 5;
  const int kBits = 40;
  Grid g;
  g.start_durable_head();
  g.restart_head({"ZGRID_JOURNAL_VOLATILE_LOG=1"});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto r = run_cli({"--head", g.frontend(), "--timeout", "60s", "submit", "--durable", "--service",
                    "factorize", "--random", std::to_string(kN), "--seed", std::to_string(kSeed),
                    "--bits", std::to_string(kBits)});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, 32);
  {
    auto conn = g.connect();
    ASSERT_TRUE(testing::wait_until(
        [&] {
          auto st = conn->session_status(sid);
          return st.ok() && st->boolean("complete");
        },
        60'000));
  }
  // No node after the restart: every answer must come from the journal.
  g.node(0).kill_now();
  g.kill_head();
  g.restart_head();
  // LevelDB lost the last groups; their redo records brought them back.
  EXPECT_NE(g.head_log().find("write groups from redo records"), std::string::npos) << g.head_log();
  auto conn = g.connect(30'000);
  {
    auto st = conn->session_status(sid);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->u64("done"), kN);
    ASSERT_TRUE(st->boolean("complete")) << "answers lost with LevelDB's unsynced writes";
  }
  auto all = FetchAll(*conn, sid, 60'000);
  ASSERT_EQ(all.size(), kN);
  std::set<std::uint64_t> ids;
  std::multiset<std::string> inputs;
  for (const auto& x : all) {
    ASSERT_TRUE(ids.insert(x.request_id).second) << "request " << x.request_id << " twice";
    ASSERT_TRUE(x.ok()) << x.fault_code << ": " << x.data;
    ASSERT_TRUE(IsFactorization(std::stoull(x.user_data), x.data)) << x.user_data;
    inputs.insert(x.user_data);
  }
  EXPECT_EQ(inputs, CliRandomInputs(kN, kSeed, kBits));
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("total"), kN);
  EXPECT_EQ(st->u64("done"), kN);
  EXPECT_TRUE(st->boolean("complete"));
}

TEST(Durable, NodeKilledMidBatchLosesNothing) {
  Grid g;
  g.start_durable_head({"--heartbeat", "200ms"});
  std::size_t victim = g.add_node({"--workers", "2", "--prefetch", "64"});
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(2));
  auto conn = g.connect();
  auto info = conn->create_session({"sleep", true, 0});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto bc = BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  const int kN = 3000;
  for (int i = 0; i < kN; ++i) ASSERT_TRUE((*bc)->send("1", std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto st = conn->session_status(info->session_id);
        return st.ok() && st->u64("done") > 300;
      },
      30'000));
  g.node(victim).kill_now();
  auto all = FetchAll(*conn, info->session_id);
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kN));
  std::set<std::string> seen;
  for (const auto& r : all) {
    EXPECT_TRUE(r.ok()) << r.fault_code;
    EXPECT_TRUE(seen.insert(r.user_data).second) << r.user_data << " twice";
  }
}

// BrokerOptions::flush_batches: each full batch is sent flushed, so its
// requests run while the client is still sending, with no flush() and no
// EndRequests; requests still queued in the client (the partial last batch)
// are neither sent nor run.
TEST(Durable, FlushBatchesRunsFullBatchesWithoutAFlushCall) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"echo", true, 0});
  ASSERT_TRUE(info.ok());
  client::BrokerOptions bo;
  bo.batch_items = 100;
  bo.flush_batches = true;
  auto a = BrokerClient::open(*conn, info->session_id, "a", bo);
  ASSERT_TRUE(a.ok());
  for (int i = 0; i < 250; ++i) ASSERT_TRUE((*a)->send(std::to_string(i), "").ok());
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto st = conn->session_status(info->session_id);
        return st.ok() && st->u64("done") == 200;
      },
      20'000));
  auto st = conn->session_status(info->session_id);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("total"), 200u) << "the partial batch stays in the client";
  ASSERT_TRUE((*a)->end_requests().ok());
  ASSERT_TRUE(conn->wait_complete(info->session_id, 20'000, nullptr).ok());
  auto page = conn->fetch(info->session_id, 0, 16384, 0);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->responses.size(), 250u);
}

TEST(Durable, UncommittedClientDoesNotRunWhileCommittedOnesComplete) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"echo", true, 0});
  ASSERT_TRUE(info.ok());
  const std::string sid = info->session_id;
  auto a = BrokerClient::open(*conn, sid, "a");
  auto b = BrokerClient::open(*conn, sid, "b");
  auto c = BrokerClient::open(*conn, sid, "c-no-end");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE((*a)->send(std::string("a").append(std::to_string(i)), "a").ok());
    ASSERT_TRUE((*b)->send(std::string("b").append(std::to_string(i)), "b").ok());
    ASSERT_TRUE((*c)->send(std::string("c").append(std::to_string(i)), "c").ok());
  }
  ASSERT_TRUE((*c)->wait_acked().ok());  // acknowledged, never flushed, never ended
  ASSERT_TRUE((*a)->end_requests().ok());
  ASSERT_TRUE((*b)->end_requests().ok());
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto st = conn->session_status(sid);
        return st.ok() && st->u64("done") == 2000;
      },
      20'000));
  std::this_thread::sleep_for(
      std::chrono::milliseconds(300));  // give c's requests every chance to (wrongly) run
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("total"), 3000u);
  EXPECT_EQ(st->u64("committed"), 2000u);
  EXPECT_EQ(st->u64("done"), 2000u);
  EXPECT_EQ(st->u64("queued"), 0u);
  EXPECT_FALSE(st->boolean("complete"));
  auto nodes = conn->nodes();
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ((*nodes)[0].u64("done"), 2000u) << "the uncommitted client's requests ran";
  auto page = conn->fetch(sid, 0, 16384, 0);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->responses.size(), 2000u);
  for (const auto& r : page->responses) EXPECT_NE(r.user_data, "c");
  EXPECT_FALSE(page->complete);
  // --no-wait says incomplete with exit status 3.
  auto f = run_cli({"--head", g.frontend(), "fetch", sid, "--no-wait"});
  EXPECT_EQ(f.code, 3) << f.err;
}

TEST(Durable, RecoveryRequeuesFlushedWorkAndRestoresCounters) {
  Grid g;
  g.start_durable_head();
  auto conn = g.connect();
  auto info = conn->create_session({"factorize", true, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  for (int i = 2; i < 5002; ++i)
    ASSERT_TRUE((*bc)->send(std::to_string(i), std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());  // committed, with no node to run anything
  bc->reset();
  conn.reset();
  g.kill_head();
  g.restart_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn2 = g.connect();
  auto all = FetchAll(*conn2, info->session_id);
  ASSERT_EQ(all.size(), 5000u);
  for (const auto& r : all) ASSERT_TRUE(IsFactorization(std::stoull(r.user_data), r.data));
  auto st = conn2->session_status(info->session_id);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("total"), 5000u);
  EXPECT_EQ(st->u64("committed"), 5000u);
  EXPECT_EQ(st->u64("done"), 5000u);
  // Restart once more: counters come back exactly.
  conn2.reset();
  g.kill_head();
  g.restart_head();
  auto conn3 = g.connect();
  auto st3 = conn3->session_status(info->session_id);
  ASSERT_TRUE(st3.ok());
  EXPECT_EQ(st3->u64("total"), 5000u);
  EXPECT_EQ(st3->u64("done"), 5000u);
  EXPECT_EQ(st3->u64("committed"), 5000u);
  EXPECT_TRUE(st3->boolean("complete"));
}

TEST(Durable, PurgeLeavesNoKeyAndLateResultsDoNotComeBack) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"sleep", true, 0});
  ASSERT_TRUE(info.ok());
  const std::string sid = info->session_id;
  auto bc = BrokerClient::open(*conn, sid, "c");
  ASSERT_TRUE(bc.ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE((*bc)->send("400", std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  // Purge while two requests run: their results arrive after the purge.
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto st = conn->session_status(sid);
        return st.ok() && st->u64("running") > 0;
      },
      10'000));
  ASSERT_TRUE(conn->close_session(sid, proto::CloseMode::kPurge).ok());
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto n = conn->nodes();
        return n.ok() && n->size() == 1 && (*n)[0].u64("done") >= 2 && (*n)[0].u64("inflight") == 0;
      },
      10'000));
  auto st = conn->session_status(sid);
  EXPECT_EQ(st.status().code(), Code::kNotFound);
  // Stop the head (it releases the journal), then look at every key.
  g.head().signal(SIGTERM);
  ASSERT_EQ(g.head().wait(10'000), 0);
  leveldb::DB* db = nullptr;
  leveldb::Options lo;
  ASSERT_TRUE(leveldb::DB::Open(lo, g.data_dir() + "/journal", &db).ok());
  std::unique_ptr<leveldb::Iterator> it(db->NewIterator(leveldb::ReadOptions()));
  int tombstones = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string key = it->key().ToString();
    if (key.find(sid) == std::string::npos) continue;
    EXPECT_EQ(key[0], 'T') << "key of the purged session left: " << key;
    ++tombstones;
  }
  EXPECT_EQ(tombstones, 1);
  it.reset();
  delete db;
}

// A small session's writes stay in LevelDB (no segment file, no fdatasync
// of its own); a big one's go to its segment file. Both survive a SIGKILL
// of the head, answers and all, and a purge leaves neither behind.
TEST(Durable, SmallSessionsStayInTheLevelDbLogAndSurviveAKill) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto submit = [&](int n) {
    auto info = conn->create_session({"echo", true, 0});
    EXPECT_TRUE(info.ok());
    auto bc = BrokerClient::open(*conn, info->session_id, "c");
    EXPECT_TRUE(bc.ok());
    for (int i = 1; i <= n; ++i)
      EXPECT_TRUE((*bc)->send(std::string(1, 'p').append(std::to_string(i)), "").ok());
    EXPECT_TRUE((*bc)->end_requests().ok());  // committed
    return info->session_id;
  };
  std::string small = submit(3), big = submit(2'000);
  EXPECT_EQ(testing::fetch_all(*conn, small).size(), 3u);
  EXPECT_EQ(testing::fetch_all(*conn, big).size(), 2'000u);
  auto segment = [&](const std::string& sid) {
    return std::filesystem::exists(g.data_dir() + "/segments/" + sid + ".seg");
  };
  EXPECT_FALSE(segment(small));
  EXPECT_TRUE(segment(big));
  g.kill_head();
  g.restart_head();
  conn = g.connect();
  for (const auto& [sid, n] : {std::pair{small, 3}, std::pair{big, 2'000}}) {
    auto all = testing::fetch_all(*conn, sid);
    ASSERT_EQ(all.size(), static_cast<std::size_t>(n)) << sid;
    std::set<std::uint64_t> ids;
    for (const auto& r : all) {
      EXPECT_TRUE(r.ok());
      EXPECT_EQ(r.data, std::string(1, 'p').append(std::to_string(r.request_id)));
      ids.insert(r.request_id);
    }
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(n));
    EXPECT_TRUE(conn->close_session(sid, proto::CloseMode::kPurge).ok());
  }
  EXPECT_FALSE(segment(big));
}

TEST(Durable, ResponseStreamFromACursorAndSeveralClients) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  std::string sid;
  {
    auto conn = g.connect();
    auto info = conn->create_session({"echo", true, 0});
    ASSERT_TRUE(info.ok());
    sid = info->session_id;
    auto a = BrokerClient::open(*conn, sid, "a");
    auto b = BrokerClient::open(*conn, sid, "b");
    ASSERT_TRUE(a.ok() && b.ok());
    for (int i = 0; i < 300; ++i) {
      ASSERT_TRUE((*a)->send(std::string("a").append(std::to_string(i)), "").ok());
      ASSERT_TRUE((*b)->send(std::string("b").append(std::to_string(i)), "").ok());
    }
    ASSERT_TRUE((*a)->end_requests().ok());
    ASSERT_TRUE((*b)->end_requests().ok());
  }  // the submitting connection is gone: attach by id from another one
  auto conn = g.connect();
  ASSERT_TRUE(conn->attach(sid).ok());
  client::ResponseStream all(*conn, sid);
  std::vector<proto::Response> got;
  proto::Response r;
  while (true) {
    auto more = all.next(&r, 30'000);
    ASSERT_TRUE(more.ok()) << more.status().ToString();
    if (!*more) break;
    got.push_back(r);
  }
  ASSERT_EQ(got.size(), 600u);
  // From a cursor: the tail only, the same responses in the same order.
  client::ResponseStream tail(*conn, sid, 401);
  std::size_t i = 400;
  while (tail.next(&r, 30'000).value()) {
    ASSERT_LT(i, got.size());
    EXPECT_EQ(r.request_id, got[i].request_id);
    EXPECT_EQ(r.data, got[i].data);
    ++i;
  }
  EXPECT_EQ(i, 600u);
  EXPECT_EQ(tail.cursor(), 601u);
}

TEST(Durable, LargeResponsesAreFetchedInPagesUnderTheFrameLimit) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"echo", true, 0});
  ASSERT_TRUE(info.ok());
  auto bc = BrokerClient::open(*conn, info->session_id, "c");
  ASSERT_TRUE(bc.ok());
  std::string big(700 << 10, 'q');
  for (int i = 0; i < 30; ++i) ASSERT_TRUE((*bc)->send(big, std::to_string(i)).ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  auto all = FetchAll(*conn, info->session_id, 60'000);
  ASSERT_EQ(all.size(), 30u);
  for (const auto& r : all) EXPECT_EQ(r.data.size(), big.size());
}

TEST(Durable, RetentionPurgesCompleteSessions) {
  Grid g;
  g.start_durable_head({"--retention", "1s"});
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto r = run_cli(
      {"--head", g.frontend(), "submit", "--durable", "--service", "factorize", "--random", "10"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, 32);
  auto conn = g.connect();
  EXPECT_TRUE(testing::wait_until(
      [&] {
        auto st = conn->session_status(sid);
        return !st.ok() && st.status().message().find("purged") != std::string::npos;
      },
      15'000, 100));
}

// examples/soa_client: submit and exit, then attach by id from another run.
TEST(Durable, SoaExampleSubmitsThenCollectsFromAnotherProcess) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  testing::Process submit({ZGRID_SOA_EXAMPLE_BIN, "submit", g.frontend(), "25"},
                          g.dir().file("submit.out"));
  ASSERT_EQ(submit.wait(30'000), 0) << testing::read_file(g.dir().file("submit.out"));
  std::string sid = testing::read_file(g.dir().file("submit.out")).substr(0, 32);
  testing::Process collect({ZGRID_SOA_EXAMPLE_BIN, "collect", g.frontend(), sid},
                           g.dir().file("collect.out"));
  ASSERT_EQ(collect.wait(30'000), 0) << testing::read_file(g.dir().file("collect.out"));
  std::string out = testing::read_file(g.dir().file("collect.out"));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 25) << out;
  EXPECT_NE(out.find("request 1: 1000000007\n"), std::string::npos) << out;  // a prime
  EXPECT_NE(out.find("request 2: 2 * 1000000007\n"), std::string::npos) << out;
}

TEST(Durable, CancelFaultsWhatHasNotRunAndKeepsResults) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "1", "--prefetch", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  std::string in;
  for (int i = 0; i < 100; ++i) in += "30\n";  // 3 s of work for one worker
  auto r = run_cli(
      {"--head", g.frontend(), "submit", "--durable", "--service", "sleep", "--file", "-"}, in);
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, 32);
  auto conn = g.connect();
  ASSERT_TRUE(
      testing::wait_until([&] { return conn->session_status(sid)->u64("done") >= 3; }, 10'000));
  auto c = run_cli({"--head", g.frontend(), "cancel", sid});
  EXPECT_EQ(c.code, 0) << c.err;
  auto f = run_cli({"--head", g.frontend(), "fetch", sid});
  EXPECT_EQ(f.code, 1) << "cancelled requests are faults: " << f.err;
  std::size_t done = 0, cancelled = 0;
  std::istringstream lines(f.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line == "30 = 30")
      ++done;
    else if (line.rfind("30: error: cancelled: ", 0) == 0)
      ++cancelled;
  }
  EXPECT_EQ(done + cancelled, 100u) << f.out;
  EXPECT_GE(done, 3u);
  EXPECT_GT(cancelled, 50u);
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->str("state"), "cancelled");
  // Results are kept: a second fetch, after a head restart, gives the same set.
  conn.reset();
  g.kill_head();
  g.restart_head();
  auto f2 = run_cli({"--head", g.frontend(), "fetch", sid});
  EXPECT_EQ(f2.code, 1);
  EXPECT_EQ(std::count(f2.out.begin(), f2.out.end(), '\n'), 100) << f2.out;
}

TEST(Durable, SecondHeadOnTheSameDataDirectoryStaysStandby) {
  Grid g;
  g.start_durable_head();
  testing::HeadProcess second(g.dir(), "second", g.data_dir(), {"--http", "off"});
  second.start();
  EXPECT_EQ(second.role(), "standby");
  std::string log = second.log();
  EXPECT_NE(log.find("PID " + std::to_string(g.head().pid())), std::string::npos) << log;
  // It never opened the journal; the first head serves on.
  EXPECT_EQ(log.find("journal recovered"), std::string::npos) << log;
  auto r = run_cli({"--head", g.frontend(), "status"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("active"), std::string::npos) << r.out;
}

TEST(Durable, NewerJournalVersionIsRefused) {
  testing::TempDir d;
  std::filesystem::create_directories(d.file("data"));
  {
    leveldb::DB* db = nullptr;
    leveldb::Options lo;
    lo.create_if_missing = true;
    ASSERT_TRUE(leveldb::DB::Open(lo, d.file("data") + "/journal", &db).ok());
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), std::string(1, '\0') + "version", "9").ok());
    delete db;
  }
  testing::Process head({ZGRID_HEAD_BIN, "--data-dir", d.file("data"), "--frontend",
                         "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0"},
                        d.file("log"));
  EXPECT_EQ(head.wait(10'000), 2);
  std::string log = testing::read_file(d.file("log"));
  EXPECT_NE(log.find("format v9, newer than this zgrid-head (v4): upgrade zgrid-head"),
            std::string::npos)
      << log;
}

// A journal of format v2 or v3 (a one-message session as four records:
// session, client, index, request batch; one answer recorded) opened by
// this head: migrated to v4 at start (logged), the session recovered
// exactly — the answered request not run again, the others run — and
// fetched by another process; the directory then says v4.
void UpgradeAndRecover(const std::string& from);

TEST(Durable, AnOlderFormatJournalIsUpgradedAndRecoveredExactly) {
  for (const char* from : {"2", "3"}) {
    SCOPED_TRACE(from);
    UpgradeAndRecover(from);
  }
}

void UpgradeAndRecover(const std::string& from) {
  Grid g;
  const std::string sid(32, '7');
  const std::vector<std::string> numbers{"1000000007", "2000000014", "91"};
  std::filesystem::create_directories(g.data_dir());
  {
    leveldb::DB* db = nullptr;
    leveldb::Options lo;
    lo.create_if_missing = true;
    ASSERT_TRUE(leveldb::DB::Open(lo, g.data_dir() + "/journal", &db).ok());
    std::unique_ptr<leveldb::DB> hold(db);
    proto::Submit m;
    m.create.service = "factorize";
    m.create.durable = true;
    m.client_id = "c";
    for (const auto& n : numbers) m.items.push_back({n, n});
    zmq::message_t frame = proto::encode_submit(1, m);
    head::RequestRecord rr{{}, 1, std::string_view(frame.data<char>(), frame.size())};
    std::string rv = rr.encode();
    head::SessionRecord sr{"factorize", 1700000000, 300000, proto::SessionState::kSealed};
    Writer answers;  // request 1 answered before the "upgrade"
    answers.array(1);
    proto::write_response_item(answers, 1, "1000000007", "", "1000000007");
    leveldb::WriteBatch b;
    b.Put(head::jkey::meta("version"), from);
    b.Put(head::jkey::session(head::jkey::kSession, sid), sr.encode());
    b.Put(head::jkey::client(sid, "c"), head::ClientRecord{3, 3, 3, true, false, 3}.encode());
    b.Put(head::jkey::numbered(head::jkey::kIndex, sid, 1),
          head::IndexRecord{3, "c", rv.size()}.encode());
    b.Put(head::jkey::numbered(head::jkey::kRequests, sid, 1), rv);
    b.Put(head::jkey::numbered(head::jkey::kAnswers, sid, 1), answers.finish_string());
    ASSERT_TRUE(db->Write(leveldb::WriteOptions(), &b).ok());
  }
  g.start_durable_head();
  EXPECT_NE(g.head_log().find("migrated from format v" + from + " to v4"), std::string::npos)
      << g.head_log();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto f = run_cli({"--head", g.frontend(), "fetch", sid});
  ASSERT_EQ(f.code, 0) << f.err;
  std::multiset<std::string> inputs;
  std::istringstream lines(f.out);
  for (std::string line; std::getline(lines, line);) {
    auto eq = line.find(" = ");
    ASSERT_NE(eq, std::string::npos) << line;
    EXPECT_TRUE(IsFactorization(std::stoull(line.substr(0, eq)), line.substr(eq + 3))) << line;
    inputs.insert(line.substr(0, eq));
  }
  EXPECT_EQ(inputs, std::multiset<std::string>(numbers.begin(), numbers.end())) << f.out;
  auto conn = g.connect();
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->u64("total"), 3u);
  EXPECT_EQ(st->u64("done"), 3u);
  EXPECT_TRUE(st->boolean("complete"));
  g.kill_head();
  leveldb::DB* db = nullptr;
  ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), g.data_dir() + "/journal", &db).ok());
  std::string v;
  EXPECT_TRUE(db->Get(leveldb::ReadOptions(), head::jkey::meta("version"), &v).ok());
  EXPECT_EQ(v, "4");
  delete db;
}

// A journal that cannot write: new requests are refused with a clear error,
// nothing unsynced is acknowledged, fetch and status keep working, and the
// head accepts work again once the journal can write.
TEST(Durable, InjectedWriteErrorRefusesThenRecovers) {
  Grid g;
  std::string fault = g.dir().file("journal-fault");
  g.start_durable_head();
  g.restart_head({"ZGRID_JOURNAL_FAULT_FILE=" + fault});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto ok1 = run_cli(
      {"--head", g.frontend(), "submit", "--durable", "--service", "factorize", "--random", "500"});
  ASSERT_EQ(ok1.code, 0) << ok1.err;
  std::string sid = ok1.out.substr(0, 32);
  auto watcher = g.connect();
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto st = watcher->session_status(sid);
        return st.ok() && st->boolean("complete");
      },
      20'000));
  { std::ofstream(fault) << "x"; }
  auto bad = run_cli(
      {"--head", g.frontend(), "submit", "--durable", "--service", "factorize", "--random", "500"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("journal"), std::string::npos) << bad.err;
  EXPECT_TRUE(bad.out.empty()) << "nothing may be reported committed: " << bad.out;
  // Reads still work.
  auto f = run_cli({"--head", g.frontend(), "fetch", sid});
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(std::count(f.out.begin(), f.out.end(), '\n'), 500);
  auto st = run_cli({"--head", g.frontend(), "status"});
  EXPECT_EQ(st.code, 0);
  EXPECT_NE(st.out.find("journal write failed"), std::string::npos) << st.out;
  // Space is back: the head reopens the journal and accepts work again.
  std::filesystem::remove(fault);
  bool recovered = testing::wait_until(
      [&] {
        auto r = run_cli({"--head", g.frontend(), "submit", "--durable", "--service", "factorize",
                          "--random", "200"});
        return r.code == 0;
      },
      20'000, 500);
  EXPECT_TRUE(recovered);
  EXPECT_NE(g.head_log().find("journal accepting requests again"), std::string::npos);
}

// Issue 13.2: a journaled change of state (seal, cancel, purge, client
// removal) takes effect only once written. While the journal refuses
// writes each fails with one clear line and leaves the session exactly as it
// was; a retry writes again; nothing comes back or goes missing after a
// SIGKILL.
TEST(Durable, FailedStateChangesLeaveTheSessionAsItWas) {
  Grid g;
  std::string fault = g.dir().file("journal-fault");
  g.start_durable_head();
  g.restart_head({"ZGRID_JOURNAL_FAULT_FILE=" + fault});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto cli = [&](std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--head", g.frontend()});
    return run_cli(args, in);
  };
  auto sub = cli({"submit", "--durable", "--service", "factorize", "--random", "300"});
  ASSERT_EQ(sub.code, 0) << sub.err;
  std::string sid = sub.out.substr(0, 32);
  ASSERT_EQ(cli({"fetch", sid}).code, 0);
  // A second, uncommitted session whose client goes idle (1 s).
  auto open = cli({"submit", "--durable", "--service", "sleep", "--no-end", "--client-idle-timeout",
                   "1s", "--file", "-"},
                  "5\n6\n7\n");
  ASSERT_EQ(open.code, 0) << open.err;
  std::string idle_sid = SessionIdFromLog(open.err);
  ASSERT_EQ(idle_sid.size(), 32u) << open.err;

  auto state_of = [&](const std::string& id) {
    auto st = cli({"status", id, "--json"});
    auto at = st.out.find("\"state\": \"");
    return at == std::string::npos ? st.out : st.out.substr(at, st.out.find(',', at) - at);
  };
  // Committed and all answered: "complete", or "sealed" as one message makes it.
  const std::string state_before = state_of(sid);
  EXPECT_TRUE(state_before == "\"state\": \"complete\"" || state_before == "\"state\": \"sealed\"")
      << state_before;
  { std::ofstream(fault) << "x"; }
  for (std::vector<std::string> close :
       {std::vector<std::string>{"close", sid}, {"cancel", sid}, {"close", sid, "--purge"}}) {
    auto r = cli(close);
    EXPECT_EQ(r.code, 2) << close[0] << ": " << r.err;
    EXPECT_NE(r.err.find("journal"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  // Exactly as it was: the same state, 300 answers, fetchable.
  EXPECT_EQ(state_of(sid), state_before);
  auto f = cli({"fetch", sid});
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(std::count(f.out.begin(), f.out.end(), '\n'), 300);
  // The idle client's removal fails too: logged, and it is not removed.
  EXPECT_TRUE(testing::wait_until(
      [&] {
        return g.head_log().find("client removal failed session=" + idle_sid) != std::string::npos;
      },
      10'000, 50));
  auto ist = cli({"status", idle_sid, "--json"});
  EXPECT_NE(ist.out.find("\"removed\": 0"), std::string::npos) << ist.out;
  EXPECT_NE(g.head_log().find("purge failed session=" + sid), std::string::npos);

  // A crash now changes nothing either.
  g.kill_head();
  g.restart_head({"ZGRID_JOURNAL_FAULT_FILE=" + fault});
  std::filesystem::remove(fault);
  f = cli({"fetch", sid});
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(std::count(f.out.begin(), f.out.end(), '\n'), 300);

  // With the journal back, the retry writes: the purge holds across a SIGKILL.
  EXPECT_TRUE(testing::wait_until(
      [&] {
        return cli({"close", sid, "--purge"}).code == 0;
      },
      20'000, 250));
  auto gone = cli({"fetch", sid});
  EXPECT_EQ(gone.code, 2);
  EXPECT_NE(gone.err.find("was purged"), std::string::npos) << gone.err;
  // ... and the idle client is removed once the journal takes it.
  EXPECT_TRUE(testing::wait_until(
      [&] {
        auto x = cli({"status", idle_sid, "--json"});
        return x.out.find("\"removed\": 3") != std::string::npos;
      },
      20'000, 200));
  g.kill_head();
  g.restart_head();
  gone = cli({"fetch", sid});
  EXPECT_EQ(gone.code, 2);
  EXPECT_NE(gone.err.find("was purged"), std::string::npos) << gone.err;
  auto after = cli({"status", idle_sid, "--json"});
  EXPECT_NE(after.out.find("\"removed\": 3"), std::string::npos) << after.out;
}

// A write that reports failure after its data reached LevelDB's log (a
// failed sync) comes back when the journal is reopened: the head takes it
// into account, so the client's resend is a duplicate, not a second copy.
TEST(Durable, WriteThatFailsAfterReachingTheLogIsNotDoubled) {
  Grid g;
  std::string fault = g.dir().file("journal-fault");
  g.start_durable_head();
  g.restart_head({"ZGRID_JOURNAL_FAULT_FILE=" + fault, "ZGRID_JOURNAL_FAULT_MODE=after"});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"echo", true, 0});
  ASSERT_TRUE(info.ok());
  const std::string sid = info->session_id;
  {
    auto bc = BrokerClient::open(*conn, sid, "c");
    ASSERT_TRUE(bc.ok());
    for (int i = 0; i < 100; ++i)
      ASSERT_TRUE((*bc)->send(std::to_string(i), std::to_string(i)).ok());
    ASSERT_TRUE((*bc)->flush().ok());
    ASSERT_TRUE((*bc)->wait_acked().ok());
    // Let the first answers reach the journal, so that the next write is
    // this client's batch: the one that fails after reaching the log.
    ASSERT_TRUE(testing::wait_until(
        [&] {
          auto st = conn->session_status(sid);
          return st.ok() && st->u64("done") == 100;
        },
        10'000));
    { std::ofstream(fault) << "x"; }
    for (int i = 100; i < 200; ++i)
      ASSERT_TRUE((*bc)->send(std::to_string(i), std::to_string(i)).ok());
    Status st = (*bc)->flush();
    if (st.ok()) st = (*bc)->wait_acked();
    ASSERT_FALSE(st.ok()) << "the write was reported failed: it must not be acknowledged";
  }
  std::filesystem::remove(fault);
  // The same client comes back: the head knows what reached the journal.
  std::unique_ptr<BrokerClient> bc;
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto b = BrokerClient::open(*conn, sid, "c");
        if (!b.ok()) return false;
        bc = std::move(b).value();
        return g.head_log().find("journal accepting requests again") != std::string::npos;
      },
      20'000, 200));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a tick after the reopen
  bc.reset();
  auto b2 = BrokerClient::open(*conn, sid, "c");
  ASSERT_TRUE(b2.ok()) << b2.status().ToString();
  std::uint64_t acked = (*b2)->acked();
  EXPECT_EQ(acked, 200u) << "the batch that reached the log is known after the reopen";
  for (std::uint64_t i = acked; i < 200; ++i)
    ASSERT_TRUE((*b2)->send(std::to_string(i), std::to_string(i)).ok());
  ASSERT_TRUE((*b2)->end_requests().ok());
  auto all = FetchAll(*conn, sid, 60'000);
  std::multiset<std::string> inputs;
  for (const auto& r : all) inputs.insert(r.user_data);
  EXPECT_EQ(all.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(inputs.count(std::to_string(i)), 1u) << i;
}

#define REQUIRE_SMALL_DISK(disk)                                           \
  do {                                                                     \
    if (!(disk).mounted()) {                                               \
      if (std::getenv("CI") && std::string(std::getenv("CI")) == "true")   \
        FAIL() << "cannot mount a tmpfs (needs root): " << (disk).error(); \
      GTEST_SKIP() << "needs root to mount a small tmpfs";                 \
    }                                                                      \
  } while (0)

// Submits durable sessions of `per_session` echo requests of 32 KiB until the
// head refuses one; returns the committed session ids and the refusal.
std::vector<std::string> FillDisk(Grid& g, int per_session, testing::CliResult* refused) {
  std::string line(32 << 10, 'z');
  std::string input;
  for (int i = 0; i < per_session; ++i) input += line + "\n";
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    auto r = run_cli(
        {"--head", g.frontend(), "submit", "--durable", "--service", "echo", "--file", "-"}, input);
    if (r.code != 0) {
      *refused = r;
      break;
    }
    ids.push_back(r.out.substr(0, 32));
  }
  return ids;
}

// Issue 13.3: below the free-space watermark, purging a session gives its
// space back within seconds (its segment file is deleted; the disk reserve
// makes room for LevelDB's deletions), and new durable work is accepted
// again without a restart. Earlier the purge "succeeded" and freed nothing.
TEST(Durable, PurgeOnAFullDiskGivesTheSpaceBack) {
  Grid g;
  testing::SmallDisk disk(g.dir().file("small"), "48m");
  REQUIRE_SMALL_DISK(disk);
  g.start_head({"--data-dir", g.dir().file("small") + "/data", "--min-free-space", "20M",
                "--disk-reserve", "4M"});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  testing::CliResult refused;
  auto ids = FillDisk(g, 60, &refused);
  ASSERT_GE(ids.size(), 2u) << refused.err;
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("resource_exhausted"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("disk is full"), std::string::npos) << refused.err;
  ASSERT_EQ(run_cli({"--head", g.frontend(), "fetch", ids[0]}).code, 0);
  std::string data = g.dir().file("small") + "/data";
  std::uint64_t before = disk.free_with_reserve(data);
  auto p = run_cli({"--head", g.frontend(), "close", ids[0], "--purge"});
  ASSERT_EQ(p.code, 0) << p.err;
  // 60 requests and 60 answers of 32 KiB each: about 3.8 MB back.
  EXPECT_TRUE(testing::wait_until(
      [&] { return disk.free_with_reserve(data) >= before + (3u << 20); }, 10'000, 50))
      << before << " -> " << disk.free_with_reserve(data);
  // New durable work is accepted again, by itself.
  EXPECT_TRUE(testing::wait_until(
      [&] {
        return run_cli({"--head", g.frontend(), "submit", "--durable", "--service", "echo",
                        "--file", "-"},
                       "after\n")
                   .code == 0;
      },
      10'000, 250));
  // The other sessions are intact.
  auto f = run_cli({"--head", g.frontend(), "fetch", ids[1]});
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(std::count(f.out.begin(), f.out.end(), '\n'), 60);
}

// Fills what is left of the disk with a file of the test's own, to ENOSPC.
void FillWithFile(const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  std::string block(64 << 10, 'f');
  while (f.write(block.data(), static_cast<std::streamsize>(block.size()))) {
  }
}

// Issues 13.3 and 13.4 on a truly full disk (another program filled it:
// writes fail with ENOSPC). A purge still succeeds and gives its space back;
// the head restarts on the full disk after a SIGKILL, serves status and
// fetch, refuses new durable work with resource_exhausted, purges there too,
// and takes work again once space returns, without a restart.
TEST(Durable, TrulyFullDiskStartsPurgesAndRecovers) {
  Grid g;
  testing::SmallDisk disk(g.dir().file("small"), "32m");
  REQUIRE_SMALL_DISK(disk);
  std::string mnt = g.dir().file("small");
  g.start_head({"--data-dir", mnt + "/data", "--min-free-space", "1M", "--disk-reserve", "4M"});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  std::vector<std::string> ids;
  std::string input;
  for (int i = 0; i < 40; ++i) input += std::string(32 << 10, 'a' + i % 26) + "\n";
  for (int i = 0; i < 3; ++i) {
    auto r = run_cli(
        {"--head", g.frontend(), "submit", "--durable", "--service", "echo", "--file", "-"}, input);
    ASSERT_EQ(r.code, 0) << r.err;
    ids.push_back(r.out.substr(0, 32));
    ASSERT_EQ(run_cli({"--head", g.frontend(), "fetch", ids.back()}).code, 0);
  }
  auto cli = [&](std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--head", g.frontend()});
    return run_cli(args, in);
  };
  auto refused = [&] {
    // The head sees the free space after each write and every second: the
    // watermark is passed by at most one write group.
    EXPECT_TRUE(testing::wait_until(
        [&] { return cli({"status"}).out.find("below the watermark") != std::string::npos; }, 5'000,
        50));
    auto no = cli({"submit", "--durable", "--service", "echo", "--file", "-"}, "x\n");
    EXPECT_EQ(no.code, 2);
    EXPECT_NE(no.err.find("zgrid: error: resource_exhausted: "), std::string::npos) << no.err;
  };

  FillWithFile(mnt + "/filler1");
  EXPECT_LT(disk.free_bytes(), 64u << 10);
  refused();
  // A purge on the full disk, head running: 40 requests and answers of 32
  // KiB, about 2.5 MB, come back (part of it may refill the disk reserve).
  std::string data = mnt + "/data";
  std::uint64_t before = disk.free_with_reserve(data);
  auto p = cli({"close", ids[0], "--purge"});
  ASSERT_EQ(p.code, 0) << p.err << g.head_log();
  EXPECT_TRUE(testing::wait_until(
      [&] { return disk.free_with_reserve(data) >= before + (2u << 20); }, 10'000, 50));

  // Full again; SIGKILL; the head starts on the full disk.
  FillWithFile(mnt + "/filler2");
  EXPECT_LT(disk.free_bytes(), 64u << 10);
  g.kill_head();
  g.restart_head();
  auto st = cli({"status"});
  ASSERT_EQ(st.code, 0) << st.err << g.head_log();
  EXPECT_NE(st.out.find("below the watermark"), std::string::npos) << st.out;
  auto f = cli({"fetch", ids[1]});
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(std::count(f.out.begin(), f.out.end(), '\n'), 40);
  refused();
  before = disk.free_with_reserve(data);
  p = cli({"close", ids[1], "--purge"});
  ASSERT_EQ(p.code, 0) << p.err << g.head_log();
  EXPECT_TRUE(testing::wait_until(
      [&] { return disk.free_with_reserve(data) >= before + (2u << 20); }, 10'000, 50))
      << before << " -> " << disk.free_with_reserve(data) << "\n"
      << g.head_log();
  // Space returns: the head takes durable work again by itself.
  std::filesystem::remove(mnt + "/filler1");
  std::filesystem::remove(mnt + "/filler2");
  EXPECT_TRUE(testing::wait_until(
      [&] {
        return cli({"submit", "--durable", "--service", "echo", "--file", "-"}, "after\n").code ==
               0;
      },
      15'000, 250))
      << g.head_log();
  // Nothing committed was lost, across all of it and one more SIGKILL.
  g.kill_head();
  g.restart_head();
  auto last = cli({"fetch", ids[2]});
  EXPECT_EQ(last.code, 0) << last.err;
  EXPECT_EQ(std::count(last.out.begin(), last.out.end(), '\n'), 40);
  EXPECT_EQ(cli({"fetch", ids[0]}).code, 2);  // purged stays purged
}

// Issue 27, "Also": a head started where free space is below
// --min-free-space plus --disk-reserve refuses every durable request from its
// first second; it says so at start, at WARN, with the free space, both
// figures and the flags that lower them.
TEST(Durable, StartingBelowTheWatermarkWarnsWithTheFiguresAndTheFlags) {
  Grid g;
  testing::SmallDisk disk(g.dir().file("small"), "16m");
  REQUIRE_SMALL_DISK(disk);
  g.start_head({"--data-dir", g.dir().file("small") + "/data"});  // 64M + 32M by default
  std::string log = g.head_log();
  // The journal's WARN line (others may come first: the HTTP port taken by
  // a test running beside this one).
  auto at = log.find("WARN journal: starting with ");
  ASSERT_NE(at, std::string::npos) << log;
  std::string line = log.substr(at, log.find('\n', at) - at);
  EXPECT_NE(line.find("starting with "), std::string::npos) << line;
  EXPECT_NE(line.find(" MiB free in " + g.dir().file("small") + "/data"), std::string::npos)
      << line;
  EXPECT_NE(line.find("--min-free-space (64 MiB)"), std::string::npos) << line;
  EXPECT_NE(line.find("--disk-reserve (32 MiB"), std::string::npos) << line;
  EXPECT_NE(line.find("lower --disk-reserve"), std::string::npos) << line;
  // What it announced: durable work refused; a lower reserve is the way out.
  auto no = run_cli(
      {"--head", g.frontend(), "submit", "--durable", "--service", "echo", "--file", "-"}, "x\n");
  EXPECT_EQ(no.code, 2);
  EXPECT_NE(no.err.find("the journal's disk is full"), std::string::npos) << no.err;
  g.kill_head();
  std::size_t seen = g.head_log().size();  // the log is appended to
  g.start_head({"--data-dir", g.dir().file("small") + "/data", "--min-free-space", "1M",
                "--disk-reserve", "0"});
  EXPECT_EQ(g.head_log().find("starting with ", seen), std::string::npos) << g.head_log();
  auto yes = run_cli(
      {"--head", g.frontend(), "submit", "--durable", "--service", "echo", "--file", "-"}, "x\n");
  EXPECT_EQ(yes.code, 0) << yes.err;
}

// Issue 27, "Also": a durable submit refused because a write met ENOSPC
// leaves no empty segment file behind (it stayed until a restart).
TEST(Durable, ASubmitRefusedOnAFullDiskLeavesNoEmptySegment) {
  Grid g;
  testing::SmallDisk disk(g.dir().file("small"), "8m");
  REQUIRE_SMALL_DISK(disk);
  std::string mnt = g.dir().file("small");
  // No watermark: the write itself meets the full disk.
  g.start_head({"--data-dir", mnt + "/data", "--min-free-space", "0", "--disk-reserve", "0"});
  // A file of its own (not the stdin pipe): the session, its requests and
  // their commit go as one message, in one journal write.
  std::string input = g.dir().file("input.txt");
  {
    std::ofstream f(input);
    for (int i = 0; i < 20; ++i) f << std::string(32 << 10, 'a' + i) << "\n";
  }
  FillWithFile(mnt + "/filler");
  auto no = run_cli(
      {"--head", g.frontend(), "submit", "--durable", "--service", "echo", "--file", input});
  EXPECT_EQ(no.code, 2) << no.err;
  EXPECT_NE(no.err.find("No space left on device"), std::string::npos) << no.err;
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(mnt + "/data/segments"))
    left.push_back(e.path().filename().string() + " (" +
                   std::to_string(std::filesystem::file_size(e.path())) + " bytes)");
  EXPECT_TRUE(left.empty()) << left.front() << "\n" << g.head_log();
  // The head still takes work once there is space.
  std::filesystem::remove(mnt + "/filler");
  EXPECT_TRUE(testing::wait_until(
      [&] {
        return run_cli({"--head", g.frontend(), "submit", "--durable", "--service", "echo",
                        "--file", input})
                   .code == 0;
      },
      15'000, 250))
      << g.head_log();
}

// Issue 27, "Also": after a SIGKILL on a full disk, a committed session
// cannot progress (its results could not be journaled): fetch and wait say
// so on stderr while they wait, and the session's status says so to a
// program. Earlier fetch waited its whole timeout with an empty stderr.
TEST(Durable, WorkPausedByAFullDiskIsSaidToTheFetchingUser) {
  Grid g;
  testing::SmallDisk disk(g.dir().file("small"), "32m");
  REQUIRE_SMALL_DISK(disk);
  std::string mnt = g.dir().file("small");
  g.start_head({"--data-dir", mnt + "/data", "--min-free-space", "1M", "--disk-reserve", "4M"});
  auto cli = [&](std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--head", g.frontend()});
    return run_cli(args, in, 30'000);
  };
  // Committed, not run yet (no node).
  auto r = cli({"submit", "--durable", "--service", "echo", "--file", "-"}, "a\nb\nc\n");
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, 32);
  FillWithFile(mnt + "/filler");
  g.kill_head();
  g.restart_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  r = cli({"fetch", sid, "--wait-timeout", "2s"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("zgrid: session " + sid + " is paused: the head's journal disk is full"),
            std::string::npos)
      << r.err << g.head_log();
  EXPECT_NE(r.err.find("work on durable sessions is paused until space is freed"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("no node offers"), std::string::npos) << r.err;
  r = cli({"wait", sid, "--timeout", "1s"});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("is paused: the head's journal disk is full"), std::string::npos) << r.err;
  r = cli({"status", sid, "--json"});
  EXPECT_NE(r.out.find("\"paused\": \"the head's journal disk is full"), std::string::npos)
      << r.out;
  // Space back: the work runs by itself and fetch gets every answer.
  std::filesystem::remove(mnt + "/filler");
  r = cli({"fetch", sid, "--wait-timeout", "20s"});
  EXPECT_EQ(r.code, 0) << r.err << g.head_log();
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;
  EXPECT_EQ(cli({"status", sid, "--json"}).out.find("\"paused\": \"the"), std::string::npos);
}

}  // namespace
}  // namespace zgrid
