// The durable journal: one LevelDB per data directory for keys and small
// records, one append-only segment file per durable session for its bulk
// records (request batches, responses), written by one group-commit thread.
//
// The reactor builds each change as an Op (puts and deletes, already
// encoded) and submits it; the journal thread takes every op waiting (up to
// a size limit), appends the ops' bulk values to their sessions' segment
// files (synced), then writes everything else, with a pointer (offset,
// length, CRC-32C) in place of each bulk value, as ONE LevelDB WriteBatch,
// and tells the reactor "ops up to seq N are durable" (or failed) through an
// inproc PAIR socket, which wakes the reactor's poll. One synced write per
// group (format v4): when the group's bulk values went to one segment file,
// that file's append also carries the batch as a redo record and its sync
// makes the group durable, so the batch is written with sync=false (open
// applies redo records LevelDB lost: replay_redo); otherwise the batch is
// written with sync=true. It
// never waits for a batch to fill: when the queue is empty it writes what it
// has. Consecutive purges share a group (each deletes its session's ranges
// in the group's batch, with its tombstone), but maintenance ops (purges,
// client removals, changes of state) never share one with ordinary writes:
// an ordinary write that fails for lack of space then never takes a purge
// down with it. The deleted keys are compacted away by LevelDB's own
// compactions and by a compactor thread (compact_loop), which compacts the
// purged sessions' ranges one at a time, never on the write path. Syncs and
// compactions stay off the reactor thread. LevelDB's info log goes to
// zgrid's log (debug level, rate-limited), not to a file of its own. (Overlapping the
// segment sync of one group with the LevelDB sync of the one before was
// tried: no measurable gain, docs/benchmarks.md.)
//
// Why segment files: purging a session deletes its file, so the disk space
// comes back at once, even on a full disk — LevelDB would need free space to
// write deletions and then compact. A small disk reserve (a preallocated
// file) is released for such maintenance writes when the disk is full, and
// at start when LevelDB cannot open for lack of space (docs/operations.md,
// "Full disk"). A descriptor reserve keeps the journal writing when another
// part of the process has used up the file descriptors.
//
// Key layout (docs/architecture.md): one byte of kind, the 32-character
// session id, then a big-endian number or a client id, so that each
// session's requests, responses and clients are contiguous ranges. Values of
// 'R' and 'A' keys are bulk: in LevelDB they are pointers (first byte 0xc1,
// which never starts msgpack); a journal of format v1 holds them inline, and
// reads accept both.
//
// Thread safety: submit(), healthy(), space_short(), stats(), get() and
// cursor() may be called from the reactor while the journal thread runs;
// everything else is internal. Reads hold a shared lock that a reopen takes
// exclusively.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.hpp"
#include "common/thread_annotations.hpp"
#include "head/journal_files.hpp"
#include "head/journal_records.hpp"
#include "head/journal_store.hpp"

namespace leveldb {
class DB;
class Env;
class Iterator;
class Logger;
class WriteBatch;
}  // namespace leveldb

namespace zgrid::head {

// v2: bulk values in segment files. v3: a small one-message session is one
// 'M' record (journal_records.hpp). v4: a group whose bulk values go to one
// segment file is made durable by that file's sync alone, with a redo
// record of its LevelDB ops in the file (journal_files.hpp, Redo); LevelDB
// may lose such a write in a crash until open applies the record again.
// Older journals are read as they are (they hold none of these) and marked
// v4 at open, so that an older head, which would neither see 'M' records
// nor apply redo records, refuses the directory.
inline constexpr std::uint32_t kJournalVersion = 4;

// At most this many groups in a row are made durable by a segment file's
// sync alone; the next one syncs LevelDB too (which makes every earlier
// unsynced LevelDB write durable), so that open walks at most this many
// redo records.
inline constexpr std::uint64_t kMaxRedoGroups = 256;

struct JournalOptions {
  std::size_t max_group_bytes = 8 << 20;       // one WriteBatch holds at most this much
  std::uint64_t min_free_bytes = 64ull << 20;  // below this free space, refuse new requests
  // Kept preallocated in the data directory, released for maintenance writes
  // and for opening on a full disk (0: none).
  std::uint64_t reserve_bytes = 32ull << 20;
  std::string fault_file;  // tests: while this file exists, writes fail (ZGRID_JOURNAL_FAULT_FILE)
  bool fault_after_write = false;  // tests: ... after reaching the log, like a failed sync
  int crash_after_syncs = -1;  // tests: SIGKILL ourselves right after this many syncs (-1: never)
  // tests: SIGKILL ourselves after the segment sync of this many groups made
  // durable by it alone (with a redo record), before their LevelDB write.
  int crash_after_segment_syncs = -1;
  // tests: LevelDB's log keeps what it is given in memory until it is synced,
  // as the page cache would lose it in a machine crash: a SIGKILL then loses
  // every unsynced LevelDB write (ZGRID_JOURNAL_VOLATILE_LOG=1).
  bool volatile_log = false;
  std::string read_fault_file;  // tests: while this file exists, segment reads fail (EIO)
  // A session whose bulk values in a group come to at most this many bytes
  // keeps them in LevelDB itself, synced with the group: a small session
  // then costs no segment file to create and no fdatasync of its own (both
  // were 40% of the head's CPU, and a sync each in series, at 400 one-request
  // durable sessions a second). Bigger writes go to segment files, so LevelDB
  // compacts pointers, not payloads. Tests set 0 (ZGRID_JOURNAL_INLINE_MAX)
  // to corrupt and fault segment files.
  std::size_t inline_max = 512;
  // The compactor's pace (compact_loop): a pass once this many sessions
  // were purged since the last one, or fewer once no purge came for
  // compact_quiet; at most one pass every compact_min_interval. Tests
  // shorten them.
  std::uint64_t compact_after_purges = 2'000;
  std::chrono::milliseconds compact_quiet{30'000};
  std::chrono::milliseconds compact_min_interval{10'000};
  // Failover fencing (head/lease.hpp): when set, every write — the group
  // commit, segment files, the disk reserve, and LevelDB's own files (its
  // log, tables, manifest, compactions, through the journal's Env) — first
  // asks it, and a false writes nothing (the write fails). Called from the
  // journal's threads and LevelDB's: must be thread-safe and cheap.
  std::function<bool()> may_write;
  // The same, stronger, asked once before each group is written: also that
  // no newer epoch exists (a head whose clock stood still while it was
  // paused — a suspended VM — still has a valid-looking claim; one stat per
  // group finds the standby's claim).
  std::function<bool()> may_commit;
  // After a takeover from a head that may still have a write in flight (its
  // machine froze or lost the network mid-write: on NFS such a write can
  // reach the server later): the first append to each segment file written
  // before this journal opened starts this many bytes past its end, so a
  // late write lands in a hole no pointer refers to (sparse: no disk used).
  // One group's bulk per session is below 2 x 8 MiB (frame and group limits).
  std::uint64_t takeover_gap_bytes = 0;
};

// LevelDB's info log into zgrid's log (component "leveldb"): debug lines,
// rate-limited; lines that tell of an error or corruption are warnings,
// never left out. Thread-safe.
std::unique_ptr<leveldb::Logger> make_leveldb_info_log();

class Journal : public JournalStore {
 public:
  // Locks `data_dir` (a second head gets "in use by PID …"), opens or creates
  // the LevelDB, checks the format version, and starts the journal thread,
  // which tells of completions through an inproc PAIR in `ctx` (the
  // completion socket, owned by the caller's thread).
  static Result<std::unique_ptr<Journal>> open(const std::string& data_dir, zmq::context_t& ctx,
                                               const JournalOptions& options);
  ~Journal() override;

  std::uint64_t submit(JournalOp op) override;
  bool amend(std::uint64_t seq, std::vector<std::pair<std::string, std::string>>& puts) override;
  std::vector<JournalCompletion> take_completions() override;
  zmq::socket_t* completion_socket() override { return &notify_; }
  // False after a failed write (until reopened) or below the free-space watermark.
  bool healthy() const override { return healthy_.load() && space_ok_.load(); }
  // Free space below the watermark, or a write failed for lack of space.
  bool space_short() const override { return !space_ok_.load() || no_space_.load(); }
  std::uint64_t reopens() const override { return reopens_.load(); }
  void reconciled(std::uint64_t reopens) override;
  std::string health_reason() const override;
  JournalStats stats() const override;
  std::size_t backlog_bytes() const override { return backlog_.load(std::memory_order_relaxed); }
  const std::string& data_dir() const { return dir_; }

  // Reads the value of `key` (a bulk value is read from its segment file and
  // checked). NotFound when absent; Unavailable while the journal is being
  // reopened or the file cannot be read; DataLoss-like Internal errors for a
  // checksum mismatch (see is_corruption()).
  Status get(std::string_view key, std::string* value) const override;

  // Iterates the keys that start with `prefix`, in order. Holds the read
  // lock while it lives: keep it short.
  class Cursor : public JournalCursor {
   public:
    ~Cursor() override;
    bool valid() const override;
    void seek(std::string_view key) override;
    void seek_to_last() override;
    void next() override;
    void prev() override;
    std::string_view key() const override;
    // A bulk value is read from its segment file. Errors as for get().
    Status value(std::string_view* out) override;
    bool raw_valid() const override;

   private:
    friend class Journal;
    Cursor(const Journal& j, std::string prefix);
    const Journal& j_;
    std::shared_lock<std::shared_mutex> lock_;
    std::unique_ptr<leveldb::Iterator> it_;
    std::string prefix_;
    std::string buf_;
  };
  // A cursor over `prefix`, or nullptr while the journal is being reopened.
  std::unique_ptr<JournalCursor> cursor(std::string prefix) const override;

  // Deletes segment files of sessions that `live` says are gone (a purge whose
  // unlink a crash interrupted). Called once after recovery.
  void remove_orphan_segments(const std::function<bool(std::string_view sid)>& live) override;

  // zgrid-head --purge-session: the same purge as a running head's, with no
  // head running (the caller holds the data directory's lease; `may_write`
  // is its fence).
  static Status purge_offline(const std::string& data_dir, const std::string& sid,
                              const std::function<bool()>& may_write);

 private:
  // A group of ops written together.
  // One segment file's part of a group's write.
  struct Append {
    std::shared_ptr<Segments::File> file;
    std::uint64_t start = 0;
    std::string bytes;
  };
  struct Group {
    std::vector<JournalOp> ops;
    std::unique_ptr<leveldb::WriteBatch> batch;          // the puts, bulk values as pointers
    std::map<std::string, Append, std::less<>> appends;  // by session id
    bool redo = false;  // durable by its one segment file's sync (a redo record)
    bool failed = false;
    std::string error;
    bool no_space = false;
    bool maintenance() const;
  };

  Journal();
  void run(zmq::context_t* ctx, std::string endpoint);
  void mark_healthy();
  // Completion messages on the notify socket: 8-byte seq (host order), 1
  // byte ok, then the error text if not ok. decode_completion parses one.
  static bool decode_completion(const zmq::message_t& m, JournalCompletion* c);
  void prepare_bulk(Group& g);
  void write_bulk(Group& g);
  bool commit(Group& g);
  // Applies the redo records LevelDB may lack (those above its last synced
  // group), in order, with one synced write; *last gets the last group
  // number LevelDB now holds. At open, at every reopen and before an
  // offline purge.
  static Status replay_redo(leveldb::DB* db, const std::string& data_dir, std::string_view salt,
                            std::uint64_t* last);
  void compact_loop();
  // One CompactRange over [begin, end] under the read lock; false (nothing
  // done) while the journal is being reopened.
  bool compact_range(const std::string& begin, const std::string& end);
  // Whether the compactor should stop between two ranges: the journal is
  // closing, a reopen waits for the lock, or space is short.
  bool compaction_interrupted();
  // Measures free space (statvfs), takes the reserve back when there is room
  // and sets space_ok_. At open (`at_start`) a short disk is said once, at
  // WARN, with the figures and the flags that lower them.
  void check_space(bool at_start = false);
  bool try_reopen(bool for_maintenance);
  void release_reserve(const char* why);
  void restore_reserve(std::uint64_t avail);
  Status resolve(std::string_view key, std::string_view stored, std::string* out) const;

  std::string dir_;
  JournalOptions o_;
  std::unique_ptr<FdReserve> fds_;             // before env_ and the DB, which use it
  std::unique_ptr<leveldb::Env> env_;          // LevelDB's files, through the descriptor reserve
  std::unique_ptr<leveldb::Logger> info_log_;  // LevelDB's info log, into zgrid's log
  std::unique_ptr<Segments> segments_;         // the sessions' segment files
  mutable std::shared_mutex db_mu_;            // guards db_ against reopen (reads share it)
  std::unique_ptr<leveldb::DB> db_;            // replaced only by try_reopen(), holding db_mu_
  zmq::socket_t notify_;           // completions (bound here, read by the owner's thread)
  bool reserve_present_ = false;   // journal thread (and open)
  std::string salt_;               // of redo records' checksums ('\0' + "salt")
  std::uint64_t group_seq_ = 0;    // journal thread (and open): the last group's number
  std::uint64_t redo_in_row_ = 0;  // journal thread: groups since LevelDB's last sync

  mutable Mutex mu_;
  std::condition_variable_any cv_;          // ops queued, or stop
  std::condition_variable_any compact_cv_;  // many purges, or stop
  std::uint64_t purged_since_compaction_ ZG_GUARDED_BY(mu_) = 0;
  // The sessions purged since the last compaction pass, whose ranges it
  // compacts (at most kMaxCompactSessions; past that compact_all_: the
  // pass compacts the purged kinds whole, in steps).
  std::vector<std::string> compact_sids_ ZG_GUARDED_BY(mu_);
  bool compact_all_ ZG_GUARDED_BY(mu_) = false;
  std::deque<JournalOp> queue_ ZG_GUARDED_BY(mu_);  // submitted ops
  bool stop_ ZG_GUARDED_BY(mu_) = false;
  std::uint64_t next_seq_ ZG_GUARDED_BY(mu_) = 0;
  JournalStats stats_ ZG_GUARDED_BY(mu_);
  std::string error_ ZG_GUARDED_BY(mu_);  // why the last write failed

  std::atomic<std::size_t> backlog_{0};
  std::atomic<bool> healthy_{true};
  std::atomic<bool> no_space_{false};  // the last failed write lacked space
  std::atomic<std::uint64_t> reopens_{0};
  std::atomic<std::uint64_t> reopens_taken_{0};  // reopens the reactor has reconciled
  std::atomic<bool> space_ok_{true};
  std::atomic<bool> reopen_wanted_{false};  // try_reopen() waits for db_mu_: compactor, yield
  std::thread thread_;
  std::thread compactor_;

  // Past this many sessions purged since the last pass, the compactor
  // compacts the purged kinds whole (in kCompactSteps steps each) rather
  // than each session's ranges: a pass then costs what one over all the
  // data costs, not 5 CompactRange calls (each flushes the memtable) per
  // session.
  static constexpr std::size_t kMaxCompactSessions = 128;
  static constexpr int kCompactSteps = 16;
};

}  // namespace zgrid::head
