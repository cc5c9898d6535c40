// Issue 13.8: journal records that cannot be read back, each with its
// policy (docs/operations.md, "Journal read errors"), with real processes:
// injected read failures (a test hook) and real corruption (bytes flipped in
// a stopped head's segment file, garbage written into its LevelDB).
#include <gtest/gtest.h>
#include <leveldb/db.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "head/journal_files.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using testing::CliResult;
using testing::Grid;
using testing::run_cli;
using testing::wait_until;

CliResult Cli(Grid& g, std::vector<std::string> args, const std::string& in = "") {
  args.insert(args.begin(), {"--head", g.frontend()});
  return run_cli(args, in);
}

std::uint64_t StatusField(Grid& g, const std::string& field) {
  auto st = g.connect()->grid_status();
  return st.ok() ? st->u64(field) : 0;
}

std::string Numbers(int from, int to) {
  std::string s;
  for (int i = from; i < to; ++i) s += std::to_string(i) + "\n";
  return s;
}

// Every "n = n" line of an echo session's fetch, by input.
std::map<std::string, int> EchoLines(const std::string& out) {
  std::map<std::string, int> seen;
  std::size_t pos = 0;
  while (pos < out.size()) {
    std::size_t nl = out.find('\n', pos);
    std::string line = out.substr(pos, nl - pos);
    pos = nl == std::string::npos ? out.size() : nl + 1;
    auto eq = line.find(" = ");
    if (eq != std::string::npos && line.substr(0, eq) == line.substr(eq + 3))
      ++seen[line.substr(0, eq)];
  }
  return seen;
}

// These tests corrupt and fault segment files: every head here (inheriting
// this environment) puts every bulk value in one, however small.
const int kSegmentsAlways = setenv("ZGRID_JOURNAL_INLINE_MAX", "0", 1);

std::string SegmentOf(Grid& g, const std::string& sid) {
  return g.data_dir() + "/segments/" + sid + ".seg";
}

// Flips `n` bytes of a file at `offset` (negative: from the end).
void Corrupt(const std::string& path, long offset, int n = 4) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekg(0, std::ios::end);
  long size = static_cast<long>(f.tellg());
  long at = offset >= 0 ? offset : size + offset;
  ASSERT_GE(at, 0);
  for (int i = 0; i < n && at + i < size; ++i) {
    f.seekg(at + i);
    char c;
    f.read(&c, 1);
    c = static_cast<char>(~c);
    f.seekp(at + i);
    f.write(&c, 1);
  }
}

// Where the last value of a segment file ends: before the trailer (a redo
// record's or a marker's, journal format v4) that ends each append.
long LastValueEnd(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  f.seekg(0, std::ios::end);
  long size = static_cast<long>(f.tellg());
  std::string t(head::Redo::kTrailerSize, '\0');
  f.seekg(size - static_cast<long>(t.size()));
  f.read(t.data(), static_cast<std::streamsize>(t.size()));
  head::Redo::Trailer tr;
  if (!head::Redo::read_trailer(t, &tr)) {
    ADD_FAILURE() << path << " does not end with a trailer";
    return size;
  }
  return size - static_cast<long>(t.size()) - static_cast<long>(tr.body_len);
}

// A request batch that cannot be read for now: its requests wait (retried
// every second), nothing is faulted; once reads work again they run.
TEST(JournalFaults, UnreadableRequestBatchIsRetried) {
  Grid g;
  std::string fault = g.dir().file("read-fault");
  g.start_durable_head();
  auto sub = Cli(g, {"submit", "--durable", "--service", "echo", "--file", "-"}, Numbers(0, 300));
  ASSERT_EQ(sub.code, 0) << sub.err;
  std::string sid = sub.out.substr(0, 32);
  // No node yet: after a restart the batches must be read back from the journal.
  { std::ofstream(fault) << "x"; }
  g.restart_head({"ZGRID_JOURNAL_READ_FAULT_FILE=" + fault});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  EXPECT_TRUE(wait_until([&] { return StatusField(g, "journal_read_errors") >= 2; }, 5'000, 50));
  auto st = g.connect()->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("done") + st->u64("faulted"), 0u);
  std::string log = g.head_log();
  std::string line = "journal read error session=" + sid;
  EXPECT_NE(log.find(line), std::string::npos) << log;
  EXPECT_EQ(log.find(line, log.find(line) + 1), std::string::npos) << "logged once";
  std::filesystem::remove(fault);
  auto f = Cli(g, {"fetch", sid});
  EXPECT_EQ(f.code, 0) << f.err;
  auto seen = EchoLines(f.out);
  EXPECT_EQ(seen.size(), 300u);
  for (auto& [k, n] : seen) EXPECT_EQ(n, 1) << k;
}

// A request batch whose record is corrupt: its requests are answered
// data_loss (their payload is gone), the rest run, the session completes.
TEST(JournalFaults, CorruptRequestBatchFaultsItsRequestsDataLoss) {
  Grid g;
  g.start_durable_head();
  auto a = Cli(g, {"submit", "--durable", "--service", "echo", "--file", "-"}, Numbers(0, 100));
  ASSERT_EQ(a.code, 0) << a.err;
  std::string sid = a.out.substr(0, 32);
  g.kill_head();
  // The segment holds the request batch (no answers: no node ran it).
  Corrupt(SegmentOf(g, sid), 40);
  g.restart_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto f = Cli(g, {"fetch", sid});
  EXPECT_EQ(f.code, 1) << f.err;
  std::size_t lost = 0, p = 0;
  while ((p = f.out.find(": error: data_loss: request ", p)) != std::string::npos) ++lost, ++p;
  EXPECT_GE(lost, 1u) << f.out;
  EXPECT_EQ(lost + EchoLines(f.out).size(), 100u) << f.out;
  EXPECT_EQ(StatusField(g, "data_loss"), lost);
  EXPECT_GE(StatusField(g, "journal_corrupt_records"), 1u);
  EXPECT_NE(g.head_log().find("journal corruption session=" + sid), std::string::npos);
  // Another session is untouched.
  auto b = Cli(g, {"submit", "--durable", "--service", "echo", "--file", "-"}, Numbers(0, 10));
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(Cli(g, {"fetch", b.out.substr(0, 32)}).code, 0);
}

// A response record found corrupt — at start, or by a fetch while the head
// runs — loses its answers: their requests run again and every request ends
// with exactly one answer.
TEST(JournalFaults, CorruptResponsesAreRecomputed) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto a = Cli(g, {"submit", "--durable", "--service", "echo", "--file", "-"}, Numbers(0, 200));
  ASSERT_EQ(a.code, 0) << a.err;
  std::string sid = a.out.substr(0, 32);
  ASSERT_EQ(Cli(g, {"fetch", sid}).code, 0);
  // While it runs: the last value of the segment is its last response record.
  Corrupt(SegmentOf(g, sid), LastValueEnd(SegmentOf(g, sid)) - 3);
  auto f = Cli(g, {"fetch", sid});
  EXPECT_EQ(f.code, 0) << f.err;
  auto seen = EchoLines(f.out);
  EXPECT_EQ(seen.size(), 200u) << f.out;
  for (auto& [k, n] : seen) EXPECT_EQ(n, 1) << k;
  EXPECT_GE(StatusField(g, "journal_corrupt_records"), 1u);
  EXPECT_NE(g.head_log().find("answers lost to a corrupt response record run again"),
            std::string::npos);

  // At start: the same again, found by recovery.
  g.kill_head();
  Corrupt(SegmentOf(g, sid), LastValueEnd(SegmentOf(g, sid)) - 3);
  g.restart_head();
  f = Cli(g, {"fetch", sid});
  EXPECT_EQ(f.code, 0) << f.err;
  seen = EchoLines(f.out);
  EXPECT_EQ(seen.size(), 200u);
  for (auto& [k, n] : seen) EXPECT_EQ(n, 1) << k;
}

std::size_t Count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

// Issue 27.7: a damaged record is counted and logged once, however often it
// is read again. Both a request batch and a response record damaged while
// the head runs: the first fetch finds them (its lost answers recomputed,
// the batch's requests answered data_loss); four more fetches, with no new
// damage, change neither journal_corrupt_records nor the ERROR lines (each
// fetch added to both when every read counted and logged anew).
TEST(JournalFaults, DamageIsCountedAndLoggedOncePerRecord) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto a = Cli(g, {"submit", "--durable", "--service", "echo", "--file", "-"}, Numbers(0, 200));
  ASSERT_EQ(a.code, 0) << a.err;
  std::string sid = a.out.substr(0, 32);
  ASSERT_EQ(Cli(g, {"fetch", sid}).code, 0);
  ASSERT_EQ(StatusField(g, "journal_corrupt_records"), 0u);
  // The segment starts with the request batch and ends with the last
  // response record (and the trailer of its append).
  Corrupt(SegmentOf(g, sid), 40);
  Corrupt(SegmentOf(g, sid), LastValueEnd(SegmentOf(g, sid)) - 3);
  auto first = Cli(g, {"fetch", sid});
  EXPECT_EQ(first.code, 1) << first.err;  // the batch's unanswered requests: data_loss
  std::uint64_t counted = StatusField(g, "journal_corrupt_records");
  std::string log = g.head_log();
  std::size_t errors = Count(log, " ERROR ");
  EXPECT_EQ(counted, 2u) << log;
  EXPECT_EQ(Count(log, "journal corruption session=" + sid), 2u) << log;
  for (int i = 0; i < 4; ++i) {
    auto f = Cli(g, {"fetch", sid});
    EXPECT_EQ(f.code, 1) << f.err;
    EXPECT_EQ(f.out, first.out) << "fetch " << i + 2;
  }
  EXPECT_EQ(StatusField(g, "journal_corrupt_records"), counted);
  log = g.head_log();
  EXPECT_EQ(Count(log, " ERROR "), errors) << log;
  EXPECT_EQ(Count(log, "journal corruption session=" + sid), 2u) << log;
}

// Responses that cannot be read for now: fetch says so (try again); once
// reads work, the same fetch serves everything.
TEST(JournalFaults, UnreadableResponsesFailTheFetchUntilReadsWork) {
  Grid g;
  std::string fault = g.dir().file("read-fault");
  g.start_durable_head();
  g.restart_head({"ZGRID_JOURNAL_READ_FAULT_FILE=" + fault});
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto a = Cli(g, {"submit", "--durable", "--service", "echo", "--file", "-"}, Numbers(0, 50));
  ASSERT_EQ(a.code, 0) << a.err;
  std::string sid = a.out.substr(0, 32);
  ASSERT_EQ(Cli(g, {"fetch", sid}).code, 0);
  { std::ofstream(fault) << "x"; }
  auto f = Cli(g, {"fetch", sid});
  EXPECT_EQ(f.code, 2);
  EXPECT_NE(f.err.find("zgrid: error: cannot read the responses of session " + sid),
            std::string::npos)
      << f.err;
  std::filesystem::remove(fault);
  f = Cli(g, {"fetch", sid});
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(EchoLines(f.out).size(), 50u);
}

// A corrupt session, client or index record stops the start with one line
// naming the record; the session can be purged offline, and the head then
// starts with the other sessions intact.
TEST(JournalFaults, CorruptMetadataStopsTheStartUntilPurgedOffline) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto bad = Cli(g, {"submit", "--durable", "--service", "echo", "--file", "-"}, Numbers(0, 20));
  auto good = Cli(g, {"submit", "--durable", "--service", "echo", "--file", "-"}, Numbers(0, 20));
  ASSERT_EQ(bad.code, 0);
  ASSERT_EQ(good.code, 0);
  std::string bad_sid = bad.out.substr(0, 32), good_sid = good.out.substr(0, 32);
  ASSERT_EQ(Cli(g, {"fetch", good_sid}).code, 0);
  g.kill_head();
  // Once more, so that LevelDB holds every group synced: a start applies the
  // groups after its last synced write again from their redo records
  // (journal format v4), which would write the record below whole again.
  g.restart_head();
  g.kill_head();
  {
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), g.data_dir() + "/journal", &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    std::unique_ptr<leveldb::Iterator> it(db->NewIterator(leveldb::ReadOptions()));
    std::string prefix = "C" + bad_sid;
    it->Seek(prefix);
    ASSERT_TRUE(it->Valid() && it->key().starts_with(prefix));
    std::string key = it->key().ToString();
    it.reset();
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), key, "\xc1garbage").ok());
  }
  testing::Process head({ZGRID_HEAD_BIN, "--data-dir", g.data_dir(), "--frontend",
                         "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0"},
                        g.dir().file("stopped.log"));
  EXPECT_EQ(head.wait(10'000), 2);
  std::string log = testing::read_file(g.dir().file("stopped.log"));
  EXPECT_NE(log.find("zgrid-head: error: journal record C of session " + bad_sid +
                     " is corrupt: refusing to guess"),
            std::string::npos)
      << log;
  testing::Process purge({ZGRID_HEAD_BIN, "--data-dir", g.data_dir(), "--purge-session", bad_sid},
                         g.dir().file("purge.log"));
  EXPECT_EQ(purge.wait(10'000), 0) << testing::read_file(g.dir().file("purge.log"));
  EXPECT_FALSE(std::filesystem::exists(SegmentOf(g, bad_sid)));
  g.restart_head();
  auto gone = Cli(g, {"fetch", bad_sid});
  EXPECT_EQ(gone.code, 2);
  EXPECT_NE(gone.err.find("was purged"), std::string::npos) << gone.err;
  auto f = Cli(g, {"fetch", good_sid});
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(EchoLines(f.out).size(), 20u);
}

}  // namespace
}  // namespace zgrid
