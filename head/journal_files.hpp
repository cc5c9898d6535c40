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

// A redo record (journal format v4): the LevelDB ops of a write group whose
// bulk values went to one segment file, appended to that file right after
// those values in the same pwrite and synced with them by its one
// fdatasync; the group's LevelDB batch is then written without a sync. At
// open, records newer than the last synced LevelDB write are applied again
// (Journal::open, replay_redo), so the group is durable once that file is.
//
//   body: ops, each 'P' u32 key_len key u32 value_len value | 'D' u32 key_len key
//   trailer (kTrailerSize bytes, found from the record's end):
//     u64 seq      the group's number (JournalGroup seq, increasing)
//     u64 start    the offset where the group's append to this file began
//                  (its bulk values, then this record): the previous append
//                  ends there, so the records of a file are walked backwards
//     u32 body_len
//     u32 crc      CRC-32C of salt, body, seq, start and body_len
//     u64 magic    kMagic
// Integers in the host's byte order, as in SegPtr. The salt is a random
// value kept in LevelDB ('\0' + "salt"): bulk values are client and node
// bytes, so a tail that merely looks like a record (a payload that ends
// with a forged trailer) fails its checksum. Pointers never point into a
// record, and a punch (client removal) only ever covers a pointed-at value.
struct Redo {
  static constexpr std::uint64_t kMagic = 0x314f4445525a475aull;  // "ZGZREDO1"
  static constexpr std::size_t kTrailerSize = 32;
  // At most this many bytes of body (a group holds at most 8 MiB of ops,
  // plus one op; frames are smaller than 64 MiB).
  static constexpr std::uint32_t kMaxBody = 256u << 20;
  // At most this many bytes in one group's append to one file (its bulk
  // values are below 2 x 8 MiB, frame and group limits; its record holds the
  // group's other ops): how far back open looks behind a torn append.
  static constexpr std::uint64_t kMaxAppend = 48ull << 20;
  struct Trailer {
    std::uint64_t seq = 0, start = 0;
    std::uint32_t body_len = 0, crc = 0;
  };
  static void add_put(std::string* body, std::string_view key, std::string_view value);
  static void add_delete(std::string* body, std::string_view key);
  // Visits each op in order (is_put, key, value); false if `body` does not parse.
  [[nodiscard]] static bool for_each(
      std::string_view body,
      const std::function<void(bool is_put, std::string_view key, std::string_view value)>& fn);
  // Appends the trailer of the body that occupies out[body_at, end).
  static void seal(std::string* out, std::size_t body_at, std::uint64_t seq, std::uint64_t start,
                   std::string_view salt);
  [[nodiscard]] static bool read_trailer(std::string_view bytes, Trailer* t);  // its last 32 bytes
  static std::uint32_t checksum(std::string_view salt, std::string_view body, const Trailer& t);
};

// A redo record found in a segment file's tail.
struct FoundRedo {
  std::uint64_t seq = 0;
  std::string sid;
  std::string body;
};
struct RedoScan {
  std::vector<FoundRedo> found;  // every file's, in no order
  std::size_t files = 0;         // segment files looked at
  std::size_t rejected = 0;      // torn or garbled tail records (never committed)
};
// Walks each segment file under `dir` backwards from its end, append by
// append (each ends with a trailer: a redo record's, or a marker's with no
// body), while their seq is above `floor`. A file's last append whose
// trailer, body or bulk values (pointers into the same append, read and
// checked) do not check out is a write a crash cut short, never
// acknowledged: it is skipped (the trailer before it is searched for) and
// its group not applied. Anywhere else such bytes end the walk of the file.
RedoScan scan_redo(const std::string& dir, std::string_view salt, std::uint64_t floor);
// Format v4's migration: a marker at the end of every segment file an
// older head wrote (so that only a torn append lacks a trailer), synced.
Status mark_segments(const std::string& dir, std::string_view salt);

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
