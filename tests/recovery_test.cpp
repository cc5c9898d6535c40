// head/recovery over an in-memory journal: sessions, clients, batches and
// answers rebuilt; tombstones; the policies for corrupt and unreadable
// records; reconcile taking in what a failed write left behind.
#include <gtest/gtest.h>

#include "common/codec.hpp"
#include "head/batch_loader.hpp"
#include "head/journal_records.hpp"
#include "head/recovery.hpp"

namespace zgrid::head {
namespace {

const std::string kA(32, 'a'), kB(32, 'b'), kGone(32, 'g');

void PutSession(MemoryJournal& j, const std::string& sid, proto::SessionState st,
                const std::string& owner = "") {
  SessionRecord r{"factorize", 1700000000, 60000, st, 0, 0, owner};
  j.put(jkey::session(jkey::kSession, sid), r.encode());
}
void PutClient(MemoryJournal& j, const std::string& sid, const std::string& cid, ClientRecord r) {
  j.put(jkey::client(sid, cid), r.encode());
}
void PutBatch(MemoryJournal& j, const std::string& sid, std::uint64_t first, std::uint64_t n,
              const std::string& cid) {
  j.put(jkey::numbered(jkey::kIndex, sid, first), IndexRecord{n, cid, 100}.encode());
}
void PutAnswers(MemoryJournal& j, const std::string& sid, std::uint64_t seq,
                std::vector<std::pair<std::uint64_t, bool>> answers) {
  Writer w;
  w.array(static_cast<std::uint32_t>(answers.size()));
  for (auto [id, ok] : answers) proto::write_response_item(w, id, "", ok ? "" : "timeout", "x");
  j.put(jkey::numbered(jkey::kAnswers, sid, seq), w.finish_string());
}

// Session A: client c1 committed requests 1..4 (3 answered, one of them a
// fault), client c2 removed with 5..6. Session B: open, c1 sent 1..2, not
// flushed far. kGone was purged.
MemoryJournal Journal() {
  MemoryJournal j;
  PutSession(j, kA, proto::SessionState::kSealed, "alice");
  PutClient(j, kA, "c1", {4, 4, 4, true, false, 4});
  PutClient(j, kA, "c2", {2, 2, 6, false, true, 6});
  PutBatch(j, kA, 1, 4, "c1");
  PutBatch(j, kA, 5, 2, "c2");
  PutAnswers(j, kA, 1, {{2, true}, {1, false}});
  PutAnswers(j, kA, 3, {{3, true}, {5, true}});  // 5 belongs to the removed client
  PutSession(j, kB, proto::SessionState::kOpen, "bob");
  PutClient(j, kB, "c1", {2, 2, 2, false, false, 2});
  PutBatch(j, kB, 1, 2, "c1");
  j.put(jkey::session(jkey::kTombstone, kGone), encode_tombstone(1700000000));
  return j;
}

TEST(Recovery, RebuildsSessionsClientsBatchesAndAnswers) {
  MemoryJournal j = Journal();
  SessionTable t;
  RecoveryReport r;
  ASSERT_TRUE(recover_sessions(j, t, /*now=*/5000, /*wall_now=*/1700000100, &r).ok());
  EXPECT_TRUE(r.corrupt_answers.empty());
  ASSERT_EQ(t.size(), 2u);
  EXPECT_TRUE(t.purged(kGone));
  Session* a = t.find(kA);
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->durable);
  EXPECT_EQ(a->state(), proto::SessionState::kSealed);
  EXPECT_EQ(a->owner, "alice");
  EXPECT_EQ(a->total(), 6u);
  EXPECT_EQ(a->committed(), 4u);
  EXPECT_EQ(a->requests_removed(), 2u);
  EXPECT_EQ(a->clients_removed(), 1u);
  EXPECT_EQ(a->done(), 2u);  // 2 and 3; 5 was the removed client's
  EXPECT_EQ(a->faulted(), 1u);
  EXPECT_EQ(a->client(0).done(), 2u);
  EXPECT_TRUE(a->is_answered(1) && a->is_answered(2) && a->is_answered(3));
  EXPECT_FALSE(a->is_answered(4));
  EXPECT_EQ(a->next_resp_seq, 5u);
  EXPECT_EQ(a->next_request_id(), 7u);
  ASSERT_EQ(a->unloaded().size(), 1u);  // only c1's batch is to load again
  EXPECT_EQ(a->batches()[a->unloaded()[0]].first_id, 1u);
  EXPECT_EQ(a->client(0).last_activity, 5000);  // idle timers restart
  EXPECT_EQ(t.load("alice").queued, 1u);        // request 4
  EXPECT_EQ(t.load("bob").open, 1u);
  EXPECT_TRUE(t.verify());
}

// A one-message session journaled as one 'M' record (format v3): sealed,
// its client ended and flushed, its batch indexed and read back from the
// record; an 'S' record written later (a cancel) stands for its state.
std::string OneMessage(const std::string& cid, std::vector<std::string> payloads,
                       proto::SessionState st = proto::SessionState::kSealed) {
  proto::Submit m;
  m.create.service = "echo";
  m.create.durable = true;
  m.client_id = cid;
  std::vector<std::string> uds;  // items are views: their strings must outlive the encoding
  for (auto& p : payloads) uds.push_back("u" + p);
  for (std::size_t i = 0; i < payloads.size(); ++i) m.items.push_back({uds[i], payloads[i]});
  zmq::message_t frame = proto::encode_submit(7, m);
  OneMessageRecord r;
  r.session = SessionRecord{"echo", 1700000000, 60000, st, 0, 0, "carol"};
  r.client_id = cid;
  r.acked_seq = payloads.size();
  r.sent = r.n = r.max_id = payloads.size();
  r.first_request_id = 1;
  r.send_frame = std::string_view(frame.data<char>(), frame.size());
  return r.encode();
}

TEST(Recovery, AOneMessageSessionIsOneRecordWithItsClientAndBatch) {
  const std::string kM(32, 'm'), kN(32, 'n');
  MemoryJournal j = Journal();
  j.put(jkey::session(jkey::kOneMessage, kM), OneMessage("cell", {"p1", "p2", "p3"}));
  PutAnswers(j, kM, 1, {{2, true}});
  j.put(jkey::session(jkey::kOneMessage, kN), OneMessage("cell", {"q"}));
  PutSession(j, kN, proto::SessionState::kCancelled, "carol");  // cancelled after
  SessionTable t;
  RecoveryReport r;
  ASSERT_TRUE(recover_sessions(j, t, 5000, 1700000100, &r).ok());
  ASSERT_EQ(t.size(), 4u);
  Session* m = t.find(kM);
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->durable);
  EXPECT_EQ(m->service, "echo");
  EXPECT_EQ(m->owner, "carol");
  EXPECT_EQ(m->state(), proto::SessionState::kSealed);
  ASSERT_EQ(m->clients().size(), 1u);
  EXPECT_EQ(m->client(0).id, "cell");
  EXPECT_TRUE(m->client(0).ended());
  EXPECT_EQ(m->client(0).acked_seq, 3u);
  EXPECT_EQ(m->client(0).flushed_id, 3u);
  EXPECT_EQ(m->total(), 3u);
  EXPECT_EQ(m->committed(), 3u);
  EXPECT_EQ(m->done(), 1u);
  EXPECT_EQ(m->next_request_id(), 4u);
  ASSERT_EQ(m->batches().size(), 1u);
  EXPECT_TRUE(m->batches()[0].one_record);
  // Its requests are read back from the record, the answered one left out.
  std::vector<Request> reqs;
  ASSERT_TRUE(read_batch(j, *m, m->batches()[0], &reqs, false).ok());
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].id, 1u);
  EXPECT_EQ(reqs[0].payload, "p1");
  EXPECT_EQ(reqs[0].user_data, "up1");
  EXPECT_EQ(reqs[1].id, 3u);
  EXPECT_EQ(reqs[1].payload, "p3");
  EXPECT_EQ(t.find(kN)->state(), proto::SessionState::kCancelled);
  EXPECT_EQ(t.find(kN)->total(), 1u);
  EXPECT_TRUE(t.verify());
  // A corrupt 'M' record stops the start, named, like an 'S' record.
  MemoryJournal k = Journal();
  k.put(jkey::session(jkey::kOneMessage, kM), "garbage");
  SessionTable t2;
  Status st = recover_sessions(k, t2, 0, 0, &r);
  EXPECT_EQ(st.code(), Code::kDataLoss);
  EXPECT_NE(st.message().find("M of session " + kM), std::string::npos) << st.message();
}

TEST(Recovery, ACorruptSessionClientOrIndexRecordStopsTheStartNamingIt) {
  for (std::string key : {jkey::session(jkey::kSession, kB), jkey::client(kB, "c1"),
                          jkey::numbered(jkey::kIndex, kB, 1)}) {
    MemoryJournal j = Journal();
    j.corrupt(key);
    SessionTable t;
    RecoveryReport r;
    Status st = recover_sessions(j, t, 0, 0, &r);
    EXPECT_EQ(st.code(), Code::kDataLoss) << jkey::describe(key);
    EXPECT_NE(st.message().find(jkey::describe(key)), std::string::npos) << st.message();
  }
  // Undecodable rather than unreadable: the same.
  MemoryJournal j = Journal();
  j.put(jkey::client(kB, "c1"), "garbage");
  SessionTable t;
  RecoveryReport r;
  Status st = recover_sessions(j, t, 0, 0, &r);
  EXPECT_EQ(st.code(), Code::kDataLoss);
  EXPECT_NE(st.message().find("refusing to guess"), std::string::npos);
  // An index record naming a client the session does not have.
  MemoryJournal k = Journal();
  PutBatch(k, kB, 3, 1, "nobody");
  SessionTable t2;
  EXPECT_EQ(recover_sessions(k, t2, 0, 0, &r).code(), Code::kDataLoss);
}

TEST(Recovery, ACorruptResponseRecordIsReportedAndItsAnswersRunAgain) {
  MemoryJournal j = Journal();
  j.corrupt(jkey::numbered(jkey::kAnswers, kA, 1));
  SessionTable t;
  RecoveryReport r;
  ASSERT_TRUE(recover_sessions(j, t, 0, 0, &r).ok());
  ASSERT_EQ(r.corrupt_answers.size(), 1u);
  EXPECT_EQ(r.corrupt_answers[0].first, t.find(kA));
  Session* a = t.find(kA);
  EXPECT_FALSE(a->is_answered(1));  // runs again
  EXPECT_TRUE(a->is_answered(3));
  EXPECT_EQ(a->next_resp_seq, 5u);  // sequences are never reused
}

TEST(Recovery, AnUnreadableJournalIsAnErrorToRetryNotALoss) {
  MemoryJournal j = Journal();
  j.fail_reads(true);
  SessionTable t;
  RecoveryReport r;
  EXPECT_EQ(recover_sessions(j, t, 0, 0, &r).code(), Code::kUnavailable);
  j.fail_reads(false);
  j.refuse_cursors(true);
  EXPECT_EQ(recover_sessions(j, t, 0, 0, &r).code(), Code::kUnavailable);
}

TEST(Recovery, ReconcileTakesInWhatAFailedWriteLeftBehind) {
  MemoryJournal j = Journal();
  SessionTable t;
  RecoveryReport r;
  ASSERT_TRUE(recover_sessions(j, t, 0, 0, &r).ok());
  // The journal reopened holding a batch, a client record and answers the
  // head had been told were not written.
  PutClient(j, kB, "c1", {5, 5, 5, true, false, 5});
  PutBatch(j, kB, 3, 3, "c1");
  PutAnswers(j, kB, 1, {{1, true}, {4, false}});
  RecoveryReport rr;
  ASSERT_TRUE(reconcile_sessions(j, t, &rr).ok());
  Session* b = t.find(kB);
  EXPECT_EQ(b->client(0).acked_seq, 5u);
  EXPECT_TRUE(b->client(0).ended());
  EXPECT_EQ(b->committed(), 5u);
  EXPECT_EQ(b->total(), 5u);
  ASSERT_EQ(b->batches().size(), 2u);
  EXPECT_EQ(b->batches()[1].first_id, 3u);
  EXPECT_EQ(b->unloaded().size(), 2u);
  EXPECT_EQ(rr.counted.done, 1u);
  EXPECT_EQ(rr.counted.faulted, 1u);
  EXPECT_EQ(rr.fixed, 1u + 1u + 2u);  // acked, batch, two answers
  // Idempotent: a second reconcile finds nothing new.
  RecoveryReport again;
  ASSERT_TRUE(reconcile_sessions(j, t, &again).ok());
  EXPECT_EQ(again.fixed, 0u);
  EXPECT_TRUE(t.verify());
}

}  // namespace
}  // namespace zgrid::head
