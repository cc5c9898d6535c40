#include "head/journal.hpp"

#include <fcntl.h>
#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/log.hpp"

namespace zgrid::head {

namespace {
constexpr const char* kLog = "journal";

void put_be64(std::string& s, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The same LevelDB settings at open and at every reopen.
leveldb::Options db_options(bool create) {
  leveldb::Options lo;
  lo.create_if_missing = create;
  lo.write_buffer_size = 64 << 20;  // fewer level-0 files under a durable burst
  lo.max_file_size = 8 << 20;
  // Records are small msgpack values: snappy saved little space and cost most
  // of the head's CPU in a durable burst (compaction and fetch reads).
  lo.compression = leveldb::kNoCompression;
  return lo;
}
}  // namespace

namespace jkey {
std::string meta(std::string_view name) {
  std::string k(1, kMeta);
  k += name;
  return k;
}
std::string session(char kind, std::string_view sid) {
  std::string k(1, kind);
  k += sid;
  return k;
}
std::string numbered(char kind, std::string_view sid, std::uint64_t n) {
  std::string k = session(kind, sid);
  put_be64(k, n);
  return k;
}
std::string client(std::string_view sid, std::string_view cid) {
  std::string k = session(kClient, sid);
  k += cid;
  return k;
}
std::uint64_t number_of(std::string_view key) {
  if (key.size() < 8) return 0;
  std::uint64_t v = 0;
  for (std::size_t i = key.size() - 8; i < key.size(); ++i)
    v = (v << 8) | static_cast<unsigned char>(key[i]);
  return v;
}
}  // namespace jkey

std::size_t JournalOp::bytes() const {
  std::size_t n = 0;
  for (const auto& [k, v] : puts) n += k.size() + v.size();
  for (const auto& k : deletes) n += k.size();
  return n + 64;
}

Result<std::unique_ptr<Journal>> Journal::open(const std::string& data_dir, zmq::context_t& ctx,
                                               const std::string& notify_endpoint,
                                               const JournalOptions& options) {
  std::unique_ptr<Journal> j(new Journal());
  j->dir_ = data_dir;
  j->o_ = options;
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec)
    return Status::Unavailable("cannot create data directory " + data_dir + ": " + ec.message());

  // One head per data directory: an flock held for the life of the process
  // (released by the kernel even after SIGKILL), with our PID inside.
  std::string lock_path = data_dir + "/zgrid-head.lock";
  j->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (j->lock_fd_ < 0)
    return Status::Unavailable("cannot open " + lock_path + ": " + std::strerror(errno));
  if (flock(j->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    ssize_t n = pread(j->lock_fd_, buf, sizeof buf - 1, 0);
    std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    ::close(j->lock_fd_);
    j->lock_fd_ = -1;
    return Status::Unavailable("data directory " + data_dir + " in use by PID " + pid);
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(j->lock_fd_, 0) != 0 || pwrite(j->lock_fd_, pid.data(), pid.size(), 0) < 0)
    return Status::Unavailable("cannot write " + lock_path);

  leveldb::Status s = leveldb::DB::Open(db_options(true), data_dir + "/journal", &j->db_);
  if (!s.ok())
    return Status::Unavailable("cannot open journal in " + data_dir + ": " + s.ToString());

  std::string v;
  s = j->db_->Get(leveldb::ReadOptions(), jkey::meta("version"), &v);
  if (s.IsNotFound()) {
    leveldb::WriteOptions wo;
    wo.sync = true;
    s = j->db_->Put(wo, jkey::meta("version"), std::to_string(kJournalVersion));
    if (!s.ok()) return Status::Unavailable("cannot initialise journal: " + s.ToString());
  } else if (!s.ok()) {
    return Status::Unavailable("cannot read journal version: " + s.ToString());
  } else {
    unsigned long ver = std::strtoul(v.c_str(), nullptr, 10);
    if (ver > kJournalVersion)
      return Status::Version("journal in " + data_dir + " has format v" + v +
                             ", newer than this zgrid-head (v" + std::to_string(kJournalVersion) +
                             "): upgrade zgrid-head");
    if (ver < 1)
      return Status::Version("journal in " + data_dir + " has an unknown format '" + v + "'");
    // ver == kJournalVersion: nothing to migrate yet.
  }
  j->check_space();
  j->thread_ = std::thread(&Journal::run, j.get(), &ctx, notify_endpoint);
  return j;
}

Journal::~Journal() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  delete db_;
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::uint64_t Journal::submit(JournalOp op) {
  std::uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = op.seq = ++next_seq_;
    backlog_.fetch_add(op.bytes(), std::memory_order_relaxed);
    queue_.push_back(std::move(op));
  }
  cv_.notify_one();
  return seq;
}

std::string Journal::health_reason() const {
  if (!space_ok_.load()) return "free space in " + dir_ + " is below the watermark";
  std::lock_guard<std::mutex> lock(mu_);
  return error_.empty() ? "ok" : error_;
}

JournalStats Journal::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

bool Journal::decode_completion(const zmq::message_t& m, std::uint64_t* seq, bool* ok,
                                std::string* error) {
  if (m.size() < 9) return false;
  std::memcpy(seq, m.data(), 8);
  *ok = m.data<char>()[8] != 0;
  error->assign(m.data<char>() + 9, m.size() - 9);
  return true;
}

void Journal::check_space() {
  struct statvfs st;
  if (statvfs(dir_.c_str(), &st) != 0) return;
  std::uint64_t avail = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  bool ok = avail >= o_.min_free_bytes;
  if (ok != space_ok_.load())
    log::write(ok ? log::Level::kInfo : log::Level::kError, kLog,
               ok ? "free space back above the watermark in " + dir_
                  : "free space below the watermark in " + dir_ + ": new requests refused");
  space_ok_.store(ok);
}

bool Journal::write_group(std::vector<JournalOp>& group, std::string* error) {
  bool inject = !o_.fault_file.empty() && std::filesystem::exists(o_.fault_file);
  if (inject && !o_.fault_after_write) {
    *error = "journal write failed: injected fault (" + o_.fault_file + ")";
    return false;
  }
  leveldb::WriteBatch batch;
  for (auto& op : group) {
    for (auto& [k, v] : op.puts) batch.Put(k, v);
    for (auto& k : op.deletes) batch.Delete(k);
    for (auto& prefix : op.delete_prefixes) {
      std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
        batch.Delete(it->key());
    }
  }
  leveldb::WriteOptions wo;
  wo.sync = true;
  leveldb::Status s = db_->Write(wo, &batch);
  if (!s.ok()) {
    *error = "journal write failed: " + s.ToString();
    return false;
  }
  if (inject) {  // the data is in the log, yet the write reports failure
    *error = "journal write failed: injected fault after the write (" + o_.fault_file + ")";
    return false;
  }
  if (o_.crash_after_syncs >= 0) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stats_.syncs + 1 >= static_cast<std::uint64_t>(o_.crash_after_syncs)) {
      // Test crash point: synced, not yet acknowledged to anyone.
      ZG_LOG(kWarn, kLog, "crash point after-sync reached: SIGKILL");
      ::kill(getpid(), SIGKILL);
    }
  }
  // Give the space back after a purge.
  for (auto& op : group)
    for (auto& prefix : op.delete_prefixes) {
      std::string end = prefix;
      end.push_back('\xff');
      leveldb::Slice b(prefix), e(end);
      db_->CompactRange(&b, &e);
    }
  return true;
}

void Journal::mark_healthy() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    error_.clear();
  }
  healthy_.store(true);
  ZG_LOG(kInfo, kLog, "journal accepting requests again");
}

bool Journal::try_reopen() {
  // LevelDB fails every write after one failed write until it is reopened.
  if (!o_.fault_file.empty() && std::filesystem::exists(o_.fault_file)) return false;
  check_space();
  if (!space_ok_.load()) return false;
  std::unique_lock<std::shared_mutex> lock(db_mu_);
  delete db_;
  db_ = nullptr;
  leveldb::Status s = leveldb::DB::Open(db_options(false), dir_ + "/journal", &db_);
  if (!s.ok()) {
    ZG_LOG(kError, kLog, "reopening the journal failed: " + s.ToString());
    db_ = nullptr;
    return false;
  }
  ZG_LOG(kInfo, kLog, "journal reopened");
  // Still unhealthy: the reactor first reconciles with what the journal
  // holds, then calls mark_healthy(); until then every write fails.
  reopens_.fetch_add(1);
  return true;
}

void Journal::run(zmq::context_t* ctx, std::string endpoint) {
  zmq::socket_t notify(*ctx, zmq::socket_type::pair);
  notify.set(zmq::sockopt::linger, 0);
  notify.set(zmq::sockopt::sndhwm, 0);
  notify.connect(endpoint);
  auto send_completion = [&](std::uint64_t seq, bool ok, const std::string& err) {
    zmq::message_t m(9 + err.size());
    std::memcpy(m.data(), &seq, 8);
    m.data<char>()[8] = ok ? 1 : 0;
    if (!err.empty()) std::memcpy(m.data<char>() + 9, err.data(), err.size());
    try {
      notify.send(m, zmq::send_flags::none);
    } catch (const zmq::error_t&) {
    }
  };
  auto last_space_check = std::chrono::steady_clock::now();
  while (true) {
    std::vector<JournalOp> group;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stop_ || !queue_.empty(); });
      if (stop_ && queue_.empty()) break;
      // Group commit: everything waiting, up to the size limit. A purge goes
      // alone, after what precedes it, so its range scan sees their writes.
      std::size_t bytes = 0;
      while (!queue_.empty() && bytes < o_.max_group_bytes) {
        bool purge = !queue_.front().delete_prefixes.empty();
        if (purge && !group.empty()) break;
        bytes += queue_.front().bytes();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
        if (purge) break;
      }
    }
    auto now = std::chrono::steady_clock::now();
    if (now - last_space_check > std::chrono::seconds(1)) {
      last_space_check = now;
      check_space();
      if (!healthy_.load() && reopens_.load() == reopens_taken_.load()) try_reopen();
    }
    if (group.empty()) continue;
    std::string error;
    bool ok = healthy_.load() && db_ != nullptr;
    if (!ok) {
      std::lock_guard<std::mutex> lock(mu_);
      error = error_.empty() ? "journal unavailable" : error_;
    } else {
      ok = write_group(group, &error);
    }
    std::size_t bytes = 0;
    for (auto& op : group) bytes += op.bytes();
    backlog_.fetch_sub(bytes, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ok) {
        ++stats_.syncs;
        stats_.ops += group.size();
        stats_.bytes += bytes;
      } else {
        ++stats_.failures;
        if (error_.empty()) {
          error_ = error;
          ZG_LOG(kError, kLog, error + ": refusing new requests until the journal can be reopened");
        }
      }
    }
    if (!ok) healthy_.store(false);
    send_completion(group.back().seq, ok, error);
  }
}

}  // namespace zgrid::head
