// head/journal_records: keys and typed records round-trip, old shorter
// records still read, corrupt values are refused, and docs/architecture.md's
// record table lists the fields the code writes, in order.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include "common/codec.hpp"
#include "head/journal_records.hpp"

namespace zgrid::head {
namespace {

const std::string kSid(32, 'a');

TEST(JournalRecords, KeysSortByKindSessionAndNumber) {
  std::string k1 = jkey::numbered(jkey::kAnswers, kSid, 1);
  std::string k2 = jkey::numbered(jkey::kAnswers, kSid, 256);
  std::string k3 = jkey::numbered(jkey::kAnswers, kSid, 1ull << 40);
  EXPECT_LT(k1, k2);
  EXPECT_LT(k2, k3);
  EXPECT_EQ(jkey::number_of(k3), 1ull << 40);
  EXPECT_EQ(jkey::sid_of(k3), kSid);
  EXPECT_TRUE(jkey::is_bulk(k3));
  EXPECT_TRUE(jkey::is_bulk(jkey::numbered(jkey::kRequests, kSid, 7)));
  EXPECT_FALSE(jkey::is_bulk(jkey::numbered(jkey::kIndex, kSid, 7)));
  EXPECT_FALSE(jkey::is_bulk(jkey::session(jkey::kAnswers, kSid)));  // a prefix, not a record
  EXPECT_EQ(jkey::client_of(jkey::client(kSid, "c1")), "c1");
  EXPECT_EQ(jkey::describe(k2), "A of session " + kSid + " #256");
  EXPECT_EQ(jkey::describe(jkey::session(jkey::kSession, kSid)), "S of session " + kSid);
  EXPECT_EQ(jkey::sid_of("S"), "");
  // Every key of a session's kind lies in its prefix range.
  EXPECT_EQ(k1.rfind(jkey::session(jkey::kAnswers, kSid), 0), 0u);
}

TEST(JournalRecords, SessionRoundTripsAndOldRecordsRead) {
  SessionRecord a{"factorize", 1700000000, 300000,     proto::SessionState::kClosed,
                  2000,        1800000000, "owner-key"};
  SessionRecord b;
  ASSERT_TRUE(SessionRecord::decode(a.encode(), &b));
  EXPECT_EQ(b.service, a.service);
  EXPECT_EQ(b.created, a.created);
  EXPECT_EQ(b.client_idle_timeout_ms, a.client_idle_timeout_ms);
  EXPECT_EQ(b.state, a.state);
  EXPECT_EQ(b.task_timeout_ms, a.task_timeout_ms);
  EXPECT_EQ(b.deadline, a.deadline);
  EXPECT_EQ(b.owner, a.owner);
  // Written by an older head: four fields.
  Writer w;
  w.array(4).str("echo").i64(5).i64(6).u64(3);
  SessionRecord old;
  ASSERT_TRUE(SessionRecord::decode(w.finish_string(), &old));
  EXPECT_EQ(old.service, "echo");
  EXPECT_EQ(old.state, proto::SessionState::kClosed);
  EXPECT_EQ(old.task_timeout_ms, 0);
  EXPECT_EQ(old.owner, "");
}

TEST(JournalRecords, ClientIndexAndRequestRoundTrip) {
  ClientRecord c{10, 20, 30, true, false, 40}, c2;
  ASSERT_TRUE(ClientRecord::decode(c.encode(), &c2));
  EXPECT_EQ(c2.acked_seq, 10u);
  EXPECT_EQ(c2.sent, 20u);
  EXPECT_EQ(c2.flushed_id, 30u);
  EXPECT_TRUE(c2.ended);
  EXPECT_FALSE(c2.removed);
  EXPECT_EQ(c2.max_id, 40u);

  IndexRecord i{1024, "client-1", 99999}, i2;
  ASSERT_TRUE(IndexRecord::decode(i.encode(), &i2));
  EXPECT_EQ(i2.n, 1024u);
  EXPECT_EQ(i2.client_id, "client-1");
  EXPECT_EQ(i2.record_bytes, 99999u);
  Writer w;
  w.array(2).u64(5).str("c");  // an older index record: no record_bytes
  ASSERT_TRUE(IndexRecord::decode(w.finish_string(), &i2));
  EXPECT_EQ(i2.n, 5u);
  EXPECT_EQ(i2.record_bytes, 0u);

  std::string frame("\x01\x02\x00\x03", 4), statuses("\x00\x01", 2);
  for (std::string_view st : {std::string_view(), std::string_view(statuses)}) {
    RequestRecord r{st, 77, frame};
    std::string v = r.encode();
    RequestRecord r2;
    ASSERT_TRUE(RequestRecord::decode(v, &r2));
    EXPECT_EQ(r2.statuses, st);
    EXPECT_EQ(r2.first_request_id, 77u);
    EXPECT_EQ(r2.send_frame, frame);
  }
  EXPECT_EQ(encode_tombstone(1700000000), "1700000000");
}

TEST(JournalRecords, OneMessageRecordRoundTrips) {
  std::string frame("\x01\x02\x00\x03", 4), statuses("\x00\x02\x00", 3);
  OneMessageRecord m;
  m.session =
      SessionRecord{"echo", 1700000000, 300000, proto::SessionState::kSealed, 0, 0, "owner", false};
  m.client_id = "cell-1";
  m.acked_seq = 3;
  m.sent = 2;
  m.max_id = 2;
  m.n = 2;
  m.statuses = statuses;
  m.first_request_id = 1;
  m.send_frame = frame;
  std::string v = m.encode();
  OneMessageRecord m2;
  ASSERT_TRUE(OneMessageRecord::decode(v, &m2));
  EXPECT_EQ(m2.session.service, "echo");
  EXPECT_EQ(m2.session.state, proto::SessionState::kSealed);
  EXPECT_EQ(m2.session.owner, "owner");
  EXPECT_EQ(m2.client_id, "cell-1");
  EXPECT_EQ(m2.acked_seq, 3u);
  EXPECT_EQ(m2.sent, 2u);
  EXPECT_EQ(m2.max_id, 2u);
  EXPECT_EQ(m2.n, 2u);
  EXPECT_EQ(m2.statuses, statuses);
  EXPECT_EQ(m2.first_request_id, 1u);
  EXPECT_EQ(m2.send_frame, frame);
  EXPECT_FALSE(OneMessageRecord::decode(v.substr(0, v.size() - 1), &m2));
  EXPECT_FALSE(OneMessageRecord::decode(ClientRecord{}.encode(), &m2));
  EXPECT_EQ(jkey::describe(jkey::session(jkey::kOneMessage, kSid)), "M of session " + kSid);
  EXPECT_FALSE(jkey::is_bulk(jkey::session(jkey::kOneMessage, kSid)));
}

TEST(JournalRecords, CorruptValuesAreRefusedNotGuessed) {
  SessionRecord s;
  ClientRecord c;
  IndexRecord i;
  RequestRecord r;
  std::string good = ClientRecord{1, 2, 3, false, false, 4}.encode();
  for (std::string bad : {std::string(), std::string("\xc1"), std::string("\x93\x01"),
                          good.substr(0, good.size() - 1), good + "x", std::string("garbage")}) {
    EXPECT_FALSE(ClientRecord::decode(bad, &c)) << bad.size();
    EXPECT_FALSE(SessionRecord::decode(bad, &s));
    EXPECT_FALSE(IndexRecord::decode(bad, &i));
    EXPECT_FALSE(RequestRecord::decode(bad, &r));
  }
  Writer w;
  w.array(3).u64(5).str("").u64(1);  // an index record naming no client
  EXPECT_FALSE(IndexRecord::decode(w.finish_string(), &i));
}

// "u3" and the like (built by append: GCC 12 warns falsely on "u" + s).
std::string Tagged(char c, int k) {
  std::string s(1, c);
  s += std::to_string(k);
  return s;
}

std::string AnswerRecord(int n, int corrupt_at = -1) {
  Writer w;
  w.array(static_cast<std::uint32_t>(n));
  for (int k = 0; k < n; ++k) {
    if (k == corrupt_at) {
      w.array(4).str("not an id").nil().nil().nil();
      continue;
    }
    proto::write_response_item(w, 100 + k, Tagged('u', k), k % 2 ? "service_error" : "",
                               Tagged('d', k));
  }
  return w.finish_string();
}

TEST(JournalRecords, AnswersVisitEveryItemInOrderAndKeepPositionsPastACorruptOne) {
  std::uint64_t count = 0;
  std::vector<AnswerItem> seen;
  std::string v = AnswerRecord(5, 2);
  bool intact = for_each_answer(v, &count, [&](const AnswerItem& a) {
    seen.push_back(a);
    return true;
  });
  EXPECT_FALSE(intact);
  EXPECT_EQ(count, 5u);
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_FALSE(seen[2].intact);
  for (int k : {0, 1, 3, 4}) {
    EXPECT_TRUE(seen[k].intact);
    EXPECT_EQ(seen[k].request_id, 100u + k);
    EXPECT_EQ(seen[k].user_data, Tagged('u', k));
    EXPECT_EQ(seen[k].ok, k % 2 == 0);
    EXPECT_EQ(seen[k].data, Tagged('d', k));
  }
  // Stops when asked.
  int visits = 0;
  EXPECT_TRUE(
      for_each_answer(AnswerRecord(4), &count, [&](const AnswerItem&) { return ++visits < 2; }));
  EXPECT_EQ(visits, 2);
  EXPECT_FALSE(for_each_answer("junk", &count, [](const AnswerItem&) { return true; }));
  EXPECT_EQ(count, 0u);
  // An item that is not even an array is visited as corrupt, in its place.
  Writer w;
  w.array(3);
  proto::write_response_item(w, 1, "", "", "a");
  w.str("not an item");
  proto::write_response_item(w, 3, "", "", "c");
  std::vector<bool> intact_seen;
  EXPECT_FALSE(for_each_answer(w.finish_string(), &count, [&](const AnswerItem& a) {
    intact_seen.push_back(a.intact);
    return true;
  }));
  ASSERT_GE(intact_seen.size(), 2u);
  EXPECT_TRUE(intact_seen[0]);
  EXPECT_FALSE(intact_seen[1]);
}

TEST(JournalRecords, ArrayHeadersOfEverySize) {
  for (std::uint32_t n : {0u, 15u, 16u, 65535u, 65536u}) {
    Writer w;
    w.array(n);
    for (std::uint32_t k = 0; k < n; ++k) w.nil();
    std::string v = w.finish_string();
    std::uint32_t got = 0;
    std::size_t header = 0;
    ASSERT_TRUE(array_header(v, &got, &header)) << n;
    EXPECT_EQ(got, n);
    EXPECT_EQ(v.size() - header, n);  // one byte per nil
  }
  std::uint32_t n = 0;
  std::size_t h = 0;
  EXPECT_FALSE(array_header("", &n, &h));
  EXPECT_FALSE(array_header("\xdc\x01", &n, &h));
  EXPECT_FALSE(array_header("\xa1x", &n, &h));
}

// The table in docs/architecture.md is what an operator or a new backend's
// author reads: each record's row names the code's fields, in order.
template <std::size_t N>
void ExpectRowLists(const std::string& doc, const std::string& key_cell,
                    const std::array<const char*, N>& fields) {
  std::istringstream in(doc);
  std::string line, row;
  while (std::getline(in, line))
    if (line.rfind("| " + key_cell, 0) == 0) row = line;
  ASSERT_FALSE(row.empty()) << "no row for " << key_cell;
  // Only the value's field list, `[...]`, and each name as a whole word.
  std::size_t open = row.find("`[");
  ASSERT_NE(open, std::string::npos) << row;
  row = row.substr(open, row.find("]`", open) - open);
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  auto find_word = [&](const std::string& w, std::size_t from) {
    for (std::size_t p = row.find(w, from); p != std::string::npos; p = row.find(w, p + 1)) {
      bool left = p == 0 || !word(row[p - 1]);
      bool right = p + w.size() >= row.size() || !word(row[p + w.size()]);
      if (left && right) return p;
    }
    return std::string::npos;
  };
  std::size_t at = 0;
  for (const char* f : fields) {
    std::size_t found = find_word(f, at);
    EXPECT_NE(found, std::string::npos)
        << key_cell << ": field " << f << " missing or out of order";
    if (found != std::string::npos) at = found + 1;
  }
}

TEST(JournalRecords, ArchitectureDocumentListsTheFieldsTheCodeWrites) {
  std::ifstream f(std::string(ZGRID_SOURCE_DIR) + "/docs/architecture.md");
  ASSERT_TRUE(f) << "docs/architecture.md";
  std::stringstream ss;
  ss << f.rdbuf();
  std::string doc = ss.str();
  ExpectRowLists(doc, "`'S'` + sid", SessionRecord::kFields);
  ExpectRowLists(doc, "`'C'` + sid", ClientRecord::kFields);
  ExpectRowLists(doc, "`'I'` + sid", IndexRecord::kFields);
  ExpectRowLists(doc, "`'R'` + sid", RequestRecord::kFields);
  ExpectRowLists(doc, "`'A'` + sid", AnswerItem::kFields);
  ExpectRowLists(doc, "`'M'` + sid", OneMessageRecord::kFields);
}

}  // namespace
}  // namespace zgrid::head
