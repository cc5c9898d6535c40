// head/batch_loader over an in-memory journal: flushed batches only, up to
// the window; answered requests and removed clients skipped; lost batches
// reported and passed; an unreadable one stops the loading to be retried.
#include <gtest/gtest.h>

#include "head/batch_loader.hpp"
#include "head/journal_records.hpp"
#include "head/session_table.hpp"

namespace zgrid::head {
namespace {

const std::string kSid(32, 'l');

// Journals batch [first, first + payloads) of client `ci` as the head does:
// the received `send` frame as it is, with per-item statuses (empty: all ok).
void PutBatch(MemoryJournal& j, Session& s, std::uint64_t first, std::uint32_t ci,
              const std::vector<std::string>& payloads, std::string statuses = {}) {
  proto::Send m;
  m.session_id = kSid;
  m.client_id = s.client(ci).id;
  m.first_seq = first;
  std::vector<std::string> uds;
  for (std::size_t i = 0; i < payloads.size(); ++i)
    uds.push_back(std::string(1, 'u') + payloads[i]);
  for (std::size_t i = 0; i < payloads.size(); ++i) m.items.push_back({uds[i], payloads[i]});
  zmq::message_t frame = proto::encode_send(0, m);
  RequestRecord r{statuses, first, std::string_view(frame.data<char>(), frame.size())};
  j.put(jkey::numbered(jkey::kRequests, kSid, first), r.encode());
  std::uint32_t accepted = 0;
  for (std::size_t i = 0; i < payloads.size(); ++i)
    if (statuses.empty() || statuses[i] == 0) ++accepted;
  s.add_batch(BatchRef{first, accepted, ci, {}}, 0);
}

Session& TwoClients(SessionTable& t) {
  Session& s = t.create("", kSid);
  s.durable = true;
  for (const char* id : {"c0", "c1"}) {
    Client c;
    c.id = id;
    s.add_client(std::move(c));
  }
  return s;
}

std::vector<std::uint64_t> QueueIds(const Session& s) {
  std::vector<std::uint64_t> ids;
  for (const auto& r : s.queue()) ids.push_back(r.id);
  return ids;
}

TEST(BatchLoader, OnlyFlushedBatchesUpToTheWindowAndNeverAnAnsweredRequest) {
  MemoryJournal j;
  SessionTable table;
  Session& s = TwoClients(table);
  PutBatch(j, s, 1, 0, {"a", "b", "c"});
  PutBatch(j, s, 4, 0, {"d", "e"});
  PutBatch(j, s, 6, 1, {"f"});
  s.client(0).flushed_id = 5;
  s.client(1).flushed_id = 0;  // its batch waits
  s.record_answer(2, 0, true);
  LoadOutcome out = load_batches(j, s, {/*window=*/2, true});
  EXPECT_EQ(QueueIds(s), (std::vector<std::uint64_t>{1, 3}));  // window reached after batch 1
  EXPECT_EQ(out.loaded, 2u);
  EXPECT_TRUE(out.unreadable.ok());
  out = load_batches(j, s, {100, true});
  EXPECT_EQ(QueueIds(s), (std::vector<std::uint64_t>{1, 3, 4, 5}));
  EXPECT_EQ(s.queue()[2].payload, "d");
  EXPECT_EQ(s.queue()[2].user_data, "ud");
  EXPECT_EQ(s.unloaded().size(), 1u);      // client 1's, not flushed
  out = load_batches(j, s, {100, false});  // a cancel takes them all
  EXPECT_EQ(s.queue().back().id, 6u);
  EXPECT_EQ(s.queue().back().client, 1u);
  EXPECT_TRUE(s.unloaded().empty());
}

TEST(BatchLoader, RejectedItemsTakeNoIdAndRemovedClientsAreDropped) {
  MemoryJournal j;
  SessionTable table;
  Session& s = TwoClients(table);
  PutBatch(j, s, 1, 0, {"a", "big", "b"}, std::string("\x00\x02\x00", 3));
  PutBatch(j, s, 3, 1, {"x"});
  s.client(0).flushed_id = 2;
  s.client(1).flushed_id = 3;
  s.remove_client(1);
  LoadOutcome out = load_batches(j, s, {});
  ASSERT_EQ(QueueIds(s), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(s.queue()[1].payload, "b");
  EXPECT_TRUE(s.unloaded().empty());
  EXPECT_EQ(out.loaded, 2u);
}

TEST(BatchLoader, HeldInMemoryBatchesAreNotRead) {
  MemoryJournal j;  // empty: a read would find nothing
  SessionTable table;
  Session& s = TwoClients(table);
  Request r;
  r.id = 1;
  r.payload = "m";
  s.add_batch(BatchRef{1, 1, 0, {r}}, 0);
  s.client(0).flushed_id = 1;
  LoadOutcome out = load_batches(j, s, {});
  EXPECT_TRUE(out.lost.empty());
  EXPECT_EQ(QueueIds(s), std::vector<std::uint64_t>{1});
}

TEST(BatchLoader, LostBatchesAreReportedAndPassedUnreadableOnesStopTheLoading) {
  MemoryJournal j;
  SessionTable table;
  Session& s = TwoClients(table);
  PutBatch(j, s, 1, 0, {"a"});
  PutBatch(j, s, 2, 0, {"b"});
  PutBatch(j, s, 3, 0, {"c"});
  s.client(0).flushed_id = 3;
  j.corrupt(jkey::numbered(jkey::kRequests, kSid, 1));
  j.erase(jkey::numbered(jkey::kRequests, kSid, 2));
  LoadOutcome out = load_batches(j, s, {});
  ASSERT_EQ(out.lost.size(), 2u);
  EXPECT_EQ(out.lost[0].first.first_id, 1u);
  EXPECT_EQ(out.lost[0].second.code(), Code::kDataLoss);
  EXPECT_NE(out.lost[1].second.message().find("missing"), std::string::npos);
  EXPECT_EQ(QueueIds(s), std::vector<std::uint64_t>{3});

  SessionTable tt;
  Session& t = TwoClients(tt);
  MemoryJournal k;
  PutBatch(k, t, 1, 0, {"a"});
  t.client(0).flushed_id = 1;
  k.fail_reads(true);
  out = load_batches(k, t, {});
  EXPECT_EQ(out.unreadable.code(), Code::kUnavailable);
  EXPECT_TRUE(t.queue().empty());
  EXPECT_EQ(t.unloaded().size(), 1u);  // still to load: tried again
  k.fail_reads(false);
  out = load_batches(k, t, {});
  EXPECT_TRUE(out.unreadable.ok());
  EXPECT_EQ(QueueIds(t), std::vector<std::uint64_t>{1});
}

}  // namespace
}  // namespace zgrid::head
