// What the head reads from its journal, as an interface: the LevelDB journal
// (head/journal.hpp) implements it, and so does MemoryJournal, an in-memory
// store that fails on demand, for in-process tests of fetch and recovery.
//
// Errors: NotFound for an absent key; Unavailable when a record cannot be
// read now (I/O error, the journal being reopened: try again); DataLoss when
// it is corrupt (checksum mismatch, missing bulk data: is_corruption()).
//
// Thread safety: a JournalReader may be read from the reactor while its
// writer runs; a cursor belongs to the thread that made it and should be
// short-lived (it may hold a read lock).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "common/status.hpp"

namespace zgrid::head {

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

// A journal in a std::map. Tests mark keys corrupt or make reads fail.
// Not thread-safe.
class MemoryJournal : public JournalReader {
 public:
  void put(std::string key, std::string value) { data_[std::move(key)] = std::move(value); }
  void erase(const std::string& key) { data_.erase(key); }
  void corrupt(std::string key) { corrupt_.insert(std::move(key)); }  // reads give DataLoss
  void fail_reads(bool on) { fail_reads_ = on; }                      // reads give Unavailable
  void refuse_cursors(bool on) { refuse_cursors_ = on; }              // "being reopened"
  std::size_t size() const { return data_.size(); }

  Status get(std::string_view key, std::string* value) const override;
  std::unique_ptr<JournalCursor> cursor(std::string prefix) const override;

 private:
  friend class MemoryCursor;
  Status read(const std::string& key, std::string_view* out) const;

  std::map<std::string, std::string, std::less<>> data_;
  std::set<std::string, std::less<>> corrupt_;
  bool fail_reads_ = false, refuse_cursors_ = false;
};

}  // namespace zgrid::head
