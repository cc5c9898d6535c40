#include "head/lease.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <algorithm>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.hpp"
#include "common/util.hpp"

namespace zgrid::head {

namespace {

constexpr const char* kLog = "lease";
constexpr std::size_t kRecordSize = 1024;  // fixed: a renewal rewrites it in place
constexpr long kNfsMagic = 0x6969;
constexpr std::uint64_t kKeepEpochs = 16;  // older epoch files are removed by a new holder

std::string epoch_file(const std::string& dir, std::uint64_t epoch) {
  return dir + "/epoch-" + std::to_string(epoch);
}

std::string encode(const LeaseRecord& r) {
  std::ostringstream o;
  // Fixed widths where the record changes (the counter): a renewal rewrites
  // the same bytes in place, so a reader racing it never sees the other
  // fields shift.
  char counter[24];
  std::snprintf(counter, sizeof counter, "%020llu", static_cast<unsigned long long>(r.counter));
  o << "epoch=" << r.epoch << "\ncounter=" << counter
    << "\nstate=" << (r.released ? "released" : "held") << "\ninstance=" << r.instance
    << "\nhost=" << r.host << "\nboot_id=" << r.boot_id << "\npid_ns=" << r.pid_ns
    << "\npid=" << r.pid << "\nfrontend=" << r.frontend << "\nbackend=" << r.backend
    << "\nhttp=" << r.http << "\n";
  std::string s = o.str();
  if (s.size() > kRecordSize - 1) s.resize(kRecordSize - 1);
  s.resize(kRecordSize, ' ');  // padding: the record's size never changes
  return s;
}

// A record torn or not yet written reads as counter 0 with no holder: the
// reader then waits for it to change like any other.
LeaseRecord decode(const std::string& text) {
  LeaseRecord r;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    if (k == "epoch")
      r.epoch = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "counter")
      r.counter = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "state")
      r.released = v == "released";
    else if (k == "instance")
      r.instance = v;
    else if (k == "host")
      r.host = v;
    else if (k == "boot_id")
      r.boot_id = v;
    else if (k == "pid_ns")
      r.pid_ns = v;
    else if (k == "pid")
      r.pid = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "frontend")
      r.frontend = v;
    else if (k == "backend")
      r.backend = v;
    else if (k == "http")
      r.http = v;
  }
  return r;
}

// Reads an epoch file afresh (open, read, close: on NFS the open
// revalidates the cache). false: it does not exist.
bool read_record(const std::string& path, LeaseRecord* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string buf(kRecordSize, '\0');
  ssize_t n = ::pread(fd, buf.data(), buf.size(), 0);
  ::close(fd);
  buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  *out = decode(buf);
  return true;
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// The newest epoch in the directory: the highest listed, then probing the
// next few names directly (a directory listing may be cached on NFS; a
// lookup by name is not, with lookupcache=positive).
std::uint64_t newest_epoch(const std::string& dir) {
  std::uint64_t best = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string_view name(e->d_name);
      if (!name.starts_with("epoch-")) continue;
      std::uint64_t n = std::strtoull(e->d_name + 6, nullptr, 10);
      if (n > best) best = n;
    }
    ::closedir(d);
  }
  while (exists(epoch_file(dir, best + 1))) ++best;
  return best;
}

// Whether a process of this machine is gone: not there, or a zombie with
// no thread left (a leader that exited while its threads run on is a
// zombie too).
bool process_gone(std::uint64_t pid) {
  if (pid == 0 || pid > 4'194'304) return false;
  std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream f(dir + "/stat");
  if (!f) return !exists(dir);
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  char state = stat[close + 2];
  if (state != 'Z' && state != 'X') return false;
  std::error_code ec;
  std::size_t live_threads = 0;
  for (const auto& t : std::filesystem::directory_iterator(dir + "/task", ec)) {
    std::ifstream ts(t.path() / "stat");
    std::string line((std::istreambuf_iterator<char>(ts)), std::istreambuf_iterator<char>());
    auto c = line.rfind(')');
    if (c != std::string::npos && c + 2 < line.size() && line[c + 2] != 'Z' && line[c + 2] != 'X')
      ++live_threads;
  }
  return live_threads == 0;
}

Status sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable("cannot open " + dir + ": " + std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::Unavailable("cannot sync " + dir + ": " + std::strerror(err));
  return Status::OK();
}

}  // namespace

Millis boottime_ms() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<Millis>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

std::string pid_namespace() {
  char buf[64] = {0};
  ssize_t n = ::readlink("/proc/self/ns/pid", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

std::string boot_id() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(f, id);
  return id;
}

Lease::Lease(std::string dir, const LeaseOptions& o, LeaseRecord self)
    : dir_(std::move(dir)), o_(o), self_(std::move(self)) {}

Result<std::unique_ptr<Lease>> Lease::open(const std::string& data_dir, const LeaseOptions& options,
                                           LeaseRecord self) {
  std::string dir = data_dir + "/lease";
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Status::Unavailable("cannot create " + dir + ": " + std::strerror(errno));
  std::unique_ptr<Lease> l(new Lease(dir, options, std::move(self)));
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) == 0) l->nfs_ = static_cast<long>(fs.f_type) == kNfsMagic;
  return l;
}

Lease::~Lease() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (renewer_.joinable()) renewer_.join();
  if (fd_ >= 0) ::close(fd_);
}

bool Lease::valid() const {
  return !lost_.load(std::memory_order_acquire) &&
         boottime_ms() < valid_until_.load(std::memory_order_acquire);
}

std::string Lease::lost_reason() const {
  if (valid()) return {};
  MutexLock lock(mu_);
  if (!lost_reason_.empty()) return lost_reason_;
  return "the lease could not be renewed for " + format_duration(o_.timeout_ms * 3 / 4) +
         " (the lease directory cannot be written)";
}

LeaseRecord Lease::holder() const {
  MutexLock lock(mu_);
  return seen_;
}

Millis Lease::holder_silent_ms() const {
  return seen_any_ ? boottime_ms() - seen_since_ : 0;
}

void Lease::set_self(const LeaseRecord& self) {
  MutexLock lock(mu_);
  std::uint64_t e = self_.epoch, c = self_.counter;
  self_ = self;
  self_.epoch = e;
  self_.counter = c;
}

Result<Lease::Poll> Lease::poll() {
  if (held_ && lost_.load()) return Status::Unavailable(lost_reason());
  if (held_) {
    // A claim that raced the old holder's renewal acts only after its
    // validity has surely ended.
    return boottime_ms() >= act_after_ ? Poll::kActive : Poll::kStandby;
  }
  Millis now = boottime_ms();
  std::uint64_t newest = newest_epoch(dir_);
  LeaseRecord rec;
  bool have = newest > 0 && read_record(epoch_file(dir_, newest), &rec);
  if (newest > 0 && !have) {
    // Being written by its claimer (created, record not yet in), or removed
    // under us: read again next poll. It is the newest epoch seen all the
    // same, which a standby reports (endpoints file, status).
    epoch_.store(std::max(epoch_.load(), newest));
    return Poll::kStandby;
  }
  if (have) {
    if (!seen_any_ || newest != seen_epoch_ || rec.counter != seen_counter_ ||
        rec.released != seen_.released) {
      seen_any_ = true;
      seen_epoch_ = newest;
      seen_counter_ = rec.counter;
      // From after the read: the renewal it saw may have begun during a
      // stall of ours between taking `now` and reading.
      seen_since_ = boottime_ms();
      MutexLock lock(mu_);
      seen_ = rec;
      seen_.epoch = newest;
    }
    epoch_.store(newest);
  }
  bool may = false;
  std::string why;
  if (!have) {
    may = true;
    why = "no head holds the lease";
  } else if (rec.released) {
    may = true;
    why = "the head of epoch " + std::to_string(newest) + " released it";
  } else if (!rec.boot_id.empty() && rec.boot_id == boot_id() && !rec.pid_ns.empty() &&
             rec.pid_ns == pid_namespace() && process_gone(rec.pid)) {
    may = true;
    holder_gone_ = true;
    why = "the head of epoch " + std::to_string(newest) + " (PID " + std::to_string(rec.pid) +
          " on this machine) is gone";
  } else if (boottime_ms() - seen_since_ >= o_.timeout_ms) {
    may = true;
    why = "the head of epoch " + std::to_string(newest) + " (" + rec.host + " PID " +
          std::to_string(rec.pid) + ") has not renewed it for " +
          format_duration(boottime_ms() - seen_since_);
  }
  if (!may) return Poll::kStandby;
  Status st = claim(newest + 1, now, rec);
  if (!st.ok()) {
    if (st.code() == Code::kAlreadyExists) {  // another head won it: the newest epoch now
      epoch_.store(std::max(epoch_.load(), newest + 1));
      return Poll::kStandby;
    }
    return st;
  }
  took_over_ = have && !rec.released;
  ZG_LOG(kInfo, kLog, "claimed epoch " + std::to_string(newest + 1) + ": " + why);
  return boottime_ms() >= act_after_ ? Poll::kActive : Poll::kStandby;
}

Status Lease::claim(std::uint64_t epoch, Millis now, const LeaseRecord& previous) {
  std::string path = epoch_file(dir_, epoch);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return Status::AlreadyExists(path);
    return Status::Unavailable("cannot create " + path + ": " + std::strerror(errno));
  }
  fd_ = fd;
  held_ = true;
  epoch_.store(epoch);
  {
    MutexLock lock(mu_);
    self_.epoch = epoch;
    self_.counter = 1;
    self_.released = false;
  }
  counter_.store(1);
  // Valid from before the create: the old holder's validity ended before
  // our observation of it began plus the timeout (or it released, or died).
  valid_until_.store(now + o_.timeout_ms * 3 / 4);
  Status w = write_record(false);
  if (w.ok()) w = sync_dir(dir_);
  if (!w.ok()) ZG_LOG(kWarn, kLog, "epoch " + std::to_string(epoch) + ": " + w.message());
  // Did the old holder renew between our last read and our create? Then
  // its validity may run up to `timeout` from now: wait that out before
  // writing (it sees our epoch at its next renewal and stands down).
  act_after_ = 0;
  if (epoch > 1 && !previous.released) {
    LeaseRecord again;
    if (read_record(epoch_file(dir_, epoch - 1), &again) && again.counter != previous.counter) {
      act_after_ = boottime_ms() + o_.timeout_ms;
      ZG_LOG(kWarn, kLog,
             "the head of epoch " + std::to_string(epoch - 1) +
                 " renewed while this head claimed epoch " + std::to_string(epoch) + ": waiting " +
                 format_duration(o_.timeout_ms) + " before taking over");
    }
  }
  for (std::uint64_t old = epoch > kKeepEpochs ? epoch - kKeepEpochs : 0; old > 0; --old) {
    if (::unlink(epoch_file(dir_, old).c_str()) != 0) break;
  }
  renewer_ = std::thread(&Lease::renew_loop, this);
  return Status::OK();
}

Status Lease::write_record(bool released) {
  std::string rec;
  {
    MutexLock lock(mu_);
    self_.counter = counter_.load();
    self_.released = released;
    rec = encode(self_);
  }
  ssize_t n = ::pwrite(fd_, rec.data(), rec.size(), 0);
  if (n != static_cast<ssize_t>(rec.size()))
    return Status::Unavailable("cannot write the lease: " +
                               std::string(n < 0 ? std::strerror(errno) : "short write"));
  if (nfs_ && ::fdatasync(fd_) != 0)
    return Status::Unavailable(std::string("cannot sync the lease: ") + std::strerror(errno));
  return Status::OK();
}

void Lease::lose(std::string why) {
  {
    MutexLock lock(mu_);
    if (lost_reason_.empty()) lost_reason_ = std::move(why);
  }
  lost_.store(true, std::memory_order_release);
}

void Lease::renew_loop() {
  MutexLock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(o_.renew_ms));
    if (stop_) break;
    lock.unlock();
    bool held = renew_once();
    lock.lock();
    if (!held) break;
  }
}

bool Lease::renew_once() {
  MutexLock renewing(renew_mu_);
  if (lost_.load()) return false;
  const std::uint64_t epoch = epoch_.load();
  Millis start = boottime_ms();
  counter_.fetch_add(1);
  Status w = write_record(false);
  // Renewed — unless a newer epoch exists, which ends ours at once. (Read
  // after our write: a standby reads our counter after its create, so one
  // of us sees the other.)
  std::string next = epoch_file(dir_, epoch + 1);
  struct stat own {};
  if (::fstat(fd_, &own) != 0 || own.st_nlink == 0) {
    // Only a newer holder removes old epoch files (16 claims on).
    lose("epoch " + std::to_string(epoch) + " was removed by a newer holder");
    return false;
  }
  if (exists(next)) {
    LeaseRecord by;
    read_record(next, &by);
    lose("epoch " + std::to_string(epoch + 1) + " was claimed by " + by.host + " PID " +
         std::to_string(by.pid));
    return false;
  }
  if (w.ok()) {
    if (start >= valid_until_.load())
      ZG_LOG(kWarn, kLog,
             "the lease of epoch " + std::to_string(epoch) + " went unrenewed for " +
                 format_duration(start - valid_until_.load() + o_.timeout_ms * 3 / 4) +
                 " (this head was frozen or its disk stalled); no other head claimed it: "
                 "renewed");
    valid_until_.store(start + o_.timeout_ms * 3 / 4);
  } else {
    ZG_LOG(kWarn, kLog, w.message() + " (retrying every " + format_duration(o_.renew_ms) + ")");
  }
  return true;
}

bool Lease::ensure_valid() {
  if (valid()) return true;
  if (!held_ || lost_.load()) return false;
  renew_once();
  return valid();
}

bool Lease::confirm() {
  if (!ensure_valid()) return false;
  const std::uint64_t epoch = epoch_.load();
  struct stat own {};
  if (exists(epoch_file(dir_, epoch + 1))) {
    lose("epoch " + std::to_string(epoch + 1) + " was claimed by another head");
    return false;
  }
  if (::fstat(fd_, &own) != 0 || own.st_nlink == 0) {
    lose("epoch " + std::to_string(epoch) + " was removed by a newer holder");
    return false;
  }
  return true;
}

void Lease::release() {
  if (!held_) return;
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (renewer_.joinable()) renewer_.join();
  // The fence says no before the record says released (a standby acts on
  // it at once), and no renewal can say held again after it.
  MutexLock renewing(renew_mu_);
  bool was_valid = valid();
  lose("the lease was released");
  if (was_valid) {
    Status w = write_record(true);
    if (!w.ok()) ZG_LOG(kWarn, kLog, "cannot mark the lease released: " + w.message());
  }
  held_ = false;
}

}  // namespace zgrid::head
