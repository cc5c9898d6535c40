// The head's journal as interfaces: what it reads (JournalReader: get, and
// cursors over a prefix) and what it writes (JournalStore: submit an op,
// hear its completion, health). The LevelDB journal (head/journal.hpp, the
// only code that includes LevelDB) implements both, and so does
// MemoryJournal, an in-memory store that fails on demand, for in-process
// tests of fetch, recovery, loading and the rooms above them.
//
// Errors: NotFound for an absent key; Unavailable when a record cannot be
// read now (I/O error, the journal being reopened: try again); DataLoss when
// it is corrupt (checksum mismatch, missing bulk data: is_corruption()).
//
// Thread safety: a JournalReader may be read from the reactor while its
// writer runs; a cursor belongs to the thread that made it and should be
// short-lived (it may hold a read lock).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/prometheus.hpp"
#include "common/status.hpp"

namespace zmq {
class socket_t;
}  // namespace zmq

namespace zgrid::head {

// One change, written atomically: puts and deletes, already encoded. Its
// delete_prefixes go first, then its deletes, then its puts; ops take effect
// in the order submitted, however the store groups them.
struct JournalOp {
  std::uint64_t seq = 0;  // set by submit()
  std::vector<std::pair<std::string, std::string>> puts;
  std::vector<std::string> deletes;
  std::vector<std::string> delete_prefixes;  // every key starting with these (purge)
  std::string purge_session;                 // with delete_prefixes: its segment file goes too
  // A write that gives space back or records a change of state (purge,
  // client removal, seal, cancel): written alone, and on a full disk it may
  // use the disk reserve.
  bool maintenance = false;
  std::size_t bytes() const;
};

struct JournalStats {
  std::uint64_t syncs = 0;             // synced writes (groups)
  std::uint64_t file_syncs = 0;        // fdatasyncs of segment files
  std::uint64_t db_syncs = 0;          // synced LevelDB writes
  std::uint64_t redo_groups = 0;       // groups durable by one segment file's sync (redo record)
  std::uint64_t ops = 0;               // ops written
  std::uint64_t bytes = 0;             // bytes written
  std::uint64_t failures = 0;          // failed writes
  std::uint64_t compactions = 0;       // compaction passes after purges (ended)
  std::uint64_t compacted_ranges = 0;  // key ranges those passes compacted
  prom::Histogram sync_seconds{prom::sync_buckets()};  // time of each synced write
};

// Every op up to `seq` is durable (ok) or failed with `error`.
struct JournalCompletion {
  std::uint64_t seq = 0;
  bool ok = true;
  std::string error;
};

// Iterates the keys that start with a prefix, in order.
class JournalCursor {
 public:
  virtual ~JournalCursor() = default;
  virtual bool valid() const = 0;      // positioned on a key of the prefix
  virtual bool raw_valid() const = 0;  // positioned on any key at all
  virtual void seek(std::string_view key) = 0;
  virtual void seek_to_last() = 0;  // the last key of the whole journal
  virtual void next() = 0;
  virtual void prev() = 0;
  virtual std::string_view key() const = 0;
  // The value (valid until the cursor moves).
  virtual Status value(std::string_view* out) = 0;
};

class JournalReader {
 public:
  virtual ~JournalReader() = default;
  virtual Status get(std::string_view key, std::string* value) const = 0;
  // A cursor over `prefix`, or nullptr when none can be made now.
  virtual std::unique_ptr<JournalCursor> cursor(std::string prefix) const = 0;

  static bool is_corruption(const Status& st) { return st.code() == Code::kDataLoss; }
};

// The write side. Ops are written in the order submitted; completions come
// in that order. Called from the reactor thread only.
class JournalStore : public JournalReader {
 public:
  // Queues an op; returns its sequence number.
  virtual std::uint64_t submit(JournalOp op) = 0;
  // Adds `puts` to op `seq` if that op has not started to be written (it
  // still waits in the queue): they are then written, and completed, with
  // it, atomically. False (nothing done) once it is being written or was.
  virtual bool amend(std::uint64_t /*seq*/,
                     std::vector<std::pair<std::string, std::string>>& /*puts*/) {
    return false;
  }
  // The completions that have arrived (none waits).
  virtual std::vector<JournalCompletion> take_completions() = 0;
  // A socket that becomes readable when a completion arrives, for the
  // reactor's poll; nullptr: the owner calls take_completions itself.
  virtual zmq::socket_t* completion_socket() { return nullptr; }

  // False after a failed write (until reopened) or while space is short.
  virtual bool healthy() const = 0;
  // The disk is full: new requests are refused as resource_exhausted.
  virtual bool space_short() const = 0;
  virtual std::string health_reason() const = 0;
  // Bytes submitted and not yet written (the reactor slows down above a bound).
  virtual std::size_t backlog_bytes() const = 0;
  virtual JournalStats stats() const = 0;
  // Counts reopens after failed writes. After each, the owner brings its
  // state up to what the journal holds, then calls reconciled(reopens()).
  virtual std::uint64_t reopens() const = 0;
  virtual void reconciled(std::uint64_t reopens) = 0;
  // Deletes the bulk data of sessions that `live` says are gone.
  virtual void remove_orphan_segments(const std::function<bool(std::string_view sid)>& live) = 0;

  // A write error that says the disk is full (ENOSPC, quota).
  static bool is_no_space(const std::string& error);
};

// A journal in a std::map. Tests mark keys corrupt, make reads or writes
// fail, and hold completions back. An op is applied when submitted (unless
// writes fail); its completion waits for take_completions().
// Not thread-safe.
class MemoryJournal : public JournalStore {
 public:
  void put(std::string key, std::string value) { data_[std::move(key)] = std::move(value); }
  void erase(const std::string& key) { data_.erase(key); }
  void corrupt(std::string key) { corrupt_.insert(std::move(key)); }  // reads give DataLoss
  void fail_reads(bool on) { fail_reads_ = on; }                      // reads give Unavailable
  void refuse_cursors(bool on) { refuse_cursors_ = on; }              // "being reopened"
  std::size_t size() const { return data_.size(); }
  bool contains(const std::string& key) const { return data_.count(key) > 0; }
  // Writes fail (`error`; empty: they succeed again) and the store reports
  // itself unhealthy until reopen() is called (a maintenance write, once
  // writes succeed again, reopens it itself, as the LevelDB journal does)
  // and the owner has reconciled. `after_storage`: the first failing op is
  // applied before it fails, like a write whose sync failed.
  void fail_writes(std::string error, bool after_storage = false) {
    write_error_ = std::move(error);
    fail_after_storage_ = after_storage;
  }
  void reopen() { ++reopens_; }
  void hold_completions(bool on) { hold_ = on; }
  std::size_t pending() const { return done_.size(); }
  const std::vector<JournalOp>& written() const { return written_; }

  std::uint64_t submit(JournalOp op) override;
  // While completions are held, the last op counts as not yet written.
  bool amend(std::uint64_t seq, std::vector<std::pair<std::string, std::string>>& puts) override;
  std::vector<JournalCompletion> take_completions() override;
  bool healthy() const override { return healthy_; }
  bool space_short() const override { return is_no_space(write_error_); }
  std::string health_reason() const override { return healthy_ ? "ok" : last_error_; }
  std::size_t backlog_bytes() const override { return 0; }
  JournalStats stats() const override { return stats_; }
  std::uint64_t reopens() const override { return reopens_; }
  void reconciled(std::uint64_t reopens) override {
    reconciled_ = reopens;
    healthy_ = write_error_.empty();
  }
  void remove_orphan_segments(const std::function<bool(std::string_view)>&) override {}

  Status get(std::string_view key, std::string* value) const override;
  std::unique_ptr<JournalCursor> cursor(std::string prefix) const override;

 private:
  friend class MemoryCursor;
  Status read(const std::string& key, std::string_view* out) const;
  void apply(const JournalOp& op);

  std::map<std::string, std::string, std::less<>> data_;
  std::set<std::string, std::less<>> corrupt_;
  bool fail_reads_ = false, refuse_cursors_ = false, hold_ = false, healthy_ = true;
  bool fail_after_storage_ = false;
  std::string write_error_, last_error_;
  std::uint64_t next_seq_ = 0, reopens_ = 0, reconciled_ = 0;
  std::vector<JournalCompletion> done_;
  std::vector<JournalOp> written_;
  JournalStats stats_;
};

}  // namespace zgrid::head
