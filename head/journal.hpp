// The durable journal: one LevelDB per data directory, written by one
// group-commit thread.
//
// The reactor builds each change as an Op (puts and deletes, already
// encoded) and submits it; the journal thread takes every op waiting (up to
// a size limit), writes them as ONE WriteBatch with sync=true, and then tells
// the reactor "ops up to seq N are durable" (or failed) through an inproc
// PAIR socket, which wakes the reactor's poll. It never waits for a batch to
// fill: when the queue is empty it writes what it has. Syncs and compactions
// stay off the reactor thread; the reactor only reads (LevelDB reads are
// thread-safe).
//
// Key layout (docs/architecture.md): one byte of kind, the 32-character
// session id, then a big-endian number or a client id, so that each
// session's requests, responses and clients are contiguous ranges.
//
// Thread safety: submit(), healthy(), stats() and db() may be called from the
// reactor while the journal thread runs; everything else is internal.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.hpp"

namespace leveldb {
class DB;
}

namespace zgrid::head {

inline constexpr std::uint32_t kJournalVersion = 1;

namespace jkey {
inline constexpr char kMeta = '\0', kSession = 'S', kClient = 'C', kIndex = 'I', kRequests = 'R',
                      kAnswers = 'A', kTombstone = 'T';
std::string meta(std::string_view name);
std::string session(char kind, std::string_view sid);  // prefix of a session's range of `kind`
std::string numbered(char kind, std::string_view sid, std::uint64_t n);  // kind + sid + be64
std::string client(std::string_view sid, std::string_view cid);
std::uint64_t number_of(std::string_view key);  // the trailing be64 of a numbered key
}  // namespace jkey

struct JournalOp {
  std::uint64_t seq = 0;  // set by submit()
  std::vector<std::pair<std::string, std::string>> puts;
  std::vector<std::string> deletes;
  std::vector<std::string> delete_prefixes;  // every key starting with these (purge)
  std::size_t bytes() const;
};

struct JournalStats {
  std::uint64_t syncs = 0;     // synced writes
  std::uint64_t ops = 0;       // ops written
  std::uint64_t bytes = 0;     // bytes written
  std::uint64_t failures = 0;  // failed writes
};

struct JournalOptions {
  std::size_t max_group_bytes = 8 << 20;       // one WriteBatch holds at most this much
  std::uint64_t min_free_bytes = 64ull << 20;  // below this free space, refuse new requests
  std::string fault_file;  // tests: while this file exists, writes fail (ZGRID_JOURNAL_FAULT_FILE)
  bool fault_after_write = false;  // tests: ... after reaching the log, like a failed sync
  int crash_after_syncs = -1;  // tests: SIGKILL ourselves right after this many syncs (-1: never)
};

class Journal {
 public:
  // Locks `data_dir` (a second head gets "in use by PID …"), opens or creates
  // the LevelDB, checks the format version, and starts the journal thread,
  // which connects a PAIR to `notify_endpoint` (bound by the reactor).
  static Result<std::unique_ptr<Journal>> open(const std::string& data_dir, zmq::context_t& ctx,
                                               const std::string& notify_endpoint,
                                               const JournalOptions& options);
  ~Journal();

  // Queues an op; returns its sequence number. Ops are written in order.
  std::uint64_t submit(JournalOp op);
  // False after a failed write (until reopened) or below the free-space watermark.
  bool healthy() const { return healthy_.load() && space_ok_.load(); }
  // Counts successful reopens. After each, the reactor reconciles its state
  // with the journal and then calls mark_healthy(reopens()).
  std::uint64_t reopens() const { return reopens_.load(); }
  void mark_healthy();
  void reopen_taken(std::uint64_t n) { reopens_taken_.store(n); }
  std::string health_reason() const;
  JournalStats stats() const;
  // Bytes submitted and not yet written: the reactor slows down above a bound.
  std::size_t backlog_bytes() const { return backlog_.load(std::memory_order_relaxed); }
  // Reads on the reactor hold this shared lock: a reopen (journal thread)
  // takes it exclusively. db() is nullptr while a failed reopen is retried.
  std::shared_lock<std::shared_mutex> read_lock() const {
    return std::shared_lock<std::shared_mutex>(db_mu_);
  }
  leveldb::DB* db() const { return db_; }
  const std::string& data_dir() const { return dir_; }

  // Completion messages on the notify socket: 8-byte seq (little endian),
  // 1 byte ok, then the error text if not ok. decode_completion parses one.
  static bool decode_completion(const zmq::message_t& m, std::uint64_t* seq, bool* ok,
                                std::string* error);

 private:
  Journal() = default;
  void run(zmq::context_t* ctx, std::string endpoint);
  bool write_group(std::vector<JournalOp>& group, std::string* error);
  void check_space();
  bool try_reopen();

  std::string dir_;
  JournalOptions o_;
  int lock_fd_ = -1;
  mutable std::shared_mutex db_mu_;  // guards db_ against reopen (reads share it)
  leveldb::DB* db_ = nullptr;        // replaced only by try_reopen(), holding db_mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<JournalOp> queue_;  // guarded by mu_
  bool stop_ = false;            // guarded by mu_
  std::uint64_t next_seq_ = 0;   // guarded by mu_
  JournalStats stats_;           // guarded by mu_
  std::string error_;            // guarded by mu_: why the last write failed

  std::atomic<std::size_t> backlog_{0};
  std::atomic<bool> healthy_{true};
  std::atomic<std::uint64_t> reopens_{0};
  std::atomic<std::uint64_t> reopens_taken_{0};  // reopens the reactor has reconciled
  std::atomic<bool> space_ok_{true};
  std::thread thread_;
};

}  // namespace zgrid::head
