#include "head/journal_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "head/journal_records.hpp"

#include "common/crc32c.hpp"
#include "common/log.hpp"

namespace zgrid::head {

namespace {
constexpr const char* kLog = "journal";

}  // namespace

// ---- FdReserve --------------------------------------------------------------------

FdReserve::FdReserve(int n) : want_(n) {
  refill();
}

FdReserve::~FdReserve() {
  for (int fd : fds_) ::close(fd);
}

int FdReserve::open_with_reserve(const std::function<int()>& open) {
  while (true) {
    int fd = open();
    if (fd >= 0 || (errno != EMFILE && errno != ENFILE)) return fd;
    if (!give_one()) return fd;
  }
}

bool FdReserve::give_one() {
  MutexLock lock(mu_);
  if (fds_.empty()) return false;
  ::close(fds_.back());
  fds_.pop_back();
  if (!logged_) {
    logged_ = true;
    ZG_LOG(kWarn, kLog, "file descriptors exhausted: the journal uses its reserve");
  }
  return true;
}

void FdReserve::refill() {
  MutexLock lock(mu_);
  while (static_cast<int>(fds_.size()) < want_) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    fds_.push_back(fd);
  }
  logged_ = false;
}

// ---- SegPtr ----------------------------------------------------------------------

std::string SegPtr::encode() const {
  std::string s(kSize, '\0');
  s[0] = kTag;
  std::memcpy(&s[1], &offset, 8);
  std::memcpy(&s[9], &length, 4);
  std::memcpy(&s[13], &crc, 4);
  return s;
}

bool SegPtr::decode(std::string_view v, SegPtr* p) {
  if (v.size() != kSize || v[0] != kTag) return false;
  std::memcpy(&p->offset, v.data() + 1, 8);
  std::memcpy(&p->length, v.data() + 9, 4);
  std::memcpy(&p->crc, v.data() + 13, 4);
  return true;
}

// ---- Redo records ----------------------------------------------------------------

namespace {
void put_u32(std::string* s, std::uint32_t v) {
  s->append(reinterpret_cast<const char*>(&v), 4);
}
void put_u64(std::string* s, std::uint64_t v) {
  s->append(reinterpret_cast<const char*>(&v), 8);
}
bool take_u32(std::string_view* s, std::uint32_t* v) {
  if (s->size() < 4) return false;
  std::memcpy(v, s->data(), 4);
  s->remove_prefix(4);
  return true;
}
bool take_bytes(std::string_view* s, std::string_view* out) {
  std::uint32_t n;
  if (!take_u32(s, &n) || s->size() < n) return false;
  *out = s->substr(0, n);
  s->remove_prefix(n);
  return true;
}

// pread of exactly `n` bytes at `off`.
bool read_at(int fd, std::uint64_t off, std::size_t n, std::string* out) {
  out->resize(n);
  std::size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out->data() + done, n - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<std::size_t>(r);
  }
  return true;
}
}  // namespace

void Redo::add_put(std::string* body, std::string_view key, std::string_view value) {
  body->push_back('P');
  put_u32(body, static_cast<std::uint32_t>(key.size()));
  body->append(key);
  put_u32(body, static_cast<std::uint32_t>(value.size()));
  body->append(value);
}

void Redo::add_delete(std::string* body, std::string_view key) {
  body->push_back('D');
  put_u32(body, static_cast<std::uint32_t>(key.size()));
  body->append(key);
}

bool Redo::for_each(
    std::string_view body,
    const std::function<void(bool is_put, std::string_view key, std::string_view value)>& fn) {
  while (!body.empty()) {
    char kind = body.front();
    body.remove_prefix(1);
    std::string_view k, v;
    if (kind != 'P' && kind != 'D') return false;
    if (!take_bytes(&body, &k)) return false;
    if (kind == 'P' && !take_bytes(&body, &v)) return false;
    fn(kind == 'P', k, v);
  }
  return true;
}

std::uint32_t Redo::checksum(std::string_view salt, std::string_view body, const Trailer& t) {
  std::string all;
  all.reserve(salt.size() + body.size() + 20);
  all.append(salt);
  all.append(body);
  put_u64(&all, t.seq);
  put_u64(&all, t.start);
  put_u32(&all, t.body_len);
  return crc32c(all);
}

void Redo::seal(std::string* out, std::size_t body_at, std::uint64_t seq, std::uint64_t start,
                std::string_view salt) {
  Trailer t;
  t.seq = seq;
  t.start = start;
  t.body_len = static_cast<std::uint32_t>(out->size() - body_at);
  t.crc = checksum(salt, std::string_view(*out).substr(body_at), t);
  put_u64(out, t.seq);
  put_u64(out, t.start);
  put_u32(out, t.body_len);
  put_u32(out, t.crc);
  put_u64(out, kMagic);
}

bool Redo::read_trailer(std::string_view bytes, Trailer* t) {
  if (bytes.size() < kTrailerSize) return false;
  const char* p = bytes.data() + bytes.size() - kTrailerSize;
  std::uint64_t magic;
  std::memcpy(&magic, p + 24, 8);
  if (magic != kMagic) return false;
  std::memcpy(&t->seq, p, 8);
  std::memcpy(&t->start, p + 8, 8);
  std::memcpy(&t->body_len, p + 16, 4);
  std::memcpy(&t->crc, p + 20, 4);
  return true;
}

namespace {
// The record that ends at `end` in `fd`, if its trailer and its body check
// out (the salted checksum); *budget counts down the body bytes checked.
bool record_at(int fd, std::uint64_t end, std::string_view salt, Redo::Trailer* t,
               std::string* body, std::uint64_t* budget) {
  std::string buf;
  if (end < Redo::kTrailerSize ||
      !read_at(fd, end - Redo::kTrailerSize, Redo::kTrailerSize, &buf) ||
      !Redo::read_trailer(buf, t))
    return false;
  if (t->body_len > Redo::kMaxBody || t->body_len > end - Redo::kTrailerSize) return false;
  std::uint64_t body_at = end - Redo::kTrailerSize - t->body_len;
  if (t->start > body_at || t->body_len > *budget) return false;
  *budget -= t->body_len;
  return read_at(fd, body_at, t->body_len, body) && Redo::checksum(salt, *body, *t) == t->crc;
}

// The end of the last whole record in the `kMaxAppend` bytes before `end`
// (a torn append follows it), or 0.
std::uint64_t search_back(int fd, std::uint64_t end, std::string_view salt, std::uint64_t* budget) {
  std::uint64_t lo = end > Redo::kMaxAppend ? end - Redo::kMaxAppend : 0;
  std::string region;
  if (!read_at(fd, lo, end - lo, &region)) return 0;
  std::uint64_t magic = Redo::kMagic;
  std::string_view needle(reinterpret_cast<const char*>(&magic), 8);
  std::size_t at = region.size();
  while (at > 0) {
    std::size_t hit = std::string_view(region).rfind(needle, at - 1);
    if (hit == std::string_view::npos) return 0;
    Redo::Trailer t;
    std::string body;
    std::uint64_t e = lo + hit + 8;
    if (e < end && record_at(fd, e, salt, &t, &body, budget)) return e;
    if (*budget == 0) return 0;
    at = hit;
  }
  return 0;
}
}  // namespace

RedoScan scan_redo(const std::string& dir, std::string_view salt, std::uint64_t floor) {
  RedoScan scan;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.size() != kSessionIdLength + 4 || !name.ends_with(".seg")) continue;
    std::string sid = name.substr(0, kSessionIdLength);
    int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ++scan.files;
    struct stat st;
    const std::uint64_t size = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    std::uint64_t pos = size, budget = 4 * Redo::kMaxAppend;
    std::string body, bulk;
    while (pos >= Redo::kTrailerSize) {
      Redo::Trailer t;
      if (!record_at(fd, pos, salt, &t, &body, &budget)) {
        // Every append of format v4 ends with a trailer (a marker when it
        // has no redo record; open marks older files): only the last append
        // of a file can lack one — a write the crash cut short, which was
        // never acknowledged. The records before it may be needed.
        if (pos != size) break;
        ++scan.rejected;
        ZG_LOG(kWarn, kLog,
               "segment file of session " + sid + ": an unfinished write at its end was never " +
                   "committed; ignored");
        pos = search_back(fd, pos, salt, &budget);
        continue;
      }
      if (t.seq <= floor) break;  // LevelDB has it (and every record before it)
      std::uint64_t body_at = pos - Redo::kTrailerSize - t.body_len;
      // The group's bulk values (before the record, in the same write) must
      // have reached the disk too: a torn write may keep the record's pages
      // and lose theirs.
      bool values_ok = true;
      bool ok = Redo::for_each(
                    body,
                    [&](bool is_put, std::string_view k, std::string_view v) {
                      SegPtr p;
                      if (!values_ok || !is_put || !jkey::is_bulk(k) || !SegPtr::decode(v, &p))
                        return;
                      values_ok = jkey::sid_of(k) == sid && p.offset >= t.start &&
                                  p.offset + p.length <= body_at &&
                                  read_at(fd, p.offset, p.length, &bulk) && crc32c(bulk) == p.crc;
                    }) &&
                values_ok;
      if (!ok) {
        if (pos != size) break;
        ++scan.rejected;
        ZG_LOG(kWarn, kLog,
               "segment file of session " + sid + ": an unfinished write at its end was never " +
                   "committed; ignored");
      } else if (t.body_len > 0) {  // not a marker
        scan.found.push_back({t.seq, sid, body});
      }
      pos = t.start;
    }
    ::close(fd);
  }
  return scan;
}

Status mark_segments(const std::string& dir, std::string_view salt) {
  std::error_code ec;
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.size() != kSessionIdLength + 4 || !name.ends_with(".seg")) continue;
    int fd = ::open(e.path().c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0)
      return Status::Unavailable("cannot open " + e.path().string() + ": " + std::strerror(errno));
    struct stat st;
    std::uint64_t size = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    std::string m;
    Redo::seal(&m, 0, 0, size, salt);
    ssize_t n = ::pwrite(fd, m.data(), m.size(), static_cast<off_t>(size));
    int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(m.size()))
      return Status::Unavailable("cannot write " + e.path().string() + ": " +
                                 std::strerror(n < 0 ? err : EIO));
    ++files;
  }
  if (ec) return Status::Unavailable("cannot list " + dir + ": " + ec.message());
  if (files > 0) {
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = dfd >= 0 ? ::syncfs(dfd) : -1;
    if (dfd >= 0) ::close(dfd);
    if (rc != 0) return Status::Unavailable("cannot sync " + dir + ": " + std::strerror(errno));
  }
  return Status::OK();
}

// ---- Segments --------------------------------------------------------------------

Segments::File::~File() {
  if (fd >= 0) ::close(fd);
}

Segments::Segments(std::string dir, FdReserve& fds, std::size_t max_open, std::uint64_t gap)
    : dir_(std::move(dir)), fds_(fds), max_open_(max_open), gap_(gap) {}

Status Segments::init() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return Status::Unavailable("cannot create " + dir_ + ": " + ec.message());
  if (gap_ > 0) {
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
      std::string name = e.path().filename().string();
      if (!name.ends_with(".seg")) continue;
      std::error_code size_ec;
      auto size = std::filesystem::file_size(e.path(), size_ec);
      if (!size_ec && size > 0) sizes_at_open_[name.substr(0, name.size() - 4)] = size;
    }
  }
  return Status::OK();
}

std::string Segments::path(std::string_view sid) const {
  return dir_ + "/" + std::string(sid) + ".seg";
}

Result<std::shared_ptr<Segments::File>> Segments::open(std::string_view sid, bool create) {
  MutexLock lock(mu_);
  std::string key(sid);
  if (auto it = open_.find(key); it != open_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return it->second.first;
  }
  std::string p = path(sid);
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
  int fd = fds_.open_with_reserve([&] { return ::open(p.c_str(), flags, 0600); });
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::DataLoss("segment file " + p + " is missing");
    return Status::Unavailable("cannot open " + p + ": " + std::strerror(err));
  }
  auto f = std::make_shared<File>();
  f->fd = fd;
  struct stat st;
  f->end = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  if (auto it = sizes_at_open_.find(key); it != sizes_at_open_.end() && f->end <= it->second)
    f->end = it->second + gap_;  // nothing appended since the takeover: past the gap
  lru_.push_front(key);
  open_.emplace(key, std::make_pair(f, lru_.begin()));
  while (open_.size() > max_open_) {
    open_.erase(lru_.back());
    lru_.pop_back();
  }
  return f;
}

Status Segments::read(std::string_view sid, const SegPtr& p, std::string* out) {
  auto f = open(sid, false);
  if (!f.ok()) return f.status();
  out->resize(p.length);
  std::size_t done = 0;
  while (done < p.length) {
    ssize_t n =
        ::pread((*f)->fd, out->data() + done, p.length - done, static_cast<off_t>(p.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return Status::Unavailable("cannot read segment of session " + std::string(sid) + ": " +
                                 std::strerror(errno));
    if (n == 0)
      return Status::DataLoss("segment of session " + std::string(sid) +
                              " ends before a record it should hold");
    done += static_cast<std::size_t>(n);
  }
  if (crc32c(*out) != p.crc)
    return Status::DataLoss("a record of session " + std::string(sid) + " fails its checksum");
  return Status::OK();
}

void Segments::remove(std::string_view sid) {
  {
    MutexLock lock(mu_);
    if (auto it = open_.find(std::string(sid)); it != open_.end()) {
      lru_.erase(it->second.second);
      open_.erase(it);
    }
  }
  std::error_code ec;
  std::filesystem::remove(path(sid), ec);
}

void Segments::punch(std::string_view sid, const SegPtr& p) {
  auto f = open(sid, false);
  if (f.ok())
    (void)fallocate((*f)->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(p.offset), static_cast<off_t>(p.length));
}

}  // namespace zgrid::head
