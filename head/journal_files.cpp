#include "head/journal_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

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
