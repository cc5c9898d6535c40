// The journal conformance suite (issue 29.4): one set of cases that every
// JournalStore passes — the LevelDB journal (segment files, its own threads,
// real files in a temporary directory) and MemoryJournal, in process. Writes
// read back (get, cursors over a prefix), completions in order, group
// commit, bulk values, purge, lost and damaged bulk data, injected write,
// sync and read failures, reopening after a fault, a close and a crash, the
// counters. Where the implementations differ on purpose, the backend's
// JournalCaps says so and the case checks each side (tests/support/
// journal_backends.hpp); a new backend is one more line in
// INSTANTIATE_TEST_SUITE_P below.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "head/journal_records.hpp"
#include "tests/support/journal_backends.hpp"

namespace zgrid::head {
namespace {

using testing::JournalBackend;
using testing::JournalCaps;
using testing::OpenMode;

std::string Sid(char c) {
  return std::string(kSessionIdLength, c);
}

// `n` bytes that differ by `seed` and never start with 0xc1 (which bulk
// values, msgpack in the head, never do: the LevelDB journal's pointer tag).
std::string Blob(std::size_t n, std::uint32_t seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  if (!s.empty()) s[0] = 'b';
  return s;
}

JournalOp Puts(std::vector<std::pair<std::string, std::string>> kv) {
  JournalOp op;
  op.puts = std::move(kv);
  return op;
}

// What Durable::purge_op writes: every range of the session, its segment
// file, and its tombstone.
JournalOp Purge(const std::string& sid, const std::string& tombstone) {
  JournalOp op;
  op.maintenance = true;
  op.purge_session = sid;
  for (char kind : {jkey::kSession, jkey::kClient, jkey::kIndex, jkey::kRequests, jkey::kAnswers})
    op.delete_prefixes.push_back(jkey::session(kind, sid));
  op.puts.emplace_back(jkey::session(jkey::kTombstone, sid), tombstone);
  return op;
}

// How Scan shows a value that cannot be read. (Built with += : GCC 12 warns
// wrongly about "literal" + std::string.)
std::string Unreadable(Code code) {
  std::string s = "!";
  s += code_name(code);
  return s;
}
std::string Cid(int i) {
  std::string s = "k";
  s += std::to_string(i);
  return s;
}

std::string R(const std::string& sid, std::uint64_t n) {
  return jkey::numbered(jkey::kRequests, sid, n);
}
std::string A(const std::string& sid, std::uint64_t n) {
  return jkey::numbered(jkey::kAnswers, sid, n);
}
std::string I(const std::string& sid, std::uint64_t n) {
  return jkey::numbered(jkey::kIndex, sid, n);
}
std::string S(const std::string& sid) {
  return jkey::session(jkey::kSession, sid);
}
std::string T(const std::string& sid) {
  return jkey::session(jkey::kTombstone, sid);
}

struct Backend {
  const char* name;
  std::unique_ptr<JournalBackend> (*make)();
};

void PrintTo(const Backend& b, std::ostream* os) {
  *os << b.name;
}

class JournalConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { b_ = GetParam().make(); }

  const JournalCaps& caps() const { return b_->caps(); }
  JournalStore& j() { return b_->store(); }

  // Submits, waits for the completion; its outcome.
  bool Write(JournalOp op) {
    std::uint64_t seq = j().submit(std::move(op));
    if (!b_->await(seq)) {
      ADD_FAILURE() << "no completion for op " << seq;
      return false;
    }
    return b_->outcome(seq)->ok;
  }
  void MustWrite(JournalOp op) { ASSERT_TRUE(Write(std::move(op))); }

  // The value of `key`, or the status code of its read.
  Code ReadCode(const std::string& key) {
    std::string v;
    return j().get(key, &v).code();
  }
  std::string Read(const std::string& key) {
    std::string v;
    Status st = j().get(key, &v);
    EXPECT_TRUE(st.ok()) << jkey::describe(key) << ": " << st.message();
    return v;
  }

  // Every (key, value) of `prefix` from `from` on, through a cursor; a value
  // that cannot be read shows as its status code's name.
  std::vector<std::pair<std::string, std::string>> Scan(const std::string& prefix,
                                                        const std::string& from = "") {
    std::vector<std::pair<std::string, std::string>> out;
    auto c = j().cursor(prefix);
    EXPECT_NE(c, nullptr);
    if (!c) return out;
    for (c->seek(from.empty() ? prefix : from); c->valid(); c->next()) {
      std::string_view v;
      Status st = c->value(&v);
      out.emplace_back(std::string(c->key()), st.ok() ? std::string(v) : Unreadable(st.code()));
    }
    return out;
  }

  // A session with every kind of record: S, two clients, and `batches`
  // request batches (I + R) and response records (A) of `bulk` bytes.
  void WriteSession(const std::string& sid, int batches, std::size_t bulk) {
    JournalOp op;
    op.puts.emplace_back(S(sid), "session " + sid);
    op.puts.emplace_back(jkey::client(sid, "c1"), "client 1");
    op.puts.emplace_back(jkey::client(sid, "c2"), "client 2");
    for (int i = 1; i <= batches; ++i) {
      auto n = static_cast<std::uint64_t>(i);
      op.puts.emplace_back(I(sid, n), "index " + std::to_string(i));
      op.puts.emplace_back(R(sid, n), Blob(bulk, Seed(sid, 'R', n)));
      op.puts.emplace_back(A(sid, n), Blob(bulk, Seed(sid, 'A', n)));
    }
    MustWrite(std::move(op));
  }
  static std::uint32_t Seed(const std::string& sid, char kind, std::uint64_t n) {
    return static_cast<std::uint32_t>(sid[0]) * 1000 + static_cast<std::uint32_t>(kind) * 100 +
           static_cast<std::uint32_t>(n);
  }
  // Every record WriteSession wrote reads back.
  void ExpectSession(const std::string& sid, int batches, std::size_t bulk) {
    EXPECT_EQ(Read(S(sid)), "session " + sid);
    EXPECT_EQ(Read(jkey::client(sid, "c2")), "client 2");
    for (int i = 1; i <= batches; ++i) {
      auto n = static_cast<std::uint64_t>(i);
      EXPECT_EQ(Read(I(sid, n)), "index " + std::to_string(i));
      EXPECT_EQ(Read(R(sid, n)), Blob(bulk, Seed(sid, 'R', n))) << "R #" << i;
      EXPECT_EQ(Read(A(sid, n)), Blob(bulk, Seed(sid, 'A', n))) << "A #" << i;
    }
  }

  std::unique_ptr<JournalBackend> b_;
};

// ---- writes and reads -----------------------------------------------------------

TEST_P(JournalConformance, WritesReadBackThroughGetAndCursors) {
  b_->open();
  std::string a = Sid('a'), b = Sid('b');
  // Numbers whose big-endian order differs from their byte order's.
  MustWrite(Puts({{R(a, 256), "r256"}, {R(a, 1), "r1"}, {R(a, 2), "r2"}, {R(a, 65536), "r65536"}}));
  MustWrite(Puts({{S(a), "sa"}, {S(b), "sb"}, {R(b, 1), "b1"}, {T(Sid('t')), "100"}}));

  EXPECT_EQ(Read(R(a, 256)), "r256");
  EXPECT_EQ(Read(S(b)), "sb");
  EXPECT_EQ(ReadCode(R(a, 3)), Code::kNotFound);
  EXPECT_EQ(ReadCode(A(a, 1)), Code::kNotFound);

  using KV = std::vector<std::pair<std::string, std::string>>;
  std::string ra = jkey::session(jkey::kRequests, a);
  EXPECT_EQ(Scan(ra),
            (KV{{R(a, 1), "r1"}, {R(a, 2), "r2"}, {R(a, 256), "r256"}, {R(a, 65536), "r65536"}}));
  EXPECT_EQ(Scan(ra, R(a, 3)), (KV{{R(a, 256), "r256"}, {R(a, 65536), "r65536"}}));
  EXPECT_TRUE(Scan(ra, R(a, 65537)).empty());
  EXPECT_TRUE(Scan(jkey::session(jkey::kAnswers, a)).empty());

  auto c = j().cursor(ra);
  ASSERT_NE(c, nullptr);
  c->seek(R(a, 65536));
  ASSERT_TRUE(c->valid());
  c->next();
  EXPECT_FALSE(c->valid());     // past the prefix...
  EXPECT_TRUE(c->raw_valid());  // ...on b's request batch
  EXPECT_EQ(c->key(), R(b, 1));
  c->seek(R(a, 2));
  c->prev();
  ASSERT_TRUE(c->valid());
  EXPECT_EQ(c->key(), R(a, 1));
  c->seek_to_last();  // the last key of the whole store
  ASSERT_TRUE(c->raw_valid());
  EXPECT_EQ(c->key(), T(Sid('t')));
  std::string_view v;
  ASSERT_TRUE(c->value(&v).ok());
  EXPECT_EQ(v, "100");
}

TEST_P(JournalConformance, LaterOpsOverwriteAndDeleteEarlierOnes) {
  b_->open();
  std::string a = Sid('a');
  MustWrite(Puts({{S(a), "one"}, {I(a, 1), "i1"}, {I(a, 2), "i2"}}));
  MustWrite(Puts({{S(a), "two"}}));
  JournalOp del;
  del.deletes = {I(a, 1)};
  MustWrite(std::move(del));
  EXPECT_EQ(Read(S(a)), "two");
  EXPECT_EQ(ReadCode(I(a, 1)), Code::kNotFound);
  EXPECT_EQ(Read(I(a, 2)), "i2");
  // One op's deletes go before its puts.
  JournalOp both;
  both.deletes = {I(a, 2)};
  both.puts = {{I(a, 2), "again"}};
  MustWrite(std::move(both));
  EXPECT_EQ(Read(I(a, 2)), "again");
}

// Ops submitted together take effect in the order submitted, whether or not
// the store writes them in one group.
TEST_P(JournalConformance, OpsTakeEffectInOrderWhenWrittenTogether) {
  b_->open();
  std::string a = Sid('a');
  constexpr int kPairs = 300;
  std::uint64_t last = 0;
  for (int i = 0; i < kPairs; ++i) {
    auto n = static_cast<std::uint64_t>(i);
    JournalOp del;  // deletes a key the next op puts back
    del.deletes = {I(a, n)};
    j().submit(std::move(del));
    j().submit(Puts({{I(a, n), "back"}, {jkey::client(a, Cid(i)), "put"}}));
    JournalOp gone;  // deletes what the op before it put
    gone.deletes = {jkey::client(a, Cid(i))};
    last = j().submit(std::move(gone));
  }
  ASSERT_TRUE(b_->await(last));
  for (const auto& c : b_->completions) EXPECT_TRUE(c.ok) << c.error;
  for (int i = 0; i < kPairs; ++i) {
    EXPECT_EQ(ReadCode(I(a, static_cast<std::uint64_t>(i))), Code::kOk) << i;
    EXPECT_EQ(ReadCode(jkey::client(a, Cid(i))), Code::kNotFound) << i;
  }
  JournalStats st = j().stats();
  EXPECT_EQ(st.ops, 3u * kPairs);
  if (caps().group_commit)
    EXPECT_LT(st.syncs, st.ops) << "no two ops were written together: the case proved nothing";
  else
    EXPECT_EQ(st.syncs, st.ops);
}

// ---- completions and counters ---------------------------------------------------

TEST_P(JournalConformance, CompletionsComeInOrderAndCoverEveryOp) {
  b_->open();
  constexpr std::uint64_t kOps = 2'000;
  std::size_t bytes = 0;
  for (std::uint64_t i = 1; i <= kOps; ++i) {
    JournalOp op = Puts({{I(Sid('a'), i), "index " + std::to_string(i)}});
    bytes += op.bytes();
    EXPECT_EQ(j().submit(std::move(op)), i);  // numbered from 1, one by one
  }
  ASSERT_TRUE(b_->await(kOps));
  std::uint64_t prev = 0;
  for (const auto& c : b_->completions) {
    EXPECT_GT(c.seq, prev);
    EXPECT_TRUE(c.ok) << c.error;
    prev = c.seq;
  }
  EXPECT_EQ(prev, kOps);
  EXPECT_EQ(Read(I(Sid('a'), kOps)), "index " + std::to_string(kOps));
  // The counters.
  JournalStats st = j().stats();
  EXPECT_EQ(st.ops, kOps);
  EXPECT_EQ(st.bytes, bytes);
  EXPECT_EQ(st.failures, 0u);
  EXPECT_EQ(st.syncs, b_->completions.size());  // one completion per synced write
  if (caps().group_commit)
    EXPECT_LT(st.syncs, kOps / 2) << "2,000 ops submitted at once are written in groups";
  else
    EXPECT_EQ(st.syncs, kOps);
  EXPECT_EQ(st.sync_seconds.count, st.syncs);
  EXPECT_EQ(j().backlog_bytes(), 0u);
  EXPECT_TRUE(j().healthy());
  EXPECT_FALSE(j().space_short());
  EXPECT_EQ(j().health_reason(), "ok");
  EXPECT_EQ(j().reopens(), 0u);
}

// ---- bulk values ------------------------------------------------------------------

TEST_P(JournalConformance, BulkValuesOfEverySizeReadBackWhole) {
  b_->open();
  std::string small = Sid('s'), big = Sid('g');
  WriteSession(small, 3, 40);  // a small session (LevelDB: kept inline)
  WriteSession(big, 2, 64 << 10);
  std::string huge = Blob(6 << 20, 7), empty;
  MustWrite(Puts({{R(big, 3), huge}, {A(big, 3), empty}}));
  ExpectSession(small, 3, 40);
  ExpectSession(big, 2, 64 << 10);
  EXPECT_EQ(Read(R(big, 3)), huge);
  EXPECT_EQ(Read(A(big, 3)), empty);
  // Through a cursor too, each value whole while the cursor stays.
  auto rows = Scan(jkey::session(jkey::kRequests, big));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].second, Blob(64 << 10, Seed(big, 'R', 1)));
  EXPECT_EQ(rows[2].second, huge);
  if (caps().bulk_files) {
    EXPECT_TRUE(b_->bulk_file_exists(big));
    EXPECT_FALSE(b_->bulk_file_exists(small)) << "a small session's bulk values stay inline";
  }
  // And after a reopen.
  b_->close();
  b_->open();
  ExpectSession(small, 3, 40);
  ExpectSession(big, 2, 64 << 10);
  EXPECT_EQ(Read(R(big, 3)), huge);
}

// ---- purge ------------------------------------------------------------------------

TEST_P(JournalConformance, PurgeRemovesEveryKeyOfTheSessionAndKeepsItsTombstone) {
  b_->open();
  std::string a = Sid('a'), b = Sid('b');
  WriteSession(a, 3, 8 << 10);
  WriteSession(b, 3, 8 << 10);
  // Written before the purge and not yet completed when it is submitted
  // (LevelDB: perhaps in the same group): gone with the rest.
  j().submit(Puts({{R(a, 4), Blob(8 << 10, 44)}, {I(a, 4), "i4"}, {A(a, 1), "answer again"}}));
  std::uint64_t purge = j().submit(Purge(a, "1234"));
  // After the purge, another session's write goes through as usual.
  std::uint64_t after = j().submit(Puts({{A(b, 9), Blob(8 << 10, 99)}}));
  ASSERT_TRUE(b_->await(after));
  EXPECT_TRUE(b_->outcome(purge)->ok);
  EXPECT_TRUE(b_->outcome(after)->ok);

  auto gone = [&] {
    for (char kind : {jkey::kSession, jkey::kClient, jkey::kIndex, jkey::kRequests, jkey::kAnswers})
      EXPECT_TRUE(Scan(jkey::session(kind, a)).empty()) << "kind " << kind;
    for (std::uint64_t n = 1; n <= 4; ++n) {
      EXPECT_EQ(ReadCode(R(a, n)), Code::kNotFound) << n;
      EXPECT_EQ(ReadCode(A(a, n)), Code::kNotFound) << n;
      EXPECT_EQ(ReadCode(I(a, n)), Code::kNotFound) << n;
    }
    EXPECT_EQ(ReadCode(S(a)), Code::kNotFound);
    EXPECT_EQ(Read(T(a)), "1234");
    ExpectSession(b, 3, 8 << 10);
    EXPECT_EQ(Read(A(b, 9)), Blob(8 << 10, 99));
  };
  gone();
  if (caps().bulk_files) {
    EXPECT_FALSE(b_->bulk_file_exists(a)) << "the purge gives the space back";
    EXPECT_TRUE(b_->bulk_file_exists(b));
  }
  b_->close();
  b_->open();
  gone();

  // The journal is not what keeps a purged session from being written again
  // (the head's rooms are): a write after the purge starts its records
  // afresh, and nothing purged comes back with it.
  MustWrite(Puts({{R(a, 7), Blob(8 << 10, 77)}}));
  EXPECT_EQ(Read(R(a, 7)), Blob(8 << 10, 77));
  auto rows = Scan(jkey::session(jkey::kRequests, a));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].first, R(a, 7));
  EXPECT_EQ(ReadCode(A(a, 1)), Code::kNotFound);
  EXPECT_EQ(Read(T(a)), "1234");
}

// ---- lost and damaged bulk data ---------------------------------------------------

TEST_P(JournalConformance, LostOrDamagedBulkDataReadsAsDataLoss) {
  b_->open();
  std::string damaged = Sid('d'), truncated = Sid('t'), lost = Sid('l'), fine = Sid('f');
  for (const auto& sid : {damaged, truncated, lost, fine}) WriteSession(sid, 2, 16 << 10);
  b_->damage_bulk(damaged);
  b_->truncate_bulk(truncated);
  b_->close();
  b_->lose_bulk(lost);
  b_->open();

  for (const auto& sid : {damaged, truncated, lost}) {
    for (std::uint64_t n = 1; n <= 2; ++n) {
      std::string v;
      Status st = j().get(R(sid, n), &v);
      EXPECT_EQ(st.code(), Code::kDataLoss) << sid[0] << " R #" << n << ": " << st.message();
      EXPECT_TRUE(JournalReader::is_corruption(st));
      EXPECT_EQ(ReadCode(A(sid, n)), Code::kDataLoss) << sid[0] << " A #" << n;
    }
    // A cursor finds every key; their values are corrupt.
    auto rows = Scan(jkey::session(jkey::kAnswers, sid));
    ASSERT_EQ(rows.size(), 2u) << sid[0];
    EXPECT_EQ(rows[0].second, Unreadable(Code::kDataLoss));
    // The session's small records are intact.
    EXPECT_EQ(Read(S(sid)), "session " + sid);
    EXPECT_EQ(Read(I(sid, 2)), "index 2");
  }
  ExpectSession(fine, 2, 16 << 10);
  // A read error is no write error: the store is healthy, and a damaged
  // session still takes new records, which read back.
  EXPECT_TRUE(j().healthy());
  for (const auto& sid : {damaged, truncated, lost}) {
    MustWrite(Puts({{A(sid, 3), Blob(16 << 10, 333)}}));
    EXPECT_EQ(Read(A(sid, 3)), Blob(16 << 10, 333)) << sid[0];
    EXPECT_EQ(ReadCode(A(sid, 1)), Code::kDataLoss) << sid[0];
  }
}

TEST_P(JournalConformance, OrphanBulkDataOfGoneSessionsIsRemoved) {
  b_->open();
  std::string live = Sid('a'), gone = Sid('g');
  WriteSession(live, 2, 8 << 10);
  WriteSession(gone, 2, 8 << 10);
  j().remove_orphan_segments([&](std::string_view sid) { return sid == live; });
  ExpectSession(live, 2, 8 << 10);
  EXPECT_EQ(Read(S(gone)), "session " + gone);
  if (caps().removes_orphan_bulk) {
    EXPECT_EQ(ReadCode(R(gone, 1)), Code::kDataLoss);
    EXPECT_FALSE(b_->bulk_file_exists(gone));
  } else {
    EXPECT_EQ(Read(R(gone, 1)), Blob(8 << 10, Seed(gone, 'R', 1)));
  }
}

// ---- injected faults ---------------------------------------------------------------

TEST_P(JournalConformance, AFailedWriteIsReportedAndWritesResumeAfterReopenAndReconcile) {
  b_->open();
  std::string a = Sid('a');
  MustWrite(Puts({{S(a), "before"}}));
  b_->fail_writes(true);
  std::uint64_t seq = j().submit(Puts({{I(a, 1), "lost"}}));
  ASSERT_TRUE(b_->await(seq));
  const JournalCompletion failed = *b_->outcome(seq);
  EXPECT_FALSE(failed.ok);
  EXPECT_FALSE(failed.error.empty());
  EXPECT_FALSE(j().healthy());
  EXPECT_FALSE(j().space_short());  // not for lack of space
  EXPECT_EQ(j().health_reason(), failed.error);
  EXPECT_EQ(ReadCode(I(a, 1)), Code::kNotFound);
  EXPECT_EQ(Read(S(a)), "before");  // reads go on
  EXPECT_FALSE(Write(Puts({{I(a, 2), "also lost"}})));

  // Writes may succeed again, but the store fails every write until it has
  // reopened and its owner has reconciled with what it holds. A maintenance
  // write (a purge, a client removal, a seal: it gives space back or records
  // a change of state) reopens it at once and goes through before that.
  std::uint64_t reopens = j().reopens();
  b_->fail_writes(false);
  EXPECT_FALSE(Write(Puts({{I(a, 3), "not yet"}})));
  EXPECT_FALSE(j().healthy());
  JournalOp seal = Puts({{S(a), "sealed"}});
  seal.maintenance = true;
  EXPECT_TRUE(Write(std::move(seal)));
  EXPECT_EQ(Read(S(a)), "sealed");
  EXPECT_EQ(j().reopens(), reopens + 1);
  EXPECT_FALSE(j().healthy());
  EXPECT_FALSE(Write(Puts({{I(a, 4), "not reconciled"}})));
  EXPECT_EQ(j().reopens(), reopens + 1);

  j().reconciled(j().reopens());
  EXPECT_TRUE(j().healthy());
  EXPECT_EQ(j().health_reason(), "ok");
  MustWrite(Puts({{I(a, 5), "after"}}));
  EXPECT_EQ(Read(I(a, 5)), "after");
  for (std::uint64_t n = 1; n <= 4; ++n) EXPECT_EQ(ReadCode(I(a, n)), Code::kNotFound) << n;
  JournalStats st = j().stats();
  EXPECT_EQ(st.failures, 4u);  // each failed op was written alone
  EXPECT_EQ(st.ops, 3u);
  EXPECT_EQ(j().backlog_bytes(), 0u);
}

// A write that reached storage but whose sync failed: reported failed, yet
// read back (the owner reconciles with it after the reopen); the writes after
// it are refused without reaching storage.
TEST_P(JournalConformance, AFailedSyncKeepsTheWriteThatReachedStorage) {
  b_->open(OpenMode{.faults_after_write = true});
  std::string a = Sid('a');
  MustWrite(Puts({{S(a), "session"}}));
  b_->fail_writes(true);
  EXPECT_FALSE(Write(Puts({{R(a, 1), Blob(4 << 10, 1)}, {I(a, 1), "written"}})));
  EXPECT_FALSE(j().healthy());
  EXPECT_FALSE(Write(Puts({{I(a, 2), "refused"}})));
  // Without a maintenance write the store reopens by itself (LevelDB: its
  // journal thread, within a second or so).
  std::uint64_t reopens = j().reopens();
  b_->fail_writes(false);
  ASSERT_TRUE(b_->await_reopen(reopens));
  EXPECT_EQ(j().reopens(), reopens + 1);
  EXPECT_FALSE(j().healthy());
  EXPECT_EQ(Read(I(a, 1)), "written");
  EXPECT_EQ(Read(R(a, 1)), Blob(4 << 10, 1));
  EXPECT_EQ(ReadCode(I(a, 2)), Code::kNotFound);
  j().reconciled(j().reopens());
  EXPECT_TRUE(j().healthy());
  MustWrite(Puts({{I(a, 3), "after"}}));
  EXPECT_EQ(j().stats().failures, 2u);
  // And after a reopen of the whole store.
  b_->close();
  b_->open();
  EXPECT_EQ(Read(I(a, 1)), "written");
  EXPECT_EQ(Read(I(a, 3)), "after");
  EXPECT_EQ(ReadCode(I(a, 2)), Code::kNotFound);
}

TEST_P(JournalConformance, AReadFailureIsUnavailableNotCorruptionUntilCleared) {
  b_->open();
  std::string a = Sid('a');
  WriteSession(a, 2, 16 << 10);
  b_->fail_reads(true);
  std::string v;
  Status st = j().get(R(a, 1), &v);
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.message();
  EXPECT_FALSE(JournalReader::is_corruption(st));
  auto rows = Scan(jkey::session(jkey::kAnswers, a));  // keys still found
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].second, Unreadable(Code::kUnavailable));
  EXPECT_EQ(ReadCode(S(a)), caps().read_faults_hit_every_record ? Code::kUnavailable : Code::kOk);
  // Writes are not affected.
  EXPECT_TRUE(Write(Puts({{R(a, 3), Blob(16 << 10, 3)}})));
  EXPECT_TRUE(j().healthy());
  b_->fail_reads(false);
  ExpectSession(a, 2, 16 << 10);
  EXPECT_EQ(Read(R(a, 3)), Blob(16 << 10, 3));
}

// ---- reopening ---------------------------------------------------------------------

TEST_P(JournalConformance, ReopenAfterCloseKeepsEverythingAndStartsAfresh) {
  b_->open();
  WriteSession(Sid('a'), 3, 8 << 10);
  WriteSession(Sid('b'), 1, 50);
  if (caps().exclusive_open) {
    Status st = b_->open_another();
    EXPECT_EQ(st.code(), Code::kUnavailable);
    EXPECT_NE(st.message().find("in use by PID"), std::string::npos) << st.message();
  } else {
    EXPECT_TRUE(b_->open_another().ok());
  }
  b_->close();
  b_->open();
  ExpectSession(Sid('a'), 3, 8 << 10);
  ExpectSession(Sid('b'), 1, 50);
  EXPECT_TRUE(j().healthy());
  EXPECT_EQ(j().stats().ops, 0u);  // counters are the open store's own
  EXPECT_EQ(j().reopens(), 0u);
  std::uint64_t seq = j().submit(Puts({{I(Sid('c'), 1), "c"}}));
  EXPECT_EQ(seq, 1u);
  ASSERT_TRUE(b_->await(seq));
  EXPECT_TRUE(b_->outcome(seq)->ok);
}

// A crash right after a synced write, before its completion was delivered:
// on reopen that write and every one before it are there, nothing after.
TEST_P(JournalConformance, ReopenAfterACrashKeepsEverySyncedWrite) {
  std::string a = Sid('a');
  bool crashed = b_->run_until_crash(3, [&](const JournalBackend::SubmitAndWait& write) {
    for (std::uint64_t n = 1; n <= 6; ++n)
      if (!write(Puts({{R(a, n), Blob(8 << 10, static_cast<std::uint32_t>(n))},
                       {I(a, n), std::string("i").append(std::to_string(n))}})))
        return;
  });
  ASSERT_TRUE(crashed);
  b_->open();
  for (std::uint64_t n = 1; n <= 3; ++n) {
    EXPECT_EQ(Read(I(a, n)), std::string("i").append(std::to_string(n)));
    EXPECT_EQ(Read(R(a, n)), Blob(8 << 10, static_cast<std::uint32_t>(n)));
  }
  for (std::uint64_t n = 4; n <= 6; ++n) EXPECT_EQ(ReadCode(I(a, n)), Code::kNotFound) << n;
  EXPECT_EQ(Scan(jkey::session(jkey::kRequests, a)).size(), 3u);
  // The store works on: new records go after what the crash left.
  EXPECT_TRUE(j().healthy());
  MustWrite(Puts({{R(a, 4), Blob(8 << 10, 40)}, {I(a, 4), "i4 again"}}));
  EXPECT_EQ(Read(R(a, 4)), Blob(8 << 10, 40));
  EXPECT_EQ(Read(R(a, 3)), Blob(8 << 10, 3));
  b_->close();
  b_->open();
  EXPECT_EQ(Read(R(a, 4)), Blob(8 << 10, 40));
}

INSTANTIATE_TEST_SUITE_P(Backends, JournalConformance,
                         ::testing::Values(Backend{"LevelDb", testing::make_leveldb_backend},
                                           Backend{"Memory", testing::make_memory_backend}),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace zgrid::head
