// head/session_table: ids, ordinals and tombstones; per-key loads kept
// incrementally and equal to a recount; the idle sweep's verdicts.
#include <gtest/gtest.h>

#include "head/session_table.hpp"

namespace zgrid::head {
namespace {

Session& Make(SessionTable& t, const std::string& owner, std::uint64_t total) {
  Session& s = t.create(owner);
  s.total = total;
  t.touch(s);
  return s;
}

TEST(SessionTable, IdsAreFreshAndNeverReusedOrdinalsFindSessions) {
  SessionTable t;
  Session& a = t.create("k");
  Session& b = t.create("k", std::string(32, 'b'));  // recovered under its id
  EXPECT_EQ(a.id.size(), 32u);
  EXPECT_NE(a.id, b.id);
  EXPECT_EQ(t.find(a.id), &a);
  EXPECT_EQ(t.by_ordinal(b.ordinal), &b);
  EXPECT_NE(a.ordinal, b.ordinal);
  std::string gone = a.id;
  std::uint64_t ord = a.ordinal;
  t.add_tombstone(gone);
  t.drop(&a);
  EXPECT_EQ(t.find(gone), nullptr);
  EXPECT_EQ(t.by_ordinal(ord), nullptr);
  EXPECT_TRUE(t.purged(gone));
  EXPECT_EQ(t.size(), 1u);
  for (int i = 0; i < 100; ++i) EXPECT_NE(t.create("k").id, gone);
}

TEST(SessionTable, KeyLoadsFollowTouchesAndMatchARecount) {
  SessionTable t;
  Session& a = Make(t, "alice", 100);
  Session& b = Make(t, "alice", 50);
  Session& c = Make(t, "bob", 7);
  EXPECT_EQ(t.load("alice").sessions, 2u);
  EXPECT_EQ(t.load("alice").open, 2u);
  EXPECT_EQ(t.load("alice").queued, 150u);
  EXPECT_EQ(t.load("bob").queued, 7u);
  EXPECT_EQ(t.load("nobody"), KeyLoad{});

  a.running = 30;  // on nodes: no longer queued
  a.done = 20;
  a.faulted = 5;
  a.journal_bytes = 4096;
  t.touch(a);
  EXPECT_EQ(t.load("alice").queued, 45u + 50u);
  EXPECT_EQ(t.load("alice").journal_bytes, 4096u);
  b.state = proto::SessionState::kSealed;
  b.requests_removed = 50;  // its client removed with all it sent
  t.touch(b);
  EXPECT_EQ(t.load("alice").open, 1u);
  EXPECT_EQ(t.load("alice").queued, 45u);
  EXPECT_TRUE(t.verify());

  // Settled beyond total (a removed client's requests still running) counts as none.
  c.requests_removed = 7;
  c.running = 3;
  t.touch(c);
  EXPECT_EQ(t.load("bob").queued, 0u);

  // A change without touch() is what verify() catches.
  a.total += 10;
  EXPECT_FALSE(t.verify());
  t.touch(a);
  EXPECT_TRUE(t.verify());

  t.drop(&b);
  t.drop(&c);
  EXPECT_EQ(t.load("bob"), KeyLoad{});
  EXPECT_EQ(t.load("alice").sessions, 1u);
  EXPECT_TRUE(t.verify());
}

TEST(SessionTable, SweepFindsIdleClientsIdleSessionsAndRetentionOver) {
  SessionTable t;
  Session& inter = t.create("k");
  inter.client_idle_timeout_ms = 1000;
  inter.last_activity = 0;
  Client busy, idle, ended;
  busy.last_activity = idle.last_activity = ended.last_activity = 0;
  busy.running = 1;  // running work keeps a client
  ended.ended = true;
  inter.clients.push_back(std::move(busy));
  inter.clients.push_back(std::move(idle));
  inter.clients.push_back(std::move(ended));

  Session& dur = t.create("k");
  dur.durable = true;
  Client done;
  done.ended = true;
  done.sent = 3;
  dur.clients.push_back(std::move(done));
  dur.total = 3;
  dur.done = 3;

  auto sw = t.sweep(500, 5000, 2000);
  EXPECT_TRUE(sw.idle_clients.empty());  // not idle long enough
  EXPECT_TRUE(sw.retention_over.empty());
  EXPECT_EQ(dur.completed_at, 500);  // complete from now on

  sw = t.sweep(1000, 5000, 2000);
  ASSERT_EQ(sw.idle_clients.size(), 1u);
  EXPECT_EQ(sw.idle_clients[0].first, &inter);
  EXPECT_EQ(sw.idle_clients[0].second, 1u);
  EXPECT_TRUE(sw.idle_sessions.empty());

  sw = t.sweep(2500, 5000, 2000);
  EXPECT_EQ(sw.retention_over, std::vector<Session*>{&dur});
  dur.purging = 1;  // a purge is being written: not again
  EXPECT_TRUE(t.sweep(2600, 5000, 2000).retention_over.empty());

  // The interactive session idles out once nothing runs and no client is fresh.
  inter.clients[0].running = 0;
  inter.clients[1].removed = true;
  sw = t.sweep(6000, 5000, 2000);
  EXPECT_EQ(sw.idle_sessions, std::vector<Session*>{&inter});
}

// Interactive sessions that left lately (a resent close is answered ok).
TEST(SessionTableGone, IsBoundedInCountAndTime) {
  SessionTable t;
  Session& s = t.create("k");
  t.remember_gone(s, false, 0);
  EXPECT_EQ(t.gone_lately(s.id, "k", 1), 1);
  EXPECT_EQ(t.gone_lately(s.id, "other", 1), 0);
  EXPECT_EQ(t.gone_lately(s.id, "k", SessionTable::kGoneKeptMs + 1), 0);
  for (std::size_t i = 0; i < SessionTable::kGoneKept + 10; ++i) {
    Session& x = t.create("k");
    t.remember_gone(x, true, 10);
    t.drop(&x);
  }
  EXPECT_EQ(t.gone_kept(), SessionTable::kGoneKept);
  EXPECT_EQ(t.gone_lately(s.id, "k", 10), 0);  // the oldest went first
}

}  // namespace
}  // namespace zgrid::head
