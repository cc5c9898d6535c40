// The journal's files apart from LevelDB itself: the sessions' segment files,
// the pointers LevelDB keeps to their records, and a small reserve of file
// descriptors (docs/architecture.md, "The journal").
//
// Thread safety: FdReserve and Segments are thread-safe (the journal's
// threads append; the reactor reads). SegPtr is a plain value.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.hpp"
#include "common/thread_annotations.hpp"

namespace zgrid::head {

// A few descriptors held open (on /dev/null) for the journal alone. When an
// open() of the journal fails for want of descriptors (the process's others
// went to connections), one is given up and the open retried, so a journal
// write does not fail for that. Given-up ones are taken back by refill().
class FdReserve {
 public:
  explicit FdReserve(int n);
  ~FdReserve();
  FdReserve(const FdReserve&) = delete;
  FdReserve& operator=(const FdReserve&) = delete;

  // Runs `open` (an fd, or -1 with errno); on EMFILE/ENFILE gives up a
  // reserved descriptor and tries again.
  int open_with_reserve(const std::function<int()>& open);
  // Gives up one reserved descriptor; false when none is left.
  bool give_one();
  void refill();

 private:
  const int want_;
  Mutex mu_;
  std::vector<int> fds_ ZG_GUARDED_BY(mu_);
  bool logged_ ZG_GUARDED_BY(mu_) = false;
};

// A bulk value's place in its session's segment file, as LevelDB stores it:
// 0xc1 (a byte msgpack never starts with), offset, length, CRC-32C.
struct SegPtr {
  static constexpr char kTag = static_cast<char>(0xc1);
  static constexpr std::size_t kSize = 1 + 8 + 4 + 4;
  std::uint64_t offset = 0;
  std::uint32_t length = 0, crc = 0;

  std::string encode() const;
  static bool decode(std::string_view v, SegPtr* p);
};

// One append-only file per durable session under DIR/segments. The journal
// appends at File::end (which only its append stage moves); readers pread
// below the pointers LevelDB holds. Open files are kept in a small LRU; a
// caller holds its shared_ptr while it uses one, so eviction never closes a
// file in use.
class Segments {
 public:
  struct File {
    int fd = -1;
    std::uint64_t end = 0;  // append stage only: where the next append goes
    ~File();
  };

  // `gap`: JournalOptions::takeover_gap_bytes (0: none).
  Segments(std::string dir, FdReserve& fds, std::size_t max_open, std::uint64_t gap = 0);
  Status init();
  const std::string& dir() const { return dir_; }
  std::string path(std::string_view sid) const;

  // The session's file, created when `create`. DataLoss when it should exist
  // and does not; Unavailable when it cannot be opened.
  Result<std::shared_ptr<File>> open(std::string_view sid, bool create);
  // Reads and checks one record. DataLoss on a short file or a bad checksum.
  Status read(std::string_view sid, const SegPtr& p, std::string* out);
  // Forgets and deletes a session's file (purge): its space is free once
  // nobody holds it open.
  void remove(std::string_view sid);
  // Punches a deleted record out of its file (FALLOC_FL_PUNCH_HOLE).
  void punch(std::string_view sid, const SegPtr& p);

 private:
  const std::string dir_;
  FdReserve& fds_;
  const std::size_t max_open_;
  const std::uint64_t gap_;
  Mutex mu_;
  // With a gap: each file's size when the journal opened. An append to a
  // file no bigger than that goes past the gap (re-read at every open, so an
  // evicted file keeps it).
  std::unordered_map<std::string, std::uint64_t> sizes_at_open_;
  std::list<std::string> lru_ ZG_GUARDED_BY(mu_);  // most recent first
  std::unordered_map<std::string,
                     std::pair<std::shared_ptr<File>, std::list<std::string>::iterator>>
      open_ ZG_GUARDED_BY(mu_);
};

}  // namespace zgrid::head
