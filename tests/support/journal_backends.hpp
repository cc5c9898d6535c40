// Every JournalStore implementation behind one small interface, for the
// journal conformance suite (tests/journal_conformance_test.cpp): a store
// opened on storage of its own, closed and reopened on it, crashed right
// after a synced write, the faults each implementation can be given, and
// completions waited for with a bound. Where the implementations differ on
// purpose, JournalCaps says so and the suite checks each side of it.
//
// A new backend: a JournalBackend for it here (make_..._backend) and one
// line in the suite's INSTANTIATE_TEST_SUITE_P.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "head/journal_store.hpp"

namespace zgrid::head::testing {

// How an implementation differs from the others on purpose.
struct JournalCaps {
  // Ops submitted together are written in one synced write with one
  // completion (LevelDB); otherwise one write and one completion per op.
  bool group_commit = false;
  // Bulk values (R and A records) of more than a few hundred bytes live in a
  // file per session (LevelDB's segment files), which a test can look for.
  bool bulk_files = false;
  // An injected read failure hits every record; otherwise only bulk values
  // in files (LevelDB's hook is an I/O error on segment files).
  bool read_faults_hit_every_record = false;
  // remove_orphan_segments() deletes the bulk data of sessions said gone
  // (LevelDB); MemoryJournal keeps no bulk data apart and ignores it.
  bool removes_orphan_bulk = false;
  // A second store opened on the same storage while one is open is refused
  // (LevelDB: the data directory's lock).
  bool exclusive_open = false;
};

struct OpenMode {
  // Injected write failures happen after the op reached storage (a failed
  // sync: the data is there, the write reports failure) rather than before.
  bool faults_after_write = false;
};

class JournalBackend {
 public:
  virtual ~JournalBackend() = default;
  virtual const JournalCaps& caps() const = 0;

  // Opens a new store object on this backend's storage (closing the one open
  // first). Completions taken so far are forgotten: a new store numbers its
  // ops from 1.
  virtual JournalStore& open(OpenMode mode = {}) = 0;
  virtual JournalStore& store() = 0;
  // Closes the store the normal way: what was submitted is written.
  virtual void close() = 0;
  // Opens a second store on the same storage while the first is open and
  // drops it at once: its open status.
  virtual Status open_another() = 0;

  // Faults, injected the way each implementation can have them.
  virtual void fail_writes(bool on) = 0;
  virtual void fail_reads(bool on) = 0;
  // Once writes may succeed again: the store reopens itself (LevelDB: its
  // journal thread, within about a second). False if it did not in time.
  virtual bool await_reopen(std::uint64_t reopens_before) = 0;
  // The bulk data of session `sid`: every record damaged (bytes flipped),
  // truncated away (both on an open store), or lost (its file deleted; on a
  // closed store: an open one may still hold the file).
  virtual void damage_bulk(std::string_view sid) = 0;
  virtual void truncate_bulk(std::string_view sid) = 0;
  virtual void lose_bulk(std::string_view sid) = 0;
  // caps().bulk_files only: whether the session's bulk file exists.
  virtual bool bulk_file_exists(std::string_view sid) = 0;

  // Submits an op and waits for its completion: false if it failed or did
  // not come (the store crashed).
  using SubmitAndWait = std::function<bool(JournalOp)>;
  // On a closed backend: runs `body` against a store that dies right after
  // its `syncs`-th synced write, before that write's completion is
  // delivered (LevelDB: the crash point in a forked process, SIGKILL).
  // True if it died there. Open() then reopens what the crash left.
  virtual bool run_until_crash(int syncs,
                               const std::function<void(const SubmitAndWait&)>& body) = 0;

  // Takes completions until one covers op `seq` (at most `timeout_ms`).
  bool await(std::uint64_t seq, int timeout_ms = 10'000);
  // The completion that covered op `seq` (after await), or nullptr.
  const JournalCompletion* outcome(std::uint64_t seq) const;
  // Every completion taken from the open store, in order.
  std::vector<JournalCompletion> completions;
};

std::unique_ptr<JournalBackend> make_leveldb_backend();
std::unique_ptr<JournalBackend> make_memory_backend();

}  // namespace zgrid::head::testing
