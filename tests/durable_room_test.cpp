// head/durable over an in-memory journal: completions in order, one response
// record per session per round, failed writes reported, lost and unreadable
// batches, fetch pages finding corrupt records, rescans and reconcile.
#include <gtest/gtest.h>

#include "head/journal_records.hpp"
#include "support/head_rooms.hpp"

namespace zgrid::head {
namespace {

using testing::Rooms;

TEST(DurableRoom, CompletionsRunTheirCallbacksInOrderOnlyOnceDelivered) {
  Rooms r;
  r.open_journal();
  r.journal->hold_completions(true);
  std::vector<int> order;
  for (int i = 0; i < 3; ++i)
    r.durable.submit(JournalOp{}, [&order, i](bool ok, const std::string&) {
      EXPECT_TRUE(ok);
      order.push_back(i);
    });
  r.complete_writes();
  EXPECT_TRUE(order.empty());  // written, but not yet heard of
  r.journal->hold_completions(false);
  r.complete_writes();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
}

TEST(DurableRoom, AFailedWriteIsReportedAsUnavailableOrResourceExhausted) {
  Rooms r;
  r.open_journal();
  r.journal->fail_writes("IO error: No space left on device");
  std::string error;
  r.durable.submit(JournalOp{}, [&](bool ok, const std::string& e) {
    EXPECT_FALSE(ok);
    error = e;
  });
  r.complete_writes();
  EXPECT_EQ(Durable::write_failed(error).code(), Code::kResourceExhausted);
  EXPECT_EQ(Durable::write_failed("IO error: bad sector").code(), Code::kUnavailable);
  EXPECT_FALSE(r.durable.journal().healthy());
  EXPECT_EQ(r.durable.unavailable().code(), Code::kResourceExhausted);
  EXPECT_FALSE(r.durable.may_run());
}

TEST(DurableRoom, OneResponseRecordPerSessionPerRoundCountedOnceRecorded) {
  Rooms r;
  r.open_journal();
  Session& a = r.session(true);
  Session& b = r.session(true);
  for (std::uint64_t id : {1, 2, 3}) {
    Request q;
    q.id = id;
    r.tasks.answer(a, q, id == 2 ? "timeout" : "", "x");
  }
  Request q;
  q.id = 1;
  r.tasks.answer(b, q, "", "y");
  EXPECT_EQ(a.committing(), 3u);
  EXPECT_EQ(a.done(), 0u);  // not before the record is written
  r.lifecycle.flush_answers();
  ASSERT_EQ(r.journal->written().size(), 2u);
  EXPECT_TRUE(r.journal->contains(jkey::numbered(jkey::kAnswers, a.id, 1)));
  EXPECT_EQ(a.next_resp_seq, 4u);
  r.complete_writes();
  EXPECT_EQ(a.committing(), 0u);
  EXPECT_EQ(a.done(), 2u);
  EXPECT_EQ(a.faulted(), 1u);
  EXPECT_TRUE(a.is_answered(1) && a.is_answered(2) && a.is_answered(3));
  EXPECT_EQ(b.done(), 1u);
  EXPECT_EQ(r.ctx.counters.done, 3u);
  EXPECT_GT(a.journal_bytes(), 0u);
  // An answer arriving twice is recorded once.
  Request again;
  again.id = 1;
  r.tasks.answer(a, again, "", "x");
  EXPECT_EQ(a.committing(), 0u);
}

TEST(DurableRoom, AnswersNotRecordedRunAgain) {
  Rooms r;
  r.open_journal();
  Session& s = r.session(true);
  Request q;
  q.id = 1;
  q.payload = "p";
  r.tasks.answer(s, q, "", "x");
  r.journal->fail_writes("IO error: bad sector");
  r.lifecycle.flush_answers();
  r.complete_writes();
  EXPECT_EQ(s.done(), 0u);
  EXPECT_FALSE(s.is_answered(1));
  ASSERT_EQ(s.queue().size(), 1u);  // back in the queue, not charged
  EXPECT_EQ(s.queue().front().tries, 0u);
  EXPECT_EQ(s.queue().front().payload, "p");
}

TEST(DurableRoom, UnreadableBatchIsCountedAndRetriedLostBatchIsReported) {
  Rooms r;
  r.open_journal();
  Session& s = r.session(true);
  BatchRef b;
  b.first_id = 1;
  b.n = 2;
  s.add_batch(b, 0);
  s.client(0).flushed_id = 2;
  r.journal->fail_reads(true);
  LoadOutcome out = r.durable.load(s, {});
  EXPECT_FALSE(out.unreadable.ok());
  EXPECT_EQ(r.ctx.counters.journal_read_errors, 1u);
  EXPECT_TRUE(r.durable.take_due_retries().empty());  // not before a second has passed
  r.ctx.now += 1'000;
  auto due = r.durable.take_due_retries();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0], &s);
  // Readable now, but the record is missing: lost, reported to answer.
  r.journal->fail_reads(false);
  out = r.durable.load(s, {});
  ASSERT_EQ(out.lost.size(), 1u);
  EXPECT_EQ(r.ctx.counters.journal_corrupt_records, 1u);
}

TEST(DurableRoom, FetchFindingACorruptRecordSchedulesARescanThatRecounts) {
  Rooms r;
  r.open_journal();
  Session& s = r.session(true, 2);
  for (int i = 0; i < 2; ++i) {
    Request q = s.take_front();
    r.tasks.answer(s, q, "", "x");
    r.lifecycle.flush_answers();
  }
  r.complete_writes();
  ASSERT_EQ(s.done(), 2u);
  r.journal->corrupt(jkey::numbered(jkey::kAnswers, s.id, 2));
  proto::Fetch f;
  f.session_id = s.id;
  FetchPage page = r.durable.fetch_page(s, f, 7);
  EXPECT_EQ(page.corrupt_keys.size(), 1u);
  EXPECT_TRUE(s.rescan_pending);
  EXPECT_EQ(r.ctx.counters.journal_corrupt_records, 1u);
  auto due = r.durable.take_due_retries();  // the session is quiet: due at once
  ASSERT_EQ(due.size(), 1u);
  ASSERT_TRUE(r.durable.rescan(s));
  EXPECT_EQ(s.done(), 1u);  // the corrupt record's answer is lost: it runs again
  EXPECT_TRUE(s.is_answered(1));
  EXPECT_FALSE(s.is_answered(2));
  EXPECT_FALSE(s.rescan_pending);
}

TEST(DurableRoom, RescanThatCannotReadLeavesTheSessionAsItWas) {
  Rooms r;
  r.open_journal();
  Session& s = r.session(true);
  Request q;
  q.id = 1;
  r.tasks.answer(s, q, "", "x");
  r.lifecycle.flush_answers();
  r.complete_writes();
  r.journal->refuse_cursors(true);
  EXPECT_FALSE(r.durable.rescan(s));
  EXPECT_EQ(s.done(), 1u);
  EXPECT_TRUE(s.is_answered(1));
}

TEST(DurableRoom, AfterAReopenSessionsAreBroughtUpToTheJournal) {
  Rooms r;
  r.open_journal();
  Session& s = r.session(true, 1);
  RecoveryReport report;
  auto none = r.durable.reconcile_if_reopened(&report);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);
  // A write reported failed, but the journal kept it: an answer record.
  Writer w;
  w.array(1);
  proto::write_response_item(w, 1, "", "", "x");
  r.journal->put(jkey::numbered(jkey::kAnswers, s.id, 1), w.finish_string());
  r.journal->fail_writes("IO error: sync failed");
  r.durable.submit(JournalOp{}, [](bool, const std::string&) {});
  r.complete_writes();
  EXPECT_FALSE(r.durable.journal().healthy());
  r.journal->fail_writes("");
  r.journal->reopen();
  auto reopened = r.durable.reconcile_if_reopened(&report);
  ASSERT_TRUE(reopened.ok());
  EXPECT_TRUE(*reopened);
  EXPECT_TRUE(s.is_answered(1));
  EXPECT_EQ(s.done(), 1u);
  EXPECT_EQ(r.ctx.counters.done, 1u);
  EXPECT_TRUE(r.durable.journal().healthy());
}

}  // namespace
}  // namespace zgrid::head
