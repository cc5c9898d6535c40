// head/fetch: pages of a durable session's results from an in-memory
// journal — cursors inside records, page limits, removed clients, corrupt
// and unreadable records, waiting — and parked fetches.
#include <gtest/gtest.h>

#include "common/codec.hpp"
#include "head/fetch.hpp"
#include "head/journal_records.hpp"
#include "head/session_table.hpp"

namespace zgrid::head {
namespace {

const std::string kSid(32, 's');

// A session whose clients sent requests 1..n (client 0: 1..half, client 1: the rest).
Session& MakeSession(SessionTable& t, std::uint64_t n) {
  Session& s = t.create("", kSid);
  s.durable = true;
  const std::uint64_t sent[2] = {n / 2, n - n / 2};
  for (int i = 0; i < 2; ++i) {
    Client c;
    c.id.assign(1, 'c').append(std::to_string(i));
    s.add_client(std::move(c), sent[i], /*ended=*/true);
  }
  s.add_batch(BatchRef{1, static_cast<std::uint32_t>(n / 2), 0, {}}, 0);
  s.add_batch(BatchRef{n / 2 + 1, static_cast<std::uint32_t>(n - n / 2), 1, {}}, 0);
  return s;
}

// A response record at response sequence `first` for requests ids.
void PutAnswers(MemoryJournal& j, std::uint64_t first, std::vector<std::uint64_t> ids) {
  Writer w;
  w.array(static_cast<std::uint32_t>(ids.size()));
  for (std::uint64_t id : ids) {
    std::string data(1, 'r');
    data += std::to_string(id);
    proto::write_response_item(w, id, "", "", data);
  }
  j.put(jkey::numbered(jkey::kAnswers, kSid, first), w.finish_string());
}

struct Reply {
  bool error = false;
  Code code = Code::kOk;
  std::vector<std::uint64_t> ids;
  std::uint64_t next = 0;
  bool done = false;
};

Reply Decode(const zmq::message_t& m) {
  Envelope env;
  EXPECT_TRUE(decode_envelope(m.data(), m.size(), &env).ok());
  Reply r;
  if (env.type == proto::kError) {
    proto::Error e;
    EXPECT_TRUE(proto::decode_error(env, &e).ok());
    r.error = true;
    r.code = e.code;
    return r;
  }
  EXPECT_EQ(env.type, proto::kFetchReply);
  Reader items = env.fields.array(proto::kMaxBatchItems);
  std::vector<proto::Response> rs;
  EXPECT_TRUE(proto::decode_response_items(items, &rs).ok());
  for (auto& x : rs) r.ids.push_back(x.request_id);
  r.next = env.fields.u64();
  r.done = env.fields.boolean();
  EXPECT_TRUE(env.fields.ok());
  return r;
}

proto::Fetch F(std::uint64_t cursor, std::uint64_t max = 1000, std::uint64_t wait_ms = 0) {
  proto::Fetch f;
  f.session_id = kSid;
  f.cursor = cursor;
  f.max = max;
  f.wait_ms = wait_ms;
  return f;
}

TEST(Fetch, PagesFollowTheCursorIntoTheMiddleOfRecords) {
  MemoryJournal j;
  SessionTable t_s;
  Session& s = MakeSession(t_s, 7);
  for (std::uint64_t id = 1; id <= 7; ++id) s.record_answer(id, id <= 3 ? 0 : 1, true);
  PutAnswers(j, 1, {4, 1, 2, 3});
  PutAnswers(j, 5, {7, 5, 6});
  Reply all = Decode(build_fetch_page(j, s, F(1), 9).reply);
  EXPECT_EQ(all.ids, (std::vector<std::uint64_t>{4, 1, 2, 3, 7, 5, 6}));
  EXPECT_EQ(all.next, 8u);
  EXPECT_TRUE(all.done);
  Reply mid = Decode(build_fetch_page(j, s, F(3), 9).reply);
  EXPECT_EQ(mid.ids, (std::vector<std::uint64_t>{2, 3, 7, 5, 6}));
  Reply two = Decode(build_fetch_page(j, s, F(3, 2), 9).reply);
  EXPECT_EQ(two.ids, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(two.next, 5u);
  EXPECT_FALSE(two.done);
  Reply end = Decode(build_fetch_page(j, s, F(8), 9).reply);
  EXPECT_TRUE(end.ids.empty());
  EXPECT_EQ(end.next, 8u);
  EXPECT_TRUE(end.done);
}

TEST(Fetch, ARemovedClientsResponsesAreNotServed) {
  MemoryJournal j;
  SessionTable t_s;
  Session& s = MakeSession(t_s, 4);  // client 0: 1, 2; client 1: 3, 4
  s.remove_client(1);
  PutAnswers(j, 1, {1, 3, 2, 4});
  Reply r = Decode(build_fetch_page(j, s, F(1), 1).reply);
  EXPECT_EQ(r.ids, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(r.next, 5u);
}

TEST(Fetch, ACorruptRecordIsSkippedAndReportedAnUnreadableOneIsAnError) {
  MemoryJournal j;
  SessionTable t_s;
  Session& s = MakeSession(t_s, 6);
  PutAnswers(j, 1, {1, 2});
  PutAnswers(j, 3, {3, 4});
  PutAnswers(j, 5, {5, 6});
  j.corrupt(jkey::numbered(jkey::kAnswers, kSid, 3));
  FetchPage p = build_fetch_page(j, s, F(1), 1);
  EXPECT_EQ(p.corrupt_keys, std::vector<std::string>{jkey::numbered(jkey::kAnswers, kSid, 3)});
  Reply r = Decode(p.reply);
  EXPECT_EQ(r.ids, (std::vector<std::uint64_t>{1, 2, 5, 6}));
  EXPECT_FALSE(r.done);  // 3 and 4 have no answer now

  j.fail_reads(true);
  p = build_fetch_page(j, s, F(1), 1);
  EXPECT_TRUE(p.read_error);
  r = Decode(p.reply);
  EXPECT_TRUE(r.error);
  EXPECT_EQ(r.code, Code::kUnavailable);

  j.fail_reads(false);
  j.refuse_cursors(true);
  r = Decode(build_fetch_page(j, s, F(1), 1).reply);
  EXPECT_EQ(r.code, Code::kUnavailable);
}

TEST(Fetch, NothingYetMayWaitButAnAnswerOrTheEndNeverDoes) {
  MemoryJournal j;
  SessionTable t_s;
  Session& s = MakeSession(t_s, 2);
  EXPECT_FALSE(build_fetch_page(j, s, F(1, 10, 5000), 1).ready);  // may park
  EXPECT_TRUE(build_fetch_page(j, s, F(1, 10, 0), 1).ready);      // no wait asked
  PutAnswers(j, 1, {1});
  EXPECT_TRUE(build_fetch_page(j, s, F(1, 10, 5000), 1).ready);
  SessionTable t_empty;
  Session& empty = MakeSession(t_empty, 0);
  Reply r = Decode(build_fetch_page(j, empty, F(1, 10, 5000), 1).reply);
  EXPECT_TRUE(r.done);  // complete with nothing: nothing to wait for
}

TEST(Fetch, ParkedFetchesWakeForTheirSessionOrAtTheirDeadline) {
  ParkedFetches p;
  p.park({"r1", 1, F(1), 1000});
  proto::Fetch other = F(1);
  other.session_id = std::string(32, 'o');
  p.park({"r2", 2, other, 5000});
  EXPECT_TRUE(p.take("", 999).empty());
  auto woke = p.take(kSid, 10);
  ASSERT_EQ(woke.size(), 1u);
  EXPECT_EQ(woke[0].rid, "r1");
  EXPECT_EQ(p.size(), 1u);
  woke = p.take("", 5000);
  ASSERT_EQ(woke.size(), 1u);
  EXPECT_EQ(woke[0].rid, "r2");
  EXPECT_TRUE(p.empty());
}

}  // namespace
}  // namespace zgrid::head
