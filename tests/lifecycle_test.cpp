// head/lifecycle in-process: what a session may do now (turn_of), seal and
// cancel written first and applied only after success, purge, retirement,
// loading within the durable window, lost batches, idle clients removed.
#include <gtest/gtest.h>

#include "head/journal_records.hpp"
#include "support/head_rooms.hpp"

namespace zgrid::head {
namespace {

using testing::Rooms;
using State = SessionTurn::State;

TEST(Lifecycle, TurnOfSaysReadyIdleWaitingPausedAndExpires) {
  HeadOptions o = testing::TestOptions();
  o.response_queue_max = 2;
  Rooms r(o);
  r.open_journal();
  Session& s = r.session(false, 2);
  SessionTurn t = r.lifecycle.turn_of(s.ordinal);
  EXPECT_EQ(t.state, State::kReady);
  EXPECT_EQ(t.queued, 2u);
  EXPECT_EQ(t.service, "factorize");
  EXPECT_EQ(r.lifecycle.turn_of(999).state, State::kIdle);  // gone
  for (std::uint64_t id = 100; id < 103; ++id)              // its client is not reading
    r.outbox.add(s, s.client(0), id, "", "", "x");
  EXPECT_EQ(r.lifecycle.turn_of(s.ordinal).state, State::kPaused);
  r.outbox.forget(s, s.client(0));
  Session& d = r.session(true, 1);
  r.journal->fail_writes("IO error");
  r.durable.submit(JournalOp{}, [](bool, const std::string&) {});
  EXPECT_EQ(r.lifecycle.turn_of(d.ordinal).state, State::kWaiting);
  // Past its deadline: what has not run faults `timeout`.
  s.deadline = r.ctx.now;
  EXPECT_EQ(r.lifecycle.turn_of(s.ordinal).state, State::kIdle);
  EXPECT_TRUE(s.queue().empty());
  EXPECT_EQ(s.faulted(), 2u);
}

TEST(Lifecycle, SealAndCancelOfADurableSessionWaitForTheirWrite) {
  Rooms r;
  r.open_journal();
  Session& s = r.session(true, 2);
  r.journal->hold_completions(true);
  int replies = 0;
  r.lifecycle.close(s, proto::SessionState::kCancelled, [&](bool ok, const std::string&) {
    EXPECT_TRUE(ok);
    ++replies;
  });
  r.complete_writes();
  EXPECT_EQ(s.state(), proto::SessionState::kOpen);  // not yet durable
  EXPECT_EQ(s.queue().size(), 2u);
  r.journal->hold_completions(false);
  r.complete_writes();
  EXPECT_EQ(replies, 1);
  EXPECT_EQ(s.state(), proto::SessionState::kCancelled);
  EXPECT_TRUE(s.queue().empty());
  EXPECT_EQ(s.committing(), 2u);  // answered `cancelled`, on their way to the journal
  SessionRecord rec;
  std::string v;
  ASSERT_TRUE(r.journal->get(jkey::session(jkey::kSession, s.id), &v).ok());
  ASSERT_TRUE(SessionRecord::decode(v, &rec));
  EXPECT_EQ(rec.state, proto::SessionState::kCancelled);
}

TEST(Lifecycle, AFailedSealOrPurgeLeavesTheSessionAsItWas) {
  Rooms r;
  r.open_journal();
  Session& s = r.session(true, 1);
  r.journal->fail_writes("IO error: bad sector");
  bool failed = false;
  r.lifecycle.close(s, proto::SessionState::kSealed,
                    [&](bool ok, const std::string&) { failed = !ok; });
  r.complete_writes();
  EXPECT_TRUE(failed);
  EXPECT_EQ(s.state(), proto::SessionState::kOpen);
  failed = false;
  r.lifecycle.purge(s, [&](bool ok, const std::string&) { failed = !ok; });
  EXPECT_EQ(s.purging, 1u);  // paused meanwhile
  r.complete_writes();
  EXPECT_TRUE(failed);
  EXPECT_EQ(s.purging, 0u);
  EXPECT_EQ(r.sessions.find(s.id), &s);
  EXPECT_FALSE(r.sessions.purged(s.id));
}

TEST(Lifecycle, PurgeDeletesEveryKeyAndLeavesATombstone) {
  Rooms r;
  r.open_journal();
  Session& s = r.session(true);
  std::string sid = s.id;
  r.journal->put(jkey::session(jkey::kSession, sid), "x");
  r.journal->put(jkey::numbered(jkey::kAnswers, sid, 1), "y");
  bool ok = false;
  r.lifecycle.purge(s, [&](bool o, const std::string&) { ok = o; });
  r.complete_writes();
  EXPECT_TRUE(ok);
  EXPECT_EQ(r.sessions.find(sid), nullptr);
  EXPECT_TRUE(r.sessions.purged(sid));
  EXPECT_FALSE(r.journal->contains(jkey::session(jkey::kSession, sid)));
  EXPECT_FALSE(r.journal->contains(jkey::numbered(jkey::kAnswers, sid, 1)));
  EXPECT_TRUE(r.journal->contains(jkey::session(jkey::kTombstone, sid)));
}

TEST(Lifecycle, ASealedInteractiveSessionRetiresOnceDelivered) {
  Rooms r;
  Session& s = r.session(false);
  s.commit_client(0);
  std::string sid = s.id;
  r.lifecycle.close(s, proto::SessionState::kSealed, [](bool, const std::string&) {});
  EXPECT_EQ(r.sessions.find(sid), nullptr);  // complete and nothing to deliver
  Session& t = r.session(false, 1);
  t.commit_client(0);
  r.lifecycle.close(t, proto::SessionState::kSealed, [](bool, const std::string&) {});
  EXPECT_EQ(r.sessions.find(t.id), &t);  // work left
}

TEST(Lifecycle, LoadingKeepsToTheDurableWindowAndAnswersLostBatches) {
  Rooms r;  // durable window 64
  r.open_journal();
  Session& s = r.session(true);
  // Three flushed batches of 50 in the journal, as a client's sends wrote them.
  for (std::uint64_t first : {1, 51, 101}) {
    proto::Send m;
    m.session_id = s.id;
    m.client_id = "c";
    m.first_seq = first;
    std::vector<std::string> payloads(50, "12");
    for (auto& p : payloads) m.items.push_back({p, ""});
    zmq::message_t frame = proto::encode_send(1, m);
    RequestRecord rr{"", first, std::string_view(frame.data<char>(), frame.size())};
    r.journal->put(jkey::numbered(jkey::kRequests, s.id, first), rr.encode());
    BatchRef b;
    b.first_id = first;
    b.n = 50;
    s.add_batch(std::move(b), 0);
  }
  s.client(0).flushed_id = 150;
  r.lifecycle.load_ready(s);
  EXPECT_EQ(s.queue().size(), 100u);  // loading stops once the window (64) is reached
  EXPECT_EQ(s.unloaded().size(), 1u);
  EXPECT_EQ(Lifecycle::queued_count(s), 150u);
  // The third batch's record is lost: its requests are answered data_loss.
  r.journal->erase(jkey::numbered(jkey::kRequests, s.id, 101));
  s.take_queue();  // as if run elsewhere
  r.lifecycle.load_ready(s);
  EXPECT_TRUE(s.unloaded().empty());
  EXPECT_EQ(r.ctx.counters.data_loss, 50u);
  EXPECT_EQ(s.committing(), 50u);
}

TEST(Lifecycle, AnIdleClientIsRemovedWithItsRequestsOnlyOnceJournaled) {
  Rooms r;
  r.open_journal();
  Session& s = r.session(true, 3);
  r.ctx.now += s.client_idle_timeout_ms + 1;
  r.journal->fail_writes("IO error: bad sector");
  ASSERT_TRUE(r.lifecycle.tick().ok());
  EXPECT_TRUE(s.client(0).removing);
  r.complete_writes();
  EXPECT_FALSE(s.client(0).removed());  // failed: as it was, retried later
  EXPECT_EQ(s.queue().size(), 3u);
  r.journal->fail_writes("");
  r.journal->reopen();
  r.ctx.now += 5'001;
  ASSERT_TRUE(r.lifecycle.tick().ok());
  r.complete_writes();
  EXPECT_TRUE(s.client(0).removed());
  EXPECT_TRUE(s.queue().empty());
  EXPECT_EQ(s.requests_removed(), 3u);
  EXPECT_EQ(s.clients_removed(), 1u);
  EXPECT_TRUE(r.sessions.verify());
}

// With many sessions kept, the idle sweep runs less often (at most about
// 25,000 session visits a second) and still removes an idle client, one
// sweep interval late at most.
TEST(Lifecycle, TheIdleSweepRunsLessOftenWithManySessionsAndStillRemovesIdleClients) {
  Rooms r;
  for (int i = 0; i < 50'000; ++i) r.session(false);  // each with a live client
  Session& s = r.session(false);
  for (auto& [id, other] : r.sessions.all()) {
    other->client_idle_timeout_ms = 1'000'000;
    if (other.get() != &s) other->commit_client(0);  // committed: never idle
  }
  s.client_idle_timeout_ms = 1'000;
  ASSERT_TRUE(r.lifecycle.tick().ok());  // a sweep: the next in 50,001 / 25,000 s
  r.ctx.now += 1'500;                    // idle past its timeout, before the next sweep
  ASSERT_TRUE(r.lifecycle.tick().ok());
  r.complete_writes();
  EXPECT_FALSE(s.client(0).removed());
  r.ctx.now += 600;  // past the sweep interval (2,000 ms)
  ASSERT_TRUE(r.lifecycle.tick().ok());
  r.complete_writes();
  EXPECT_TRUE(s.client(0).removed() || s.client(0).removing);
}

}  // namespace
}  // namespace zgrid::head
