// head/session_table: ids, ordinals and tombstones; per-key loads kept
// incrementally and equal to a recount; the idle sweep's verdicts.
#include <gtest/gtest.h>

#include "head/session_table.hpp"

namespace zgrid::head {
namespace {

// A session of `owner` with one client that sent `total` requests, queued.
Session& Make(SessionTable& t, const std::string& owner, std::uint64_t total) {
  Session& s = t.create(owner);
  Client c;
  c.id = "c";
  std::uint32_t ci = s.add_client(std::move(c));
  std::vector<Request> rs(total);
  for (auto& r : rs) {
    r.id = s.new_request_id();
    r.client = ci;
  }
  s.accept(ci, std::move(rs));
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

// The key loads follow every change a session's methods make, with no
// call to the table: what a caller can do to a session, the table knows.
TEST(SessionTable, KeyLoadsFollowEverySessionChangeAndMatchARecount) {
  SessionTable t;
  Session& a = Make(t, "alice", 100);
  Session& b = Make(t, "alice", 50);
  Session& c = Make(t, "bob", 7);
  EXPECT_EQ(t.load("alice").sessions, 2u);
  EXPECT_EQ(t.load("alice").open, 2u);
  EXPECT_EQ(t.load("alice").queued, 150u);
  EXPECT_EQ(t.load("bob").queued, 7u);
  EXPECT_EQ(t.load("nobody"), KeyLoad{});
  EXPECT_TRUE(t.verify());

  std::vector<Request> on_nodes;
  for (int i = 0; i < 55; ++i) on_nodes.push_back(a.start_front());  // no longer queued
  EXPECT_EQ(a.running(), 55u);
  EXPECT_EQ(t.load("alice").queued, 45u + 50u);
  for (int i = 0; i < 25; ++i) {
    a.settle(0);
    a.count_answer(0, i < 20);  // 20 done, 5 faulted
  }
  EXPECT_EQ(a.done(), 20u);
  EXPECT_EQ(a.faulted(), 5u);
  EXPECT_EQ(t.load("alice").queued, 45u + 50u);
  a.add_journal_bytes(4096);
  EXPECT_EQ(t.load("alice").journal_bytes, 4096u);
  EXPECT_TRUE(t.verify());

  b.seal();
  EXPECT_EQ(t.load("alice").open, 1u);
  b.remove_client(0);  // its queued requests go with it
  EXPECT_TRUE(b.queue().empty());
  EXPECT_EQ(b.requests_removed(), 50u);
  EXPECT_EQ(t.load("alice").queued, 45u);
  EXPECT_TRUE(t.verify());

  // Settled beyond total (a removed client's requests still running) counts as none.
  c.start_front();
  c.remove_client(0);
  EXPECT_EQ(t.load("bob").queued, 0u);
  c.cancel();
  EXPECT_EQ(t.load("bob").open, 0u);
  EXPECT_TRUE(t.verify());

  // A request back on the queue is queued again; the recount agrees.
  a.settle(0);
  a.requeue_front(std::move(on_nodes.back()));
  EXPECT_EQ(t.load("alice").queued, 46u);
  EXPECT_TRUE(t.verify());

  t.drop(&b);
  t.drop(&c);
  EXPECT_EQ(t.load("bob"), KeyLoad{});
  EXPECT_EQ(t.load("alice").sessions, 1u);
  EXPECT_TRUE(t.verify());
}

// Durable: a journaled batch counts once synced; answers are recorded once;
// a recount forgets and puts back.
TEST(SessionTable, DurableBatchesAndAnswersKeepTheCounts) {
  SessionTable t;
  Session& s = t.create("k");
  s.durable = true;
  Client cl;
  cl.id = "c";
  s.add_client(std::move(cl));
  s.count_sent(0, 4);  // before its write
  EXPECT_EQ(t.load("k").queued, 0u);
  s.add_batch(BatchRef{1, 4, 0, {}}, 100);
  EXPECT_EQ(s.total(), 4u);
  EXPECT_EQ(s.next_request_id(), 5u);
  EXPECT_EQ(t.load("k").queued, 4u);
  EXPECT_EQ(t.load("k").journal_bytes, 100u);
  ASSERT_EQ(s.unloaded().size(), 1u);
  // A batch found late goes in its place; the unloaded indexes follow.
  s.add_batch(BatchRef{9, 2, 0, {}}, 10);
  s.add_batch(BatchRef{5, 4, 0, {}}, 10);
  ASSERT_EQ(s.batches().size(), 3u);
  EXPECT_EQ(s.batches()[1].first_id, 5u);
  EXPECT_EQ(s.unloaded(), (std::deque<std::size_t>{0, 1, 2}));
  EXPECT_EQ(s.client_of(6), &s.client(0));
  EXPECT_TRUE(s.record_answer(2, 0, true));
  EXPECT_FALSE(s.record_answer(2, 0, true));  // once
  EXPECT_TRUE(s.is_answered(2));
  EXPECT_EQ(s.done(), 1u);
  EXPECT_EQ(t.load("k").queued, 9u);
  Session::Recount before = s.begin_recount();
  EXPECT_FALSE(s.is_answered(2));
  EXPECT_EQ(t.load("k").queued, 10u);
  EXPECT_TRUE(t.verify());
  s.undo_recount(std::move(before));
  EXPECT_TRUE(s.is_answered(2));
  EXPECT_EQ(t.load("k").queued, 9u);
  s.commit_client(0);
  EXPECT_EQ(s.committed(), 4u);
  EXPECT_TRUE(t.verify());
}

TEST(SessionTable, SweepFindsIdleClientsIdleSessionsAndRetentionOver) {
  SessionTable t;
  Session& inter = t.create("k");
  inter.client_idle_timeout_ms = 1000;
  inter.last_activity = 0;
  Client busy, idle, ended;
  busy.last_activity = idle.last_activity = ended.last_activity = 0;
  inter.add_client(std::move(busy));
  inter.add_client(std::move(idle));
  inter.add_client(std::move(ended), 0, /*ended=*/true);
  std::vector<Request> one(1);
  one[0].id = inter.new_request_id();
  inter.accept(0, std::move(one));
  inter.start_front();  // running work keeps a client

  Session& dur = t.create("k");
  dur.durable = true;
  Client done;
  dur.add_client(std::move(done), 3, /*ended=*/true);
  dur.add_batch(BatchRef{1, 3, 0, {}}, 0);
  for (std::uint64_t id = 1; id <= 3; ++id) dur.record_answer(id, 0, true);

  auto sw = t.sweep(500, 5000, 2000);
  EXPECT_TRUE(sw.idle_clients.empty());  // not idle long enough
  EXPECT_TRUE(sw.retention_over.empty());
  EXPECT_EQ(dur.completed_at(), 500);  // complete from now on

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
  inter.settle(0);
  inter.count_answer(0, true);
  inter.remove_client(1);
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
