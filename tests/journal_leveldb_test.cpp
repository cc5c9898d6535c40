// The LevelDB journal's own behaviour, in process, beyond what every
// JournalStore does (tests/journal_conformance_test.cpp): the compactor
// after purges (only the purged sessions' ranges, a close that never waits
// for a whole pass), purges kept apart from ordinary writes (a purge queued
// behind a write that fills the disk still gives the space back), and
// LevelDB's info log in zgrid's log.
#include <gtest/gtest.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/log.hpp"
#include "head/journal.hpp"
#include "head/journal_records.hpp"
#include "tests/support/grid_process.hpp"
#include "tests/support/small_disk.hpp"

namespace zgrid::head {
namespace {

using zgrid::testing::TempDir;
using zgrid::testing::wait_until;

std::string Sid(char c) {
  return std::string(kSessionIdLength, c);
}

// A bulk value: never starts with 0xc1 (the segment pointer's tag).
std::string Blob(std::size_t n, char c) {
  std::string s(n, c);
  if (!s.empty()) s[0] = 'b';
  return s;
}

// What Durable::purge_op writes.
JournalOp Purge(const std::string& sid) {
  JournalOp op;
  op.maintenance = true;
  op.purge_session = sid;
  for (char kind : {jkey::kSession, jkey::kClient, jkey::kIndex, jkey::kRequests, jkey::kAnswers})
    op.delete_prefixes.push_back(jkey::session(kind, sid));
  op.puts.emplace_back(jkey::session(jkey::kTombstone, sid), "gone");
  return op;
}

// Session `sid`: its record and `batches` request batches of `bulk` bytes.
JournalOp Session(const std::string& sid, int batches, std::size_t bulk) {
  JournalOp op;
  op.puts.emplace_back(jkey::session(jkey::kSession, sid), "session");
  for (int i = 1; i <= batches; ++i)
    op.puts.emplace_back(jkey::numbered(jkey::kRequests, sid, static_cast<std::uint64_t>(i)),
                         Blob(bulk, sid[0]));
  return op;
}

// Bytes this process has written (write(2) and the like), from /proc/self/io.
std::uint64_t BytesWritten() {
  std::ifstream f("/proc/self/io");
  std::string name;
  std::uint64_t v = 0;
  while (f >> name >> v)
    if (name == "wchar:") return v;
  ADD_FAILURE() << "no wchar in /proc/self/io";
  return 0;
}

std::uint64_t FreeBytes(const std::string& path) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

// A journal in `dir`, opened with `o`, and its completions.
class OpenJournal {
 public:
  OpenJournal(std::string dir, JournalOptions o) : dir_(std::move(dir)), o_(std::move(o)) {
    reopen();
  }
  Journal& j() { return *j_; }
  void close() { j_.reset(); }
  void reopen() {
    j_.reset();
    completions_.clear();
    auto j = Journal::open(dir_, ctx_, o_);
    if (!j.ok()) throw std::runtime_error("Journal::open: " + j.status().message());
    j_ = std::move(j).value();
  }
  // Waits for the completion that covers op `seq`: whether it was ok.
  bool await(std::uint64_t seq) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      for (auto& c : j_->take_completions()) completions_.push_back(std::move(c));
      for (const auto& c : completions_)
        if (c.seq >= seq) return c.ok;
      zmq::pollitem_t item{j_->completion_socket()->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "no completion for op " << seq;
    return false;
  }
  bool write(JournalOp op) { return await(j_->submit(std::move(op))); }

 private:
  std::string dir_;
  JournalOptions o_;
  zmq::context_t ctx_;
  std::unique_ptr<Journal> j_;
  std::vector<JournalCompletion> completions_;
};

// Options for these tests: any disk, compaction as soon as a purge is written.
JournalOptions Options() {
  JournalOptions o;
  o.min_free_bytes = 0;
  o.reserve_bytes = 0;
  o.compact_after_purges = 1;
  o.compact_quiet = std::chrono::milliseconds(0);
  o.compact_min_interval = std::chrono::milliseconds(0);
  return o;
}

// ---- the fence (failover) ---------------------------------------------------------

// Every file under `dir` with its size and modification time.
std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> Files(const std::string& dir) {
  std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    out[e.path().string()] = {static_cast<std::uintmax_t>(st.st_size),
                              st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
  }
  return out;
}

// A head that lost its lease (head/lease.hpp) writes nothing: not a group,
// not a segment, not a purge, not LevelDB's own compaction. Every write
// fails, and not one file of the journal changes.
TEST(JournalLevelDb, AFenceThatSaysNoStopsEveryWrite) {
  TempDir dir;
  auto allowed = std::make_shared<std::atomic<bool>>(true);
  JournalOptions o = Options();
  o.inline_max = 0;  // segment files too
  o.may_write = [allowed] { return allowed->load(); };
  OpenJournal oj(dir.file("data"), o);
  const std::string a = Sid('a'), b = Sid('b');
  ASSERT_TRUE(oj.write(Session(a, 4, 8 << 10)));
  ASSERT_TRUE(oj.write(Session(b, 2, 100)));
  auto before = Files(dir.file("data"));
  allowed->store(false);
  EXPECT_FALSE(oj.write(Session(Sid('c'), 3, 8 << 10)));
  EXPECT_FALSE(oj.write(Purge(b)));
  JournalOp more;
  more.puts.emplace_back(jkey::numbered(jkey::kRequests, a, 5), Blob(4 << 10, 'x'));
  EXPECT_FALSE(oj.write(std::move(more)));
  EXPECT_EQ(Files(dir.file("data")), before) << "a fenced journal wrote";
  // Its attempts to reopen are fenced too.
  EXPECT_FALSE(oj.j().healthy());
  EXPECT_EQ(Files(dir.file("data")), before) << "a fenced journal wrote";
}

// After a takeover from a head that may still have a write in flight, the
// first append to each segment file an older head wrote goes past a gap: a
// late write of the old head lands in a hole no pointer refers to.
TEST(JournalLevelDb, AfterATakeoverAppendsToOldSegmentsStartPastTheGap) {
  TempDir dir;
  JournalOptions o = Options();
  o.inline_max = 0;
  const std::string a = Sid('a');
  std::uintmax_t before = 0;
  {
    OpenJournal old(dir.file("data"), o);
    ASSERT_TRUE(old.write(Session(a, 2, 4 << 10)));
    before = std::filesystem::file_size(dir.file("data/segments/" + a + ".seg"));
  }
  o.takeover_gap_bytes = 1 << 20;
  OpenJournal taken(dir.file("data"), o);
  JournalOp more;
  more.puts.emplace_back(jkey::numbered(jkey::kRequests, a, 3), Blob(4 << 10, 'z'));
  ASSERT_TRUE(taken.write(std::move(more)));
  // The append: its value, then the group's redo record (journal_files.hpp).
  auto after = std::filesystem::file_size(dir.file("data/segments/" + a + ".seg"));
  EXPECT_GE(after, before + (1 << 20) + (4 << 10) + Redo::kTrailerSize);
  EXPECT_LT(after, before + (1 << 20) + (4 << 10) + 512);
  // Old and new records read back; the hole holds nothing.
  std::string v;
  ASSERT_TRUE(taken.j().get(jkey::numbered(jkey::kRequests, a, 2), &v).ok());
  EXPECT_EQ(v, Blob(4 << 10, 'a'));
  ASSERT_TRUE(taken.j().get(jkey::numbered(jkey::kRequests, a, 3), &v).ok());
  EXPECT_EQ(v, Blob(4 << 10, 'z'));
  // A second append follows the first, not another gap.
  JournalOp again;
  again.puts.emplace_back(jkey::numbered(jkey::kRequests, a, 4), Blob(4 << 10, 'y'));
  ASSERT_TRUE(taken.write(std::move(again)));
  auto again_size = std::filesystem::file_size(dir.file("data/segments/" + a + ".seg"));
  EXPECT_GE(again_size, after + (4 << 10) + Redo::kTrailerSize);
  EXPECT_LT(again_size, after + (4 << 10) + 512);
}

// ---- the compactor ---------------------------------------------------------------

// After a purge the compactor compacts that session's ranges, not every
// live session's data with them (it compacted whole kinds: a journal of
// gigabytes rewritten for one purge).
TEST(JournalLevelDb, CompactionAfterAPurgeRewritesOnlyThePurgedSessionsRanges) {
  TempDir dir;
  JournalOptions o = Options();
  o.inline_max = std::size_t{1} << 30;  // bulk values in LevelDB itself: its files hold the data
  OpenJournal oj(dir.file("data"), o);
  // 12 MiB of a live session's request batches, in one table of LevelDB's
  // level 0 once reopened (less than a memtable: nothing is written out
  // before, and no level is over its size, so LevelDB compacts nothing of
  // its own accord while the test measures).
  // (The journal's version record goes to a table of its own first: a
  // table that spans every kind is compacted with any range.)
  const std::string live = Sid('1'), gone = Sid('e');
  oj.reopen();
  for (int i = 0; i < 3; ++i) {
    JournalOp op;
    for (int k = 1; k <= 4; ++k)
      op.puts.emplace_back(
          jkey::numbered(jkey::kRequests, live, static_cast<std::uint64_t>(i * 4 + k)),
          Blob(1 << 20, 'L'));
    ASSERT_TRUE(oj.write(std::move(op)));
  }
  oj.reopen();
  ASSERT_TRUE(oj.write(Session(gone, 8, 4 << 10)));
  std::uint64_t before = BytesWritten();
  ASSERT_TRUE(oj.write(Purge(gone)));
  ASSERT_TRUE(wait_until([&] { return oj.j().stats().compactions >= 1; }, 20'000, 10))
      << "no compaction after the purge";
  EXPECT_GE(oj.j().stats().compacted_ranges, 5u);  // the session's five kinds
  std::uint64_t written = BytesWritten() - before;
  EXPECT_LT(written, 3u << 20) << "the compaction rewrote live data";
  // The live session is all there, the purged one gone.
  std::string v;
  EXPECT_TRUE(oj.j().get(jkey::numbered(jkey::kRequests, live, 12), &v).ok());
  EXPECT_EQ(v.size(), std::size_t{1} << 20);
  EXPECT_EQ(oj.j().get(jkey::numbered(jkey::kRequests, gone, 1), &v).code(), Code::kNotFound);
}

// A close (head shutdown) while the compactor has many ranges to go waits
// for the one under way, not for the pass.
TEST(JournalLevelDb, ClosingDuringACompactionPassWaitsForOneRangeAtMost) {
  TempDir dir;
  JournalOptions o = Options();
  o.compact_after_purges = 120;  // one pass over every purge below (each session's ranges)
  OpenJournal oj(dir.file("data"), o);
  std::vector<std::string> sids;
  for (int i = 0; i < 120; ++i) {
    char name[kSessionIdLength + 1];
    std::snprintf(name, sizeof name, "%032x", i * 2654435761u);
    sids.emplace_back(name);
  }
  {
    JournalOp op;
    for (const auto& sid : sids) {
      JournalOp s = Session(sid, 2, 256);
      for (auto& kv : s.puts) op.puts.push_back(std::move(kv));
    }
    ASSERT_TRUE(oj.write(std::move(op)));
  }
  std::uint64_t last = 0;
  for (const auto& sid : sids) last = oj.j().submit(Purge(sid));
  ASSERT_TRUE(oj.await(last));
  const std::uint64_t total = 5 * sids.size();
  ASSERT_TRUE(wait_until([&] { return oj.j().stats().compacted_ranges >= 1; }, 20'000, 1))
      << "no compaction after the purges";
  std::uint64_t at_close = oj.j().stats().compacted_ranges;
  auto t0 = std::chrono::steady_clock::now();
  oj.close();
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(took, 1.0) << "the close waited for the compaction pass";
  // It was a pass with most of its ranges to go (else this proves nothing).
  EXPECT_LT(at_close, total / 2);
}

// ---- purges apart from ordinary writes -------------------------------------------

// The disk fills between two space checks: an ordinary write fails for lack
// of space, and the purge submitted right behind it must still succeed and
// give the space back (it shared the write's group, and failed with it).
TEST(JournalLevelDb, APurgeQueuedBehindAWriteThatFillsTheDiskStillSucceeds) {
  TempDir dir;
  testing::SmallDisk disk(dir.file("small"), "24m");
  if (!disk.mounted()) {
    if (std::getenv("CI") && std::string(std::getenv("CI")) == "true")
      FAIL() << "cannot mount a tmpfs (needs root): " << disk.error();
    GTEST_SKIP() << "needs root to mount a small tmpfs";
  }
  JournalOptions o = Options();
  o.min_free_bytes = 2 << 20;
  o.reserve_bytes = 1 << 20;
  o.inline_max = 0;  // bulk values in segment files
  std::string data = dir.file("small") + "/data";
  OpenJournal oj(data, o);
  const std::string old_sid = Sid('a'), big_sid = Sid('b');
  ASSERT_TRUE(oj.write(Session(old_sid, 8, 1 << 20)));  // 8 MiB to give back
  std::uint64_t free_before = FreeBytes(data);
  ASSERT_GT(free_before, 14u << 20);  // room for `first` and still above the watermark
  ASSERT_TRUE(oj.j().healthy());
  // A write of a whole group (8 MiB) that the journal thread takes first,
  // so that the next two wait together in its queue: a write of less than a
  // group (7.5 MiB) but more than the disk then has left, and the purge.
  JournalOp first = Session(Sid('c'), 8, 1 << 20);
  JournalOp fill = Session(big_sid, 15, 512 << 10);
  JournalOp purge = Purge(old_sid);
  oj.j().submit(std::move(first));
  std::uint64_t fill_seq = oj.j().submit(std::move(fill));
  std::uint64_t purge_seq = oj.j().submit(std::move(purge));
  EXPECT_FALSE(oj.await(fill_seq)) << "the disk did not fill";
  EXPECT_TRUE(oj.await(purge_seq)) << "the purge failed with the write that filled the disk";
  EXPECT_FALSE(std::filesystem::exists(data + "/segments/" + old_sid + ".seg"));
  // `first` took 8 MiB, the purge gave 8 MiB back.
  EXPECT_GT(FreeBytes(data), free_before - (4u << 20)) << "the purge gave no space back";
  std::string v;
  EXPECT_EQ(oj.j().get(jkey::session(jkey::kSession, old_sid), &v).code(), Code::kNotFound);
  oj.close();
}

// ---- LevelDB's info log ----------------------------------------------------------

// As LevelDB logs a line (leveldb::Log, which the test does not link).
__attribute__((format(printf, 2, 3))) void Say(leveldb::Logger* l, const char* format, ...) {
  std::va_list ap;
  va_start(ap, format);
  l->Logv(format, ap);
  va_end(ap);
}

// Lines that tell of an error or corruption are warnings, never left out by
// the rate limit that keeps LevelDB's chatter (debug) down.
TEST(JournalLevelDb, LevelDbErrorLinesAreNeverLeftOutByTheRateLimit) {
  TempDir dir;
  std::string path = dir.file("log");
  log::Level was = log::level();
  ASSERT_TRUE(log::set_file(path));
  log::set_level(log::Level::kInfo);
  {
    auto info_log = make_leveldb_info_log();
    for (int i = 0; i < 100; ++i) {
      Say(info_log.get(), "Compacting %d@%d files", i, 0);
      Say(info_log.get(), "Compaction error: IO error: line %d", i);
      Say(info_log.get(), "Corruption: bad block %d", i);
    }
  }
  log::set_file("");
  log::set_level(was);
  std::ifstream f(path);
  std::string line;
  int errors = 0, corruptions = 0, debug = 0;
  while (std::getline(f, line)) {
    if (line.find("Compaction error") != std::string::npos) {
      ++errors;
      EXPECT_NE(line.find("WARN"), std::string::npos) << line;
    }
    if (line.find("Corruption: bad block") != std::string::npos) ++corruptions;
    if (line.find("Compacting") != std::string::npos) ++debug;
  }
  EXPECT_EQ(errors, 100);
  EXPECT_EQ(corruptions, 100);
  EXPECT_EQ(debug, 0);  // debug lines at info level: none
}

// ---- one synced write per group (format v4: redo records) ------------------------

// A group whose bulk values go to one segment file costs one sync: that
// file's fdatasync, which also makes its redo record durable; LevelDB's
// write is not synced. Groups with no segment data, with two files or more,
// and maintenance groups sync LevelDB (one sync, or one per file plus one).
TEST(JournalLevelDb, AGroupWithOneSegmentFileIsOneSync) {
  TempDir dir;
  JournalOptions o = Options();
  o.inline_max = 0;
  OpenJournal oj(dir.file("data"), o);
  auto syncs = [&] {
    JournalStats st = oj.j().stats();
    return std::make_pair(st.file_syncs, st.db_syncs);
  };
  using P = std::pair<std::uint64_t, std::uint64_t>;
  P s0 = syncs();
  ASSERT_TRUE(oj.write(Session(Sid('a'), 3, 4 << 10)));  // one file
  P s1 = syncs();
  EXPECT_EQ(s1.first - s0.first, 1u);
  EXPECT_EQ(s1.second - s0.second, 0u) << "LevelDB synced too: two synced writes in series";
  EXPECT_EQ(oj.j().stats().redo_groups, 1u);
  JournalOp small;  // no segment data
  small.puts.emplace_back(jkey::client(Sid('a'), "c"), "client");
  ASSERT_TRUE(oj.write(std::move(small)));
  P s2 = syncs();
  EXPECT_EQ(s2, P(s1.first, s1.second + 1));
  JournalOp two = Session(Sid('b'), 1, 4 << 10);  // two files
  for (auto& kv : Session(Sid('c'), 1, 4 << 10).puts) two.puts.push_back(kv);
  ASSERT_TRUE(oj.write(std::move(two)));
  P s3 = syncs();
  EXPECT_EQ(s3, P(s2.first + 2, s2.second + 1));
  ASSERT_TRUE(oj.write(Purge(Sid('b'))));  // maintenance
  P s4 = syncs();
  EXPECT_EQ(s4, P(s3.first, s3.second + 1));
  // Everything reads back.
  std::string v;
  ASSERT_TRUE(oj.j().get(jkey::numbered(jkey::kRequests, Sid('a'), 3), &v).ok());
  EXPECT_EQ(v, Blob(4 << 10, 'a'));
  ASSERT_TRUE(oj.j().get(jkey::numbered(jkey::kRequests, Sid('c'), 1), &v).ok());
  EXPECT_EQ(v, Blob(4 << 10, 'c'));
}

// Runs `body` in a child process that opens a journal on `dir` whose
// LevelDB log keeps unsynced writes in memory (volatile_log) and SIGKILLs
// itself once `body` returns: the machine crash that loses what LevelDB
// did not sync. False if the child failed before that.
bool RunAndLoseUnsynced(const std::string& dir, JournalOptions o,
                        const std::function<bool(OpenJournal&)>& body) {
  o.volatile_log = true;
  pid_t pid = ::fork();
  if (pid == 0) {
    try {
      OpenJournal oj(dir, o);
      // Killed with the journal open: closing it would write what it holds.
      if (body(oj)) ::kill(::getpid(), SIGKILL);
    } catch (...) {
    }
    _exit(3);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

// Group i (1..n) of session `sid`: request batch i in the segment file, and
// the client record (small, in LevelDB) saying i. A later group overwrites
// the client record an earlier one wrote, so order matters.
JournalOp Numbered(const std::string& sid, int i) {
  JournalOp op;
  op.puts.emplace_back(jkey::numbered(jkey::kRequests, sid, static_cast<std::uint64_t>(i)),
                       Blob(2 << 10, static_cast<char>('a' + i % 26)));
  op.puts.emplace_back(jkey::client(sid, "c"), "acked " + std::to_string(i));
  if (i > 1)
    op.deletes.push_back(jkey::numbered(jkey::kIndex, sid, static_cast<std::uint64_t>(i - 1)));
  op.puts.emplace_back(jkey::numbered(jkey::kIndex, sid, static_cast<std::uint64_t>(i)), "index");
  return op;
}

// Checks what groups 1..n of Numbered(sid, ...) left.
void ExpectNumbered(Journal& j, const std::string& sid, int n) {
  std::string v;
  for (int i = 1; i <= n; ++i) {
    ASSERT_TRUE(j.get(jkey::numbered(jkey::kRequests, sid, static_cast<std::uint64_t>(i)), &v).ok())
        << "group " << i << " of " << n << " lost";
    EXPECT_EQ(v, Blob(2 << 10, static_cast<char>('a' + i % 26)));
    EXPECT_EQ(j.get(jkey::numbered(jkey::kIndex, sid, static_cast<std::uint64_t>(i)), &v).code(),
              i == n ? Code::kOk : Code::kNotFound)
        << i;
  }
  EXPECT_EQ(
      j.get(jkey::numbered(jkey::kRequests, sid, static_cast<std::uint64_t>(n + 1)), &v).code(),
      Code::kNotFound);
  ASSERT_TRUE(j.get(jkey::client(sid, "c"), &v).ok());
  EXPECT_EQ(v, "acked " + std::to_string(n));
}

// Whether LevelDB itself (no replay) holds key `k`.
bool InLevelDb(const std::string& data_dir, const std::string& k) {
  leveldb::DB* raw = nullptr;
  if (!leveldb::DB::Open(leveldb::Options(), data_dir + "/journal", &raw).ok()) return false;
  std::unique_ptr<leveldb::DB> db(raw);
  std::string v;
  return db->Get(leveldb::ReadOptions(), k, &v).ok();
}

// The machine crash: every group was acknowledged, LevelDB lost the unsynced
// writes of the last ones (its log held them in memory only). At open the
// redo records in the segment files bring every acknowledged group back, in
// order (a later group's client record wins; a later group's delete stays),
// exactly once. Groups of two files in between (synced) are kept as they are.
TEST(JournalLevelDb, GroupsLevelDbLostAreAppliedAgainFromTheirRedoRecords) {
  TempDir dir;
  JournalOptions o = Options();
  o.inline_max = 0;
  const std::string a = Sid('a'), b = Sid('b'), c = Sid('c');
  ASSERT_TRUE(RunAndLoseUnsynced(dir.file("data"), o, [&](OpenJournal& oj) {
    for (int i = 1; i <= 10; ++i) {
      if (!oj.write(Numbered(a, i))) return false;
      if (i == 4) {  // two files: a synced LevelDB write
        JournalOp two = Numbered(b, 1);
        for (auto& kv : Numbered(c, 1).puts) two.puts.push_back(kv);
        if (!oj.write(std::move(two))) return false;
      }
    }
    return oj.j().stats().redo_groups >= 9 && oj.j().stats().db_syncs == 1;
  }));
  // LevelDB alone lost the last groups (the test's crash is real) ...
  EXPECT_TRUE(InLevelDb(dir.file("data"), jkey::numbered(jkey::kRequests, a, 4)));
  EXPECT_FALSE(InLevelDb(dir.file("data"), jkey::numbered(jkey::kRequests, a, 10)));
  // ... and the journal has them all.
  OpenJournal oj(dir.file("data"), o);
  ExpectNumbered(oj.j(), a, 10);
  ExpectNumbered(oj.j(), b, 1);
  ExpectNumbered(oj.j(), c, 1);
  // Writes go on after the replay, and a second crash loses nothing either.
  for (int i = 11; i <= 12; ++i) ASSERT_TRUE(oj.write(Numbered(a, i)));
  oj.close();
  ASSERT_TRUE(RunAndLoseUnsynced(dir.file("data"), o, [&](OpenJournal& again) {
    return again.write(Numbered(a, 13)) && again.write(Numbered(a, 14));
  }));
  oj.reopen();
  ExpectNumbered(oj.j(), a, 14);
}

// A redo record cut short (the crash came during the group's write: it was
// never acknowledged) or garbled is ignored: its group is not visible; the
// groups before it are.
TEST(JournalLevelDb, ATornRedoRecordIsIgnored) {
  for (bool truncate : {true, false}) {
    SCOPED_TRACE(truncate ? "truncated" : "garbled");
    TempDir dir;
    JournalOptions o = Options();
    o.inline_max = 0;
    const std::string a = Sid('a');
    ASSERT_TRUE(RunAndLoseUnsynced(dir.file("data"), o, [&](OpenJournal& oj) {
      for (int i = 1; i <= 3; ++i)
        if (!oj.write(Numbered(a, i))) return false;
      return oj.j().stats().redo_groups == 3;
    }));
    std::string seg = dir.file("data/segments/" + a + ".seg");
    auto size = std::filesystem::file_size(seg);
    if (truncate) {
      std::filesystem::resize_file(seg, size - 10);
    } else {
      std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(size - Redo::kTrailerSize - 5));
      f.put('\x5a');
    }
    OpenJournal oj(dir.file("data"), o);
    ExpectNumbered(oj.j(), a, 2);
    // The next group follows it and survives the next crash.
    ASSERT_TRUE(oj.write(Numbered(a, 3)));
    oj.close();
    ASSERT_TRUE(RunAndLoseUnsynced(
        dir.file("data"), o, [&](OpenJournal& again) { return again.write(Numbered(a, 4)); }));
    oj.reopen();
    ExpectNumbered(oj.j(), a, 4);
  }
}

// Bulk values are client and node bytes: one that ends with what looks like
// a redo record (the right magic, a checksum without the journal's salt)
// at the end of a file is never applied.
TEST(JournalLevelDb, ABulkValueThatLooksLikeARedoRecordIsNeverApplied) {
  TempDir dir;
  JournalOptions o = Options();
  o.inline_max = 0;
  const std::string a = Sid('a'), b = Sid('b');
  std::string forged = Blob(100, 'f');
  std::size_t body_at = forged.size();
  Redo::add_put(&forged, jkey::session(jkey::kSession, Sid('x')), "forged");
  Redo::seal(&forged, body_at, 1'000'000, 0, std::string(16, '\0'));
  {
    OpenJournal oj(dir.file("data"), o);
    JournalOp two = Session(a, 1, 1 << 10);  // two files, synced
    two.puts.emplace_back(jkey::numbered(jkey::kRequests, b, 1), forged);
    ASSERT_TRUE(oj.write(std::move(two)));
  }
  // The value then ends file b (its marker cut off, as by a torn write):
  // open looks at it, and further back.
  std::string seg = dir.file("data/segments/" + b + ".seg");
  std::filesystem::resize_file(seg, std::filesystem::file_size(seg) - Redo::kTrailerSize);
  OpenJournal oj(dir.file("data"), o);
  std::string v;
  EXPECT_EQ(oj.j().get(jkey::session(jkey::kSession, Sid('x')), &v).code(), Code::kNotFound);
  ASSERT_TRUE(oj.j().get(jkey::numbered(jkey::kRequests, b, 1), &v).ok());
  EXPECT_EQ(v, forged);
}

// A purge writes LevelDB synced before it deletes the session's file, so
// the redo records in it (of groups LevelDB held unsynced) are not needed
// after: a crash right after the purge loses none of those groups' other
// sessions' writes, and the purged session stays purged.
TEST(JournalLevelDb, APurgeSyncsLevelDbBeforeItDeletesASegmentFile) {
  TempDir dir;
  JournalOptions o = Options();
  o.inline_max = 0;
  const std::string a = Sid('a'), b = Sid('b');
  ASSERT_TRUE(RunAndLoseUnsynced(dir.file("data"), o, [&](OpenJournal& oj) {
    for (int i = 1; i <= 3; ++i) {
      // b's small client record rides in a's group (its redo record is in a's file).
      JournalOp op = Numbered(a, i);
      op.puts.emplace_back(jkey::client(b, "c"), "b " + std::to_string(i));
      if (!oj.write(std::move(op))) return false;
    }
    return oj.write(Purge(a)) && oj.j().stats().redo_groups == 3 &&
           !std::filesystem::exists(dir.file("data/segments/" + a + ".seg"));
  }));
  OpenJournal oj(dir.file("data"), o);
  std::string v;
  ASSERT_TRUE(oj.j().get(jkey::client(b, "c"), &v).ok());
  EXPECT_EQ(v, "b 3");
  EXPECT_EQ(oj.j().get(jkey::client(a, "c"), &v).code(), Code::kNotFound);
  EXPECT_EQ(oj.j().get(jkey::numbered(jkey::kRequests, a, 1), &v).code(), Code::kNotFound);
}

// Open walks the tail of every segment file: its cost with many files.
TEST(JournalLevelDb, OpenWithManySegmentFilesIsQuick) {
  TempDir dir;
  JournalOptions o = Options();
  o.inline_max = 0;
  constexpr int kSessions = 2000;
  {
    OpenJournal oj(dir.file("data"), o);
    for (int i = 0; i < kSessions; ++i) {
      char name[33];
      std::snprintf(name, sizeof name, "%032x", i * 2654435761u);
      ASSERT_TRUE(oj.write(Session(name, 1, 1 << 10)));
    }
  }
  auto t0 = std::chrono::steady_clock::now();
  OpenJournal oj(dir.file("data"), o);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("open with %d segment files: %.3f s\n", kSessions, s);
  EXPECT_LT(s, 5.0);
}

// A v3 journal (segment files without trailers) opened by this head: marked
// v4, each segment file ended with a marker (so that open tells a torn last
// append from a whole one), everything read back; writes after it survive
// a crash that loses LevelDB's unsynced tail.
TEST(JournalLevelDb, AV3JournalIsMarkedV4AndItsSegmentFilesGetATrailer) {
  TempDir dir;
  JournalOptions o = Options();
  o.inline_max = 0;
  const std::string a = Sid('a'), b = Sid('b');
  {
    OpenJournal oj(dir.file("data"), o);
    JournalOp two = Session(a, 2, 4 << 10);  // two files
    for (auto& kv : Session(b, 1, 4 << 10).puts) two.puts.push_back(kv);
    ASSERT_TRUE(oj.write(std::move(two)));
  }
  // What a v3 head leaves: no trailers, version "3", no salt.
  for (const std::string& sid : {a, b}) {
    std::string seg = dir.file("data/segments/" + sid + ".seg");
    std::filesystem::resize_file(seg, std::filesystem::file_size(seg) - Redo::kTrailerSize);
  }
  {
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), dir.file("data/journal"), &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), jkey::meta("version"), "3").ok());
    ASSERT_TRUE(db->Delete(leveldb::WriteOptions(), jkey::meta("salt")).ok());
  }
  auto size_a = std::filesystem::file_size(dir.file("data/segments/" + a + ".seg"));
  {
    OpenJournal oj(dir.file("data"), o);
    EXPECT_EQ(std::filesystem::file_size(dir.file("data/segments/" + a + ".seg")),
              size_a + Redo::kTrailerSize);
    std::string v;
    ASSERT_TRUE(oj.j().get(jkey::meta("version"), &v).ok());
    EXPECT_EQ(v, "4");
    ASSERT_TRUE(oj.j().get(jkey::numbered(jkey::kRequests, a, 2), &v).ok());
    EXPECT_EQ(v, Blob(4 << 10, 'a'));
    ASSERT_TRUE(oj.j().get(jkey::numbered(jkey::kRequests, b, 1), &v).ok());
  }
  ASSERT_TRUE(RunAndLoseUnsynced(dir.file("data"), o, [&](OpenJournal& oj) {
    return oj.write(Numbered(a, 3)) && oj.write(Numbered(a, 4)) && oj.j().stats().redo_groups == 2;
  }));
  OpenJournal oj(dir.file("data"), o);
  std::string v;
  ASSERT_TRUE(oj.j().get(jkey::numbered(jkey::kRequests, a, 4), &v).ok());
  ASSERT_TRUE(oj.j().get(jkey::client(a, "c"), &v).ok());
  EXPECT_EQ(v, "acked 4");
}

}  // namespace
}  // namespace zgrid::head
