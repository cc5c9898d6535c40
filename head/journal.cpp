#include "head/journal.hpp"

#include <fcntl.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/write_batch.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "common/crc32c.hpp"
#include "common/log.hpp"

namespace zgrid::head {

namespace {
constexpr const char* kLog = "journal";
constexpr std::size_t kMaxOpenSegments = 32;  // segment files kept open (an LRU)
constexpr int kLevelDbOpenFiles = 64;         // LevelDB's table cache: bounded descriptors
constexpr int kFdReserve = 16;                // descriptors kept for the journal alone

bool no_space_error(int err) {
  return err == ENOSPC || err == EDQUOT;
}
bool no_space_text(const std::string& s) {
  return JournalStore::is_no_space(s);
}

bool fd_short_text(const std::string& s) {
  return s.find("Too many open files") != std::string::npos;
}

// A LevelDB file that writes only while the fence allows.
// With `in_memory` (tests, JournalOptions::volatile_log, LevelDB's log
// only), what is appended stays in memory until Sync or Close: a SIGKILL
// loses every unsynced write, as a machine crash may.
class FencedFile : public leveldb::WritableFile {
 public:
  FencedFile(leveldb::WritableFile* f, const std::function<bool()>& may_write, bool in_memory)
      : f_(f), may_write_(may_write), in_memory_(in_memory) {}
  ~FencedFile() override {
    if (!held_.empty()) (void)f_->Append(held_);
  }
  leveldb::Status Append(const leveldb::Slice& data) override {
    if (!may_write_()) return fenced();
    if (in_memory_) {
      held_.append(data.data(), data.size());
      return leveldb::Status::OK();
    }
    return f_->Append(data);
  }
  leveldb::Status Close() override {  // a close writes nothing we keep
    if (!release().ok()) return fenced();
    return f_->Close();
  }
  leveldb::Status Flush() override {
    if (!may_write_()) return fenced();
    return in_memory_ ? leveldb::Status::OK() : f_->Flush();
  }
  leveldb::Status Sync() override {
    if (!may_write_()) return fenced();
    leveldb::Status s = release();
    return s.ok() ? f_->Sync() : s;
  }
  static leveldb::Status fenced() {
    return leveldb::Status::IOError("this head lost its lease (failover): not writing");
  }

 private:
  leveldb::Status release() {
    if (held_.empty()) return leveldb::Status::OK();
    leveldb::Status s = f_->Append(held_);
    held_.clear();
    return s.ok() ? f_->Flush() : s;
  }
  std::unique_ptr<leveldb::WritableFile> f_;
  const std::function<bool()>& may_write_;
  const bool in_memory_;
  std::string held_;
};

// LevelDB's default Env, with every file open retried through the
// descriptor reserve (head/journal_files.hpp), every write fenced by the
// lease (failover), and no LOCK file lock: the lease is what keeps one head
// writing. LevelDB's fcntl lock would stay with a frozen (SIGSTOPped) head on
// the same machine, and on NFS with a dead machine until the server's lock
// lease ran out (90 s by default), keeping the standby from opening.
class ReserveEnv : public leveldb::EnvWrapper {
 public:
  // `may_write` is asked before every write; `may_commit` (stronger, a stat)
  // before a file is made, renamed or removed — rare, and what a stale
  // head's background compaction would clash with.
  ReserveEnv(FdReserve& fds, std::function<bool()> may_write, std::function<bool()> may_commit,
             bool volatile_log)
      : EnvWrapper(leveldb::Env::Default()),
        fds_(fds),
        may_write_(std::move(may_write)),
        may_commit_(std::move(may_commit)),
        volatile_log_(volatile_log) {
    if (!may_write_) may_write_ = [] { return true; };
    if (!may_commit_) may_commit_ = may_write_;
  }
  leveldb::Status NewSequentialFile(const std::string& f, leveldb::SequentialFile** r) override {
    return retry([&] { return target()->NewSequentialFile(f, r); });
  }
  leveldb::Status NewRandomAccessFile(const std::string& f,
                                      leveldb::RandomAccessFile** r) override {
    return retry([&] { return target()->NewRandomAccessFile(f, r); });
  }
  leveldb::Status NewWritableFile(const std::string& f, leveldb::WritableFile** r) override {
    if (!may_commit_()) return FencedFile::fenced();
    return wrap(retry([&] { return target()->NewWritableFile(f, r); }), r, f);
  }
  leveldb::Status NewAppendableFile(const std::string& f, leveldb::WritableFile** r) override {
    if (!may_commit_()) return FencedFile::fenced();
    return wrap(retry([&] { return target()->NewAppendableFile(f, r); }), r, f);
  }
  leveldb::Status RemoveFile(const std::string& f) override {
    return may_commit_() ? target()->RemoveFile(f) : FencedFile::fenced();
  }
  leveldb::Status RenameFile(const std::string& from, const std::string& to) override {
    return may_commit_() ? target()->RenameFile(from, to) : FencedFile::fenced();
  }
  leveldb::Status CreateDir(const std::string& d) override {
    return may_write_() ? target()->CreateDir(d) : FencedFile::fenced();
  }
  leveldb::Status RemoveDir(const std::string& d) override {
    return may_write_() ? target()->RemoveDir(d) : FencedFile::fenced();
  }
  leveldb::Status GetChildren(const std::string& d, std::vector<std::string>* r) override {
    return retry([&] { return target()->GetChildren(d, r); });
  }
  leveldb::Status LockFile(const std::string&, leveldb::FileLock** l) override {
    *l = new leveldb::FileLock();
    return leveldb::Status::OK();
  }
  leveldb::Status UnlockFile(leveldb::FileLock* l) override {
    delete l;
    return leveldb::Status::OK();
  }
  leveldb::Status NewLogger(const std::string& f, leveldb::Logger** r) override {
    return retry([&] { return target()->NewLogger(f, r); });
  }

 private:
  leveldb::Status wrap(leveldb::Status s, leveldb::WritableFile** r, const std::string& name) {
    if (s.ok()) *r = new FencedFile(*r, may_write_, volatile_log_ && name.ends_with(".log"));
    return s;
  }
  // LevelDB reports EMFILE as an IOError whose text is strerror's.
  leveldb::Status retry(const std::function<leveldb::Status()>& op) {
    while (true) {
      leveldb::Status s = op();
      if (s.ok() || !fd_short_text(s.ToString()) || !fds_.give_one()) return s;
    }
  }
  FdReserve& fds_;
  std::function<bool()> may_write_;
  std::function<bool()> may_commit_;
  const bool volatile_log_;
};
std::unique_ptr<leveldb::Env> make_reserve_env(FdReserve& fds, std::function<bool()> may_write,
                                               std::function<bool()> may_commit = {},
                                               bool volatile_log = false) {
  return std::make_unique<ReserveEnv>(fds, std::move(may_write), std::move(may_commit),
                                      volatile_log);
}

// LevelDB's info log, into zgrid's log instead of DIR/journal/LOG (which
// grew by about 4 KB a purge and was never rotated while the head ran):
// debug lines, those that tell of an error or corruption as warnings. The
// debug lines are rate-limited (at most kLinesPerSecond a second, the rest
// counted and the count said once the second is over); warnings are rare
// and never left out. Called from LevelDB's threads.
class LevelDbLog : public leveldb::Logger {
 public:
  void Logv(const char* format, std::va_list ap) override {
    char buf[512];
    int n = std::vsnprintf(buf, sizeof buf, format, ap);
    if (n < 0) return;
    std::string_view line(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
    while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (is_warning(line)) {
      if (log::enabled(log::Level::kWarn)) log::write(log::Level::kWarn, "leveldb", line);
      return;
    }
    if (!log::enabled(log::Level::kDebug)) return;
    std::uint64_t dropped = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto now = std::chrono::steady_clock::now();
      if (now - window_ >= std::chrono::seconds(1)) {
        dropped = dropped_;
        dropped_ = 0;
        lines_ = 0;
        window_ = now;
      }
      if (++lines_ > kLinesPerSecond) {
        ++dropped_;
        return;
      }
    }
    if (dropped > 0)
      log::write(log::Level::kDebug, "leveldb",
                 std::to_string(dropped) + " lines left out (rate limit)");
    log::write(log::Level::kDebug, "leveldb", line);
  }
  // A line that tells of an error or corruption.
  static bool is_warning(std::string_view line) {
    return line.find("rror") != std::string_view::npos ||
           line.find("orrupt") != std::string_view::npos;
  }

 private:
  static constexpr std::uint64_t kLinesPerSecond = 20;
  std::mutex mu_;
  std::chrono::steady_clock::time_point window_{};
  std::uint64_t lines_ = 0, dropped_ = 0;
};

}  // namespace

std::unique_ptr<leveldb::Logger> make_leveldb_info_log() {
  return std::make_unique<LevelDbLog>();
}

namespace {

// The same LevelDB settings at open and at every reopen. Bulk values live in
// segment files: LevelDB holds keys, pointers and small records only.
leveldb::Options db_options(bool create, leveldb::Env* env, leveldb::Logger* info_log) {
  leveldb::Options lo;
  lo.create_if_missing = create;
  lo.env = env;
  lo.info_log = info_log;
  lo.write_buffer_size = 16 << 20;
  lo.max_file_size = 8 << 20;
  lo.max_open_files = kLevelDbOpenFiles;
  lo.compression = leveldb::kNoCompression;
  return lo;
}

// A write that gives space back or records a change of state: on a full
// disk it may use the reserve.
bool is_maintenance(const JournalOp& op) {
  return op.maintenance || !op.purge_session.empty() || !op.delete_prefixes.empty();
}

// Whether `op` writes a key of a session in `sids`.
bool touches(const JournalOp& op, const std::unordered_set<std::string>& sids) {
  auto in = [&](std::string_view key) {
    std::string_view sid = jkey::sid_of(key);
    return !sid.empty() && sids.count(std::string(sid)) > 0;
  };
  for (const auto& [k, v] : op.puts)
    if (in(k)) return true;
  for (const auto& k : op.deletes)
    if (in(k)) return true;
  for (const auto& k : op.delete_prefixes)
    if (in(k)) return true;
  return !op.purge_session.empty() && sids.count(op.purge_session) > 0;
}
}  // namespace

// ---- open ------------------------------------------------------------------------

Journal::Journal() = default;

Result<std::unique_ptr<Journal>> Journal::open(const std::string& data_dir, zmq::context_t& ctx,
                                               const JournalOptions& options) {
  std::unique_ptr<Journal> j(new Journal());
  // Completions come back on an inproc PAIR whose endpoint is unique to this
  // journal: numbered, not named by its address, which a journal opened after
  // this one closed may get while the old endpoint is still being unbound.
  static std::atomic<std::uint64_t> journals{0};
  std::string notify_endpoint =
      "inproc://zgrid-journal-" + std::to_string(getpid()) + "-" + std::to_string(++journals);
  j->notify_ = zmq::socket_t(ctx, zmq::socket_type::pair);
  j->notify_.set(zmq::sockopt::linger, 0);
  j->notify_.set(zmq::sockopt::rcvhwm, 0);
  j->notify_.bind(notify_endpoint);
  j->dir_ = data_dir;
  j->o_ = options;
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec)
    return Status::Unavailable("cannot create data directory " + data_dir + ": " + ec.message());

  // One head per data directory: the caller holds its lease (head/lease.hpp),
  // and every write below asks o_.may_write.
  j->fds_ = std::make_unique<FdReserve>(kFdReserve);
  j->env_ = make_reserve_env(*j->fds_, options.may_write, options.may_commit, options.volatile_log);
  j->info_log_ = make_leveldb_info_log();
  j->segments_ = std::make_unique<Segments>(data_dir + "/segments", *j->fds_, kMaxOpenSegments,
                                            options.takeover_gap_bytes);
  ZG_RETURN_IF_ERROR(j->segments_->init());

  // The disk reserve: made when there is room, released to open on a full disk.
  j->reserve_present_ = std::filesystem::exists(data_dir + "/reserve");
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(db_options(true, j->env_.get(), j->info_log_.get()),
                                        data_dir + "/journal", &raw);
  if (!s.ok() && no_space_text(s.ToString()) && j->reserve_present_) {
    j->release_reserve("to open the journal on a full disk");
    s = leveldb::DB::Open(db_options(true, j->env_.get(), j->info_log_.get()),
                          data_dir + "/journal", &raw);
  }
  j->db_.reset(raw);
  if (!s.ok())
    return Status::Unavailable("cannot open journal in " + data_dir + ": " + s.ToString() +
                               (no_space_text(s.ToString()) && !j->reserve_present_
                                    ? " (the disk reserve is used up: free some space)"
                                    : ""));

  std::string v;
  s = j->db_->Get(leveldb::ReadOptions(), jkey::meta("version"), &v);
  leveldb::WriteOptions wo;
  wo.sync = true;
  // The salt of redo records' checksums: random, made with the v4 mark.
  leveldb::Status salt_s = j->db_->Get(leveldb::ReadOptions(), jkey::meta("salt"), &j->salt_);
  if (!salt_s.ok() && !salt_s.IsNotFound())
    return Status::Unavailable("cannot read the journal: " + salt_s.ToString());
  leveldb::WriteBatch mark;
  if (salt_s.IsNotFound()) {
    std::random_device rd;
    j->salt_.clear();
    for (int i = 0; i < 4; ++i) {
      std::uint32_t r = rd();
      j->salt_.append(reinterpret_cast<const char*>(&r), 4);
    }
    mark.Put(jkey::meta("salt"), j->salt_);
  }
  if (s.IsNotFound()) {
    mark.Put(jkey::meta("version"), std::to_string(kJournalVersion));
    s = j->db_->Write(wo, &mark);
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
    if (ver < kJournalVersion) {
      // v1 holds bulk values inline, which later formats read as they are;
      // v1 and v2 hold no 'M' records, v1 to v3 no redo records. Marking it
      // current is the whole migration (and keeps older heads from
      // misreading it).
      std::string to = std::to_string(kJournalVersion);
      if (ver < 4) {
        // Every append of v4 ends with a trailer, so that open can tell a
        // torn last append from a whole one: the files of older heads get
        // one.
        if (Status st = mark_segments(data_dir + "/segments", j->salt_); !st.ok())
          return Status::Unavailable("cannot migrate journal to v" + to + ": " + st.message());
      }
      mark.Put(jkey::meta("version"), to);
      s = j->db_->Write(wo, &mark);
      if (!s.ok())
        return Status::Unavailable("cannot migrate journal to v" + to + ": " + s.ToString());
      ZG_LOG(kInfo, kLog,
             "journal in " + data_dir + " migrated from format v" + std::to_string(ver) + " to v" +
                 to);
    } else if (mark.ApproximateSize() > leveldb::WriteBatch().ApproximateSize()) {
      s = j->db_->Write(wo, &mark);
      if (!s.ok()) return Status::Unavailable("cannot write to the journal: " + s.ToString());
    }
  }
  // Before anything reads the journal: the groups LevelDB may have lost in a
  // crash, from their redo records.
  if (Status st = replay_redo(j->db_.get(), data_dir, j->salt_, &j->group_seq_); !st.ok())
    return st;
  j->check_space(true);
  j->thread_ = std::thread(&Journal::run, j.get(), &ctx, notify_endpoint);
  j->compactor_ = std::thread(&Journal::compact_loop, j.get());
  return j;
}

Journal::~Journal() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  compact_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (compactor_.joinable()) compactor_.join();
  db_.reset();
}

std::uint64_t Journal::submit(JournalOp op) {
  std::uint64_t seq;
  {
    MutexLock lock(mu_);
    seq = op.seq = ++next_seq_;
    backlog_.fetch_add(op.bytes(), std::memory_order_relaxed);
    queue_.push_back(std::move(op));
  }
  cv_.notify_one();
  return seq;
}

bool Journal::amend(std::uint64_t seq, std::vector<std::pair<std::string, std::string>>& puts) {
  MutexLock lock(mu_);
  // The op is recent: look from the back. Ops leave the queue, under this
  // lock, when the journal thread takes them into a group.
  for (auto it = queue_.rbegin(); it != queue_.rend() && it->seq >= seq; ++it) {
    if (it->seq != seq) continue;
    std::size_t before = it->bytes();
    for (auto& kv : puts) it->puts.push_back(std::move(kv));
    backlog_.fetch_add(it->bytes() - before, std::memory_order_relaxed);
    return true;
  }
  return false;
}

std::string Journal::health_reason() const {
  if (!space_ok_.load())
    return "free space in " + dir_ + " is below the watermark (" +
           std::to_string(o_.min_free_bytes >> 20) + " MiB" +
           (reserve_present_ || o_.reserve_bytes == 0
                ? std::string()
                : " plus the " + std::to_string(o_.reserve_bytes >> 20) + " MiB disk reserve") +
           ")";
  MutexLock lock(mu_);
  return error_.empty() ? "ok" : error_;
}

JournalStats Journal::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

bool Journal::decode_completion(const zmq::message_t& m, JournalCompletion* c) {
  if (m.size() < 9) return false;
  std::memcpy(&c->seq, m.data(), 8);
  c->ok = m.data<char>()[8] != 0;
  c->error.assign(m.data<char>() + 9, m.size() - 9);
  return true;
}

std::vector<JournalCompletion> Journal::take_completions() {
  std::vector<JournalCompletion> out;
  for (int i = 0; i < 1024; ++i) {
    zmq::message_t m;
    if (!notify_.recv(m, zmq::recv_flags::dontwait)) break;
    JournalCompletion c;
    if (decode_completion(m, &c)) out.push_back(std::move(c));
  }
  return out;
}

void Journal::reconciled(std::uint64_t reopens) {
  reopens_taken_.store(reopens);
  mark_healthy();
}

// ---- reads -----------------------------------------------------------------------

Status Journal::resolve(std::string_view key, std::string_view stored, std::string* out) const {
  SegPtr p;
  if (!jkey::is_bulk(key) || !SegPtr::decode(stored, &p)) {
    out->assign(stored);  // small record, or a v1 inline bulk value
    return Status::OK();
  }
  if (!o_.read_fault_file.empty() && std::filesystem::exists(o_.read_fault_file))
    return Status::Unavailable("cannot read segment of session " + std::string(jkey::sid_of(key)) +
                               ": injected read fault (" + o_.read_fault_file + ")");
  return segments_->read(jkey::sid_of(key), p, out);
}

Status Journal::get(std::string_view key, std::string* value) const {
  std::shared_lock<std::shared_mutex> lock(db_mu_);
  if (db_ == nullptr) return Status::Unavailable("the journal is being reopened");
  std::string stored;
  leveldb::Status s =
      db_->Get(leveldb::ReadOptions(), leveldb::Slice(key.data(), key.size()), &stored);
  if (s.IsNotFound()) return Status::NotFound("no such journal record");
  if (s.IsCorruption()) return Status::DataLoss("journal record unreadable: " + s.ToString());
  if (!s.ok()) return Status::Unavailable("cannot read the journal: " + s.ToString());
  return resolve(key, stored, value);
}

Journal::Cursor::Cursor(const Journal& j, std::string prefix)
    : j_(j), lock_(j.db_mu_), prefix_(std::move(prefix)) {
  if (j.db_ != nullptr) it_.reset(j.db_->NewIterator(leveldb::ReadOptions()));
}
Journal::Cursor::~Cursor() = default;

std::unique_ptr<JournalCursor> Journal::cursor(std::string prefix) const {
  std::unique_ptr<Cursor> c(new Cursor(*this, std::move(prefix)));
  if (!c->it_) return nullptr;
  return c;
}

bool Journal::Cursor::raw_valid() const {
  return it_->Valid();
}
bool Journal::Cursor::valid() const {
  return it_->Valid() && it_->key().starts_with(leveldb::Slice(prefix_));
}
void Journal::Cursor::seek(std::string_view key) {
  it_->Seek(leveldb::Slice(key.data(), key.size()));
}
void Journal::Cursor::seek_to_last() {
  it_->SeekToLast();
}
void Journal::Cursor::next() {
  it_->Next();
}
void Journal::Cursor::prev() {
  it_->Prev();
}
std::string_view Journal::Cursor::key() const {
  return std::string_view(it_->key().data(), it_->key().size());
}
Status Journal::Cursor::value(std::string_view* out) {
  std::string_view stored(it_->value().data(), it_->value().size());
  if (!it_->status().ok()) return Status::DataLoss("journal record unreadable");
  SegPtr p;
  if (!jkey::is_bulk(key()) || !SegPtr::decode(stored, &p)) {
    *out = stored;
    return Status::OK();
  }
  ZG_RETURN_IF_ERROR(j_.resolve(key(), stored, &buf_));
  *out = buf_;
  return Status::OK();
}

void Journal::remove_orphan_segments(const std::function<bool(std::string_view sid)>& live) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(segments_->dir(), ec)) {
    std::string name = e.path().filename().string();
    if (name.size() != kSessionIdLength + 4 || name.compare(kSessionIdLength, 4, ".seg") != 0)
      continue;
    std::string_view sid(name.data(), kSessionIdLength);
    if (live(sid)) continue;
    if (o_.may_commit && !o_.may_commit()) return;  // fenced: the files may be another head's now
    ZG_LOG(kInfo, kLog, "removing the segment file of purged session " + std::string(sid));
    segments_->remove(sid);
  }
}

Status Journal::purge_offline(const std::string& data_dir, const std::string& sid,
                              const std::function<bool()>& may_write) {
  if (sid.size() != kSessionIdLength)
    return Status::InvalidArgument("a session id has 32 characters");
  if (!std::filesystem::exists(data_dir + "/journal/CURRENT"))
    return Status::NotFound("no journal in " + data_dir);
  // The caller holds the lease (head/lease.hpp): no head is writing.
  if (std::filesystem::exists(data_dir + "/reserve")) {
    std::error_code ec;
    std::filesystem::remove(data_dir + "/reserve", ec);  // room for the deletions; remade at start
  }
  leveldb::DB* raw = nullptr;
  LevelDbLog info_log;
  FdReserve fds(0);
  std::unique_ptr<leveldb::Env> env = make_reserve_env(fds, may_write);
  leveldb::Options lo = db_options(false, env.get(), &info_log);
  leveldb::Status s = leveldb::DB::Open(lo, data_dir + "/journal", &raw);
  if (!s.ok())
    return Status::Unavailable("cannot open journal in " + data_dir + ": " + s.ToString());
  std::unique_ptr<leveldb::DB> db(raw);
  // Groups LevelDB lost in a crash first: one may hold keys of this session
  // (in another session's file), which the purge must delete too.
  std::string salt;
  if (db->Get(leveldb::ReadOptions(), jkey::meta("salt"), &salt).ok()) {
    std::uint64_t last = 0;
    ZG_RETURN_IF_ERROR(replay_redo(db.get(), data_dir, salt, &last));
  }
  leveldb::WriteBatch batch;
  std::size_t keys = 0;
  for (char kind : jkey::kSessionKinds) {
    std::string prefix = jkey::session(kind, sid);
    std::unique_ptr<leveldb::Iterator> it(db->NewIterator(leveldb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next(), ++keys)
      batch.Delete(it->key());
  }
  batch.Put(jkey::session(jkey::kTombstone, sid), encode_tombstone(std::time(nullptr)));
  leveldb::WriteOptions wo;
  wo.sync = true;
  s = db->Write(wo, &batch);
  if (!s.ok()) return Status::Unavailable("cannot write the purge: " + s.ToString());
  std::error_code ec;
  std::filesystem::remove(data_dir + "/segments/" + sid + ".seg", ec);
  ZG_LOG(kInfo, kLog, "purged session " + sid + " offline (" + std::to_string(keys) + " keys)");
  return Status::OK();
}

// ---- space -----------------------------------------------------------------------

void Journal::release_reserve(const char* why) {
  if (o_.may_write && !o_.may_write()) return;
  std::error_code ec;
  if (!std::filesystem::remove(dir_ + "/reserve", ec) && ec) return;
  if (reserve_present_)
    ZG_LOG(kWarn, kLog,
           std::string("disk full: released the ") + std::to_string(o_.reserve_bytes >> 20) +
               " MiB disk reserve " + why);
  reserve_present_ = false;
}

void Journal::restore_reserve(std::uint64_t avail) {
  if (reserve_present_ || o_.reserve_bytes == 0) return;
  if (o_.may_write && !o_.may_write()) return;
  if (avail < o_.reserve_bytes + o_.min_free_bytes) return;  // taking it would pass the watermark
  std::string p = dir_ + "/reserve";
  int fd = fds_->open_with_reserve(
      [&] { return ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600); });
  if (fd < 0) return;
  int rc = posix_fallocate(fd, 0, static_cast<off_t>(o_.reserve_bytes));
  if (rc == 0) rc = fsync(fd);
  ::close(fd);
  if (rc != 0) {
    std::error_code ec;
    std::filesystem::remove(p, ec);
    return;
  }
  reserve_present_ = true;
  ZG_LOG(kInfo, kLog,
         "disk reserve of " + std::to_string(o_.reserve_bytes >> 20) + " MiB in place in " + dir_);
}

void Journal::check_space(bool at_start) {
  struct statvfs st;
  if (statvfs(dir_.c_str(), &st) != 0) return;
  std::uint64_t avail = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  restore_reserve(avail);
  if (statvfs(dir_.c_str(), &st) == 0)
    avail = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  // A missing reserve counts as used space: new work must leave room for it.
  std::uint64_t need = o_.min_free_bytes + (reserve_present_ ? 0 : o_.reserve_bytes);
  bool ok = avail >= need;
  if (at_start && !ok) {
    // Refused from the first second: say why, once, with what to change.
    auto size = [](std::uint64_t b) {
      return b >= (1u << 20) ? std::to_string(b >> 20) + " MiB" : std::to_string(b >> 10) + " KiB";
    };
    ZG_LOG(kWarn, kLog,
           "starting with " + size(avail) + " free in " + dir_ + ", below --min-free-space (" +
               size(o_.min_free_bytes) + ") plus --disk-reserve (" + size(o_.reserve_bytes) +
               (reserve_present_ ? ", held in " + dir_ + "/reserve" : ", not yet in place") +
               "): every new durable request is refused (\"the journal's disk is full\") until "
               "space is freed; free space, or lower --disk-reserve (0: none) or "
               "--min-free-space");
  } else if (ok != space_ok_.load())
    log::write(ok ? log::Level::kInfo : log::Level::kError, kLog,
               ok ? "free space back above the watermark in " + dir_
                  : "free space below the watermark in " + dir_ + ": new requests refused");
  space_ok_.store(ok);
  fds_->refill();
}

// ---- writes ----------------------------------------------------------------------

bool Journal::Group::maintenance() const {
  for (const auto& op : ops)
    if (!is_maintenance(op)) return false;
  return !ops.empty();
}

// First part of a group's write: its bulk values go to their sessions'
// segment files, one pwrite and one fdatasync per file, before LevelDB holds
// a pointer to them. Here each such put's value becomes its pointer (commit()
// puts them in the batch) and the bytes are gathered; write_bulk() writes
// them.
void Journal::prepare_bulk(Group& g) {
  g.batch = std::make_unique<leveldb::WriteBatch>();
  if ((o_.may_commit && !o_.may_commit()) || (o_.may_write && !o_.may_write())) {
    g.failed = true;
    g.error = std::string("journal write failed: ") + FencedFile::fenced().ToString();
    return;
  }
  if (!o_.fault_file.empty() && std::filesystem::exists(o_.fault_file) && !o_.fault_after_write) {
    g.failed = true;
    g.error = "journal write failed: injected fault (" + o_.fault_file + ")";
    return;
  }
  // Each session's bulk bytes in this group: small ones stay inline.
  std::map<std::string_view, std::size_t> bulk_bytes;
  for (auto& op : g.ops)
    for (auto& [k, v] : op.puts)
      if (jkey::is_bulk(k)) bulk_bytes[jkey::sid_of(k)] += v.size();
  for (auto& op : g.ops) {
    for (auto& [k, v] : op.puts) {
      // Inline values never look like a pointer: msgpack never starts with
      // SegPtr::kTag (0xc1), so resolve() tells them apart (as for v1).
      if (!jkey::is_bulk(k) || bulk_bytes[jkey::sid_of(k)] <= o_.inline_max) continue;
      auto sid = jkey::sid_of(k);
      auto it = g.appends.find(sid);
      if (it == g.appends.end()) {
        auto f = segments_->open(sid, true);
        if (!f.ok()) {
          g.failed = true;
          g.error = "journal write failed: " + f.status().message();
          g.no_space = no_space_text(g.error);
          return;
        }
        it = g.appends.emplace(std::string(sid), Append{*f, (*f)->end, {}}).first;
      }
      Append& a = it->second;
      SegPtr p{a.start + a.bytes.size(), static_cast<std::uint32_t>(v.size()), crc32c(v)};
      a.bytes += v;
      v = p.encode();
    }
  }
}

void Journal::write_bulk(Group& g) {
  for (auto& [sid, a] : g.appends) {
    std::size_t done = 0;
    int err = 0;
    while (done < a.bytes.size()) {
      if (o_.may_write && !o_.may_write()) {
        err = EROFS;  // fenced (failover): nothing more is written
        break;
      }
      ssize_t n = ::pwrite(a.file->fd, a.bytes.data() + done, a.bytes.size() - done,
                           static_cast<off_t>(a.start + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? errno : EIO;
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    if (err == 0) {
      if (::fdatasync(a.file->fd) != 0) err = errno;
      MutexLock lock(mu_);
      ++stats_.file_syncs;
    }
    if (err != 0) {
      // Nothing points at these bytes (nor is a redo record among them
      // durable): give the space back. A file that held nothing before goes
      // (no empty segment is left behind). Not when fenced: another head may
      // be appending to these files now, and bytes nothing points to are
      // harmless.
      bool fenced = o_.may_write && !o_.may_write();
      for (auto& [s2, a2] : g.appends) {
        if (fenced) break;
        if (a2.start == 0)
          segments_->remove(s2);
        else
          (void)!::ftruncate(a2.file->fd, static_cast<off_t>(a2.start));
      }
      g.failed = true;
      g.error = "journal write failed: segment of session " + sid + ": " + std::strerror(err);
      g.no_space = no_space_error(err);
      return;
    }
  }
  for (auto& [sid, a] : g.appends) a.file->end = a.start + a.bytes.size();
}

namespace {
// A WriteBatch's ops as a redo record's body.
class RedoWriter : public leveldb::WriteBatch::Handler {
 public:
  explicit RedoWriter(std::string* out) : out_(out) {}
  void Put(const leveldb::Slice& k, const leveldb::Slice& v) override {
    Redo::add_put(out_, std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()));
  }
  void Delete(const leveldb::Slice& k) override {
    Redo::add_delete(out_, std::string_view(k.data(), k.size()));
  }

 private:
  std::string* out_;
};
}  // namespace

Status Journal::replay_redo(leveldb::DB* db, const std::string& data_dir, std::string_view salt,
                            std::uint64_t* last) {
  std::string v;
  leveldb::Status s = db->Get(leveldb::ReadOptions(), jkey::meta("group"), &v);
  if (!s.ok() && !s.IsNotFound())
    return Status::Unavailable("cannot read the journal: " + s.ToString());
  std::uint64_t floor = s.ok() ? std::strtoull(v.c_str(), nullptr, 10) : 0;
  *last = floor;
  auto t0 = std::chrono::steady_clock::now();
  RedoScan scan = scan_redo(data_dir + "/segments", salt, floor);
  std::sort(scan.found.begin(), scan.found.end(),
            [](const FoundRedo& a, const FoundRedo& b) { return a.seq < b.seq; });
  // The groups after the last synced one that recorded its number (every
  // synced group after a redo group does) are some synced groups, then
  // groups that made themselves durable by a redo record, one after the
  // other: the records found are one run of numbers. Past a gap (a group
  // whose record was torn: never acknowledged, and nothing after it was
  // written) nothing is applied. Groups LevelDB did keep are applied again:
  // their ops are plain puts and deletes, and applying all of them in order
  // ends in the same state whichever of them LevelDB kept (its log may lose
  // a write in the middle of its unsynced tail, not only at its end).
  leveldb::WriteBatch batch;
  std::size_t applied = 0;
  std::uint64_t skip_to = 0;  // past a gap: the floor goes above what is left out
  for (const FoundRedo& r : scan.found) {
    if (applied > 0 && r.seq != *last + 1) {
      ZG_LOG(kWarn, kLog,
             "journal group " + std::to_string(r.seq) + " (segment file of session " + r.sid +
                 ") follows a group that was never written (" + std::to_string(*last + 1) +
                 "): it and the groups after it ignored, as never committed");
      skip_to = scan.found.back().seq;
      break;
    }
    bool ok = Redo::for_each(r.body, [&](bool is_put, std::string_view k, std::string_view val) {
      if (is_put)
        batch.Put(leveldb::Slice(k.data(), k.size()), leveldb::Slice(val.data(), val.size()));
      else
        batch.Delete(leveldb::Slice(k.data(), k.size()));
    });
    if (!ok) break;  // checked by its checksum: not reached
    *last = r.seq;
    ++applied;
  }
  if (applied == 0) return Status::OK();
  // New groups are numbered from here: never as a record left out, which a
  // later open would otherwise take for theirs.
  *last = std::max(*last, skip_to);
  batch.Put(jkey::meta("group"), std::to_string(*last));
  leveldb::WriteOptions wo;
  wo.sync = true;
  s = db->Write(wo, &batch);
  if (!s.ok()) {
    *last = floor;
    return Status::Unavailable("cannot apply the journal's redo records: " + s.ToString());
  }
  ZG_LOG(kInfo, kLog,
         "applied " + std::to_string(applied) + " write groups from redo records (" +
             std::to_string(scan.files) + " segment files looked at in " +
             std::to_string(
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) +
             " s)");
  return Status::OK();
}

// Then the batch, op by op in the order submitted, each op's deletes before
// its puts (as if each op were written alone: a later op's put of a key an
// earlier op deleted stays); then the segment files (write_bulk); then the
// LevelDB write; then the space a purge or a client removal gives back.
//
// One synced write per group: a group whose bulk values all go to one
// segment file and that is not maintenance carries its batch's ops as a
// redo record at the end of that file's append (in the same pwrite, synced
// by the same fdatasync), and its LevelDB write is not synced: LevelDB may
// lose it in a crash, and open applies the record again (replay_redo). Any
// other group (no segment data, two files or more, maintenance, or the
// kMaxRedoGroups-th in a row) is written with sync=true, which also makes
// every earlier unsynced LevelDB write durable (LevelDB's log is one
// sequential file), and records its number ('\0' + "group"): the floor of
// the next replay. So before a purge deletes a file or a client removal
// punches one (both maintenance), LevelDB holds every redo record in it.
// After a failed LevelDB write the appended bytes stay: a reopen replays
// the redo record or the pointers to them.
//
// A purge deletes its session's ranges as they were before this group (one
// iterator serves every purge of the group) and the keys ops before it in
// the group put there.
// Its ranges are not compacted here: a CompactRange per purge flushed the
// memtable each time and cost more the bigger the journal (24 purges a
// second at 10,000 sessions, every other write waiting behind them).
// LevelDB's own compaction, and the compactor thread after many purges,
// drop the deleted keys (compact_loop).
bool Journal::commit(Group& g) {
  prepare_bulk(g);
  if (g.failed) return false;
  std::vector<std::pair<std::string, SegPtr>> holes;  // deleted bulk values
  std::unique_ptr<leveldb::Iterator> it;
  // Keys put by this group, by session (only when it purges).
  std::unordered_map<std::string_view, std::vector<std::string_view>> put_by_sid;
  for (auto& op : g.ops)
    if (!op.delete_prefixes.empty()) {
      for (auto& o : g.ops)
        for (auto& [k, v] : o.puts)
          if (auto sid = jkey::sid_of(k); !sid.empty()) put_by_sid[sid].push_back(k);
      break;
    }
  std::uint64_t purges = 0;
  for (auto& op : g.ops) {
    for (auto& k : op.deletes) {
      std::string stored;
      SegPtr p;
      if (jkey::is_bulk(k) && db_->Get(leveldb::ReadOptions(), k, &stored).ok() &&
          SegPtr::decode(stored, &p))
        holes.emplace_back(std::string(jkey::sid_of(k)), p);
      g.batch->Delete(k);
    }
    for (auto& prefix : op.delete_prefixes) {
      if (!it) it.reset(db_->NewIterator(leveldb::ReadOptions()));
      for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
        g.batch->Delete(it->key());
      if (auto f = put_by_sid.find(jkey::sid_of(prefix)); f != put_by_sid.end())
        for (std::string_view k : f->second)
          if (k.starts_with(prefix)) g.batch->Delete(leveldb::Slice(k.data(), k.size()));
    }
    for (auto& [k, v] : op.puts) g.batch->Put(k, v);
    if (!op.purge_session.empty()) ++purges;
  }
  it.reset();
  std::uint64_t seq = ++group_seq_;
  g.redo = g.appends.size() == 1 && redo_in_row_ + 1 < kMaxRedoGroups &&
           std::none_of(g.ops.begin(), g.ops.end(), is_maintenance);
  if (g.redo) {
    Append& a = g.appends.begin()->second;
    std::size_t body_at = a.bytes.size();
    RedoWriter w(&a.bytes);
    (void)g.batch->Iterate(&w);
    Redo::seal(&a.bytes, body_at, seq, a.start, salt_);
  } else {
    // A marker (a trailer with no body) ends every other append: a file's
    // last append lacks a trailer only when a crash cut it short.
    for (auto& [sid, a] : g.appends) Redo::seal(&a.bytes, a.bytes.size(), seq, a.start, salt_);
  }
  if (!g.redo && redo_in_row_ > 0) {
    // The floor of the next replay. Only after redo groups: a key put by
    // every group would widen every LevelDB table it lands in to '\0', and
    // the compactor's per-session ranges would then rewrite them all.
    g.batch->Put(jkey::meta("group"), std::to_string(seq));
  }
  write_bulk(g);
  if (g.failed) return false;
  if (g.redo && o_.crash_after_segment_syncs >= 0) {
    MutexLock lock(mu_);
    if (stats_.redo_groups + 1 >= static_cast<std::uint64_t>(o_.crash_after_segment_syncs)) {
      // Test crash point: durable in its segment file, not in LevelDB.
      ZG_LOG(kWarn, kLog, "crash point after-segment-sync reached: SIGKILL");
      ::kill(getpid(), SIGKILL);
    }
  }
  bool inject = !o_.fault_file.empty() && std::filesystem::exists(o_.fault_file);
  leveldb::WriteOptions wo;
  wo.sync = !g.redo;
  leveldb::Status s = db_->Write(wo, g.batch.get());
  {
    MutexLock lock(mu_);
    if (g.redo)
      ++stats_.redo_groups;
    else
      ++stats_.db_syncs;
  }
  redo_in_row_ = g.redo ? redo_in_row_ + 1 : 0;
  if (!s.ok()) {
    g.error = "journal write failed: " + s.ToString();
    g.no_space = no_space_text(g.error);
    return false;
  }
  if (inject) {  // the data is in the log, yet the write reports failure
    g.error = "journal write failed: injected fault after the write (" + o_.fault_file + ")";
    return false;
  }
  if (o_.crash_after_syncs >= 0) {
    MutexLock lock(mu_);
    if (stats_.syncs + 1 >= static_cast<std::uint64_t>(o_.crash_after_syncs)) {
      // Test crash point: synced, not yet acknowledged to anyone.
      ZG_LOG(kWarn, kLog, "crash point after-sync reached: SIGKILL");
      ::kill(getpid(), SIGKILL);
    }
  }
  for (auto& op : g.ops)
    if (!op.purge_session.empty()) segments_->remove(op.purge_session);
  for (auto& [sid, p] : holes) segments_->punch(sid, p);
  if (purges > 0) {
    MutexLock lock(mu_);
    purged_since_compaction_ += purges;
    for (auto& op : g.ops) {
      if (op.purge_session.empty() || compact_all_) continue;
      if (compact_sids_.size() < kMaxCompactSessions)
        compact_sids_.push_back(op.purge_session);
      else
        compact_all_ = true;
    }
    if (purged_since_compaction_ >= o_.compact_after_purges) compact_cv_.notify_all();
  }
  return true;
}

// The compactor: once compact_after_purges sessions were purged since the
// last pass (or fewer, after a quiet compact_quiet), it compacts the purged
// sessions' ranges, off the journal thread, so that scans stop stepping over
// deleted keys (LevelDB keeps them until a compaction reaches them). One
// range at a time, each under the read lock taken for it alone: between two
// ranges it stops for a closing journal (the destructor waits for one range
// at most), for a reopen that wants the lock and when space runs short (a
// compaction writes before it frees); what it did not do goes back for the
// next pass. At most one pass every compact_min_interval. Only the purged
// sessions' ranges: a pass over every kind rewrote every live session's data
// too, a journal of gigabytes each minute for one purge a minute.
void Journal::compact_loop() {
  using Clock = std::chrono::steady_clock;
  auto last = Clock::now() - o_.compact_min_interval;
  auto last_purge = Clock::now();
  std::uint64_t seen = 0;
  auto tick = std::min<std::chrono::milliseconds>(
      std::chrono::seconds(1),
      std::max<std::chrono::milliseconds>(std::chrono::milliseconds(10), o_.compact_quiet / 4));
  while (true) {
    std::uint64_t purged;
    {
      MutexLock lock(mu_);
      if (stop_) break;
      compact_cv_.wait_for(lock, tick);
      if (stop_) break;
      purged = purged_since_compaction_;
    }
    auto now = Clock::now();
    if (purged != seen) last_purge = now;
    seen = purged;
    bool due =
        purged >= o_.compact_after_purges || (purged > 0 && now - last_purge >= o_.compact_quiet);
    if (!due || now - last < o_.compact_min_interval || space_short() || reopen_wanted_.load())
      continue;
    std::vector<std::string> sids;
    bool all;
    {
      MutexLock lock(mu_);
      sids.swap(compact_sids_);
      all = compact_all_;
      compact_all_ = false;
      purged_since_compaction_ -= purged;
      seen = purged_since_compaction_;
    }
    // The kinds a purge deletes; 'T' (tombstones) and metadata stay.
    constexpr auto kKinds = jkey::kSessionKinds;
    std::vector<std::pair<std::string, std::string>> ranges;
    if (all) {
      // Each kind in kCompactSteps slices by the session id's first
      // character (hexadecimal), the last one up to the next kind.
      static constexpr char kHex[] = "0123456789abcdef";
      static_assert(sizeof kHex - 1 == kCompactSteps);
      for (char kind : kKinds)
        for (int i = 0; i < kCompactSteps; ++i) {
          std::string b(1, kind), e(1, kind);
          if (i > 0) b += kHex[i];
          if (i + 1 < kCompactSteps)
            e += kHex[i + 1];
          else
            e[0] = static_cast<char>(kind + 1);
          ranges.emplace_back(std::move(b), std::move(e));
        }
    } else {
      for (const auto& sid : sids)
        for (char kind : kKinds) {
          std::string b = jkey::session(kind, sid);
          ranges.emplace_back(b, b + std::string(8, '\xff'));
        }
    }
    auto t0 = Clock::now();
    std::size_t done = 0;
    for (; done < ranges.size(); ++done)
      if (compaction_interrupted() || !compact_range(ranges[done].first, ranges[done].second))
        break;
    last = Clock::now();
    {
      MutexLock lock(mu_);
      ++stats_.compactions;
    }
    if (done < ranges.size()) {
      // Interrupted: the sessions not wholly done wait for the next pass.
      MutexLock lock(mu_);
      if (stop_) break;
      std::size_t left = all ? purged : sids.size() - done / kKinds.size();
      purged_since_compaction_ += left;
      seen = purged_since_compaction_;
      if (all || compact_sids_.size() + left > kMaxCompactSessions)
        compact_all_ = true;
      else
        compact_sids_.insert(compact_sids_.end(),
                             sids.begin() + static_cast<std::ptrdiff_t>(done / kKinds.size()),
                             sids.end());
    }
    ZG_LOG(kDebug, kLog,
           "compacted " + std::to_string(done) + " of " + std::to_string(ranges.size()) +
               " key ranges after " + std::to_string(purged) + " purges in " +
               std::to_string(std::chrono::duration<double>(last - t0).count()) + " s");
  }
}

bool Journal::compaction_interrupted() {
  {
    MutexLock lock(mu_);
    if (stop_) return true;
  }
  return reopen_wanted_.load() || space_short();
}

bool Journal::compact_range(const std::string& begin, const std::string& end) {
  {
    std::shared_lock<std::shared_mutex> lock(db_mu_);
    if (db_ == nullptr) return false;
    leveldb::Slice b(begin), e(end);
    db_->CompactRange(&b, &e);
  }
  MutexLock lock(mu_);
  ++stats_.compacted_ranges;
  return true;
}

void Journal::mark_healthy() {
  {
    MutexLock lock(mu_);
    error_.clear();
  }
  no_space_.store(false);
  healthy_.store(true);
  ZG_LOG(kInfo, kLog, "journal accepting requests again");
}

bool Journal::try_reopen(bool for_maintenance) {
  // LevelDB fails every write after one failed write until it is reopened.
  if (!o_.fault_file.empty() && std::filesystem::exists(o_.fault_file)) return false;
  check_space();
  if (!space_ok_.load() && !for_maintenance) return false;
  // The compactor yields the lock between two ranges (a reader-preferring
  // lock could otherwise keep this waiting for its whole pass).
  reopen_wanted_.store(true);
  std::unique_lock<std::shared_mutex> lock(db_mu_);
  reopen_wanted_.store(false);
  db_.reset();
  leveldb::DB* raw = nullptr;
  leveldb::Status s =
      leveldb::DB::Open(db_options(false, env_.get(), info_log_.get()), dir_ + "/journal", &raw);
  if (!s.ok()) {
    ZG_LOG(kError, kLog, "reopening the journal failed: " + s.ToString());
    return false;
  }
  db_.reset(raw);
  // What the reactor reconciles with is what a restart would find: a group
  // whose LevelDB write failed after its segment file was synced is there.
  if (Status st = replay_redo(db_.get(), dir_, salt_, &group_seq_); !st.ok()) {
    ZG_LOG(kError, kLog, "reopening the journal failed: " + st.message());
    return false;
  }
  redo_in_row_ = 0;
  ZG_LOG(kInfo, kLog, "journal reopened");
  // Still unhealthy: the reactor first reconciles with what the journal
  // holds, then calls mark_healthy(); until then only maintenance writes go.
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
    Group g;
    std::size_t group_bytes = 0;
    {
      MutexLock lock(mu_);
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      while (!stop_ && queue_.empty())
        if (cv_.wait_until(lock, until) == std::cv_status::timeout) break;
      if (stop_ && queue_.empty()) break;
      // Group commit: everything waiting, in order, up to the size limit;
      // consecutive purges too, so that a burst of them costs a few synced
      // writes and the ops of others behind it wait for one group, not for
      // each purge. Maintenance writes (purges, client removals, changes of
      // state) always go in groups apart from ordinary ones: on a full
      // disk (or a journal that failed) they may use the disk reserve or a
      // reopen, which other writes may not, and the disk may fill between
      // two space checks — an ordinary write that then fails for lack of
      // space must not take a purge, which gives the space back, down with
      // it. An op that writes to a session purged earlier in the group
      // waits for the next group (the purge removes the session's segment
      // file once its group is written).
      std::unordered_set<std::string> purged;
      while (!queue_.empty() && group_bytes < o_.max_group_bytes) {
        JournalOp& op = queue_.front();
        if (!g.ops.empty() && is_maintenance(op) != is_maintenance(g.ops.front())) break;
        if (!g.ops.empty() && !purged.empty() && touches(op, purged)) break;
        group_bytes += op.bytes();
        if (!op.purge_session.empty()) purged.insert(op.purge_session);
        g.ops.push_back(std::move(op));
        queue_.pop_front();
      }
    }
    auto now = std::chrono::steady_clock::now();
    if (now - last_space_check > std::chrono::seconds(1)) {
      last_space_check = now;
      check_space();
      if (!healthy_.load() && reopens_.load() == reopens_taken_.load()) try_reopen(false);
    }
    if (g.ops.empty()) continue;
    bool maintenance = g.maintenance();
    if (maintenance && (space_short() || !healthy_.load())) {
      // A write that gives space back must get through on a full disk: the
      // reserve makes room for it, and a journal failed for lack of space is
      // reopened for it (the reactor reconciles before other writes resume).
      if (space_short()) release_reserve("for a purge or a change of state");
      if (!healthy_.load() && reopens_.load() == reopens_taken_.load()) try_reopen(true);
    }
    bool writable = db_ != nullptr &&
                    (healthy_.load() || (maintenance && reopens_.load() > reopens_taken_.load()));
    bool ok = false;
    double took = 0;
    if (!writable) {
      MutexLock lock(mu_);
      g.error = error_.empty() ? "journal unavailable" : error_;
    } else {
      auto t0 = std::chrono::steady_clock::now();
      ok = commit(g);
      took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::size_t bytes = group_bytes;
    backlog_.fetch_sub(bytes, std::memory_order_relaxed);
    {
      MutexLock lock(mu_);
      if (ok) {
        ++stats_.syncs;
        stats_.sync_seconds.observe(took);
        stats_.ops += g.ops.size();
        stats_.bytes += bytes;
      } else {
        ++stats_.failures;
        if (error_.empty()) {
          error_ = g.error;
          ZG_LOG(kError, kLog,
                 g.error + ": refusing new requests until the journal can be reopened");
        }
      }
    }
    if (!ok && writable) {
      healthy_.store(false);
      if (g.no_space) no_space_.store(true);
    }
    // Free space after every write, not only every second: the watermark is
    // then passed by at most one group.
    if (ok || maintenance) check_space();
    send_completion(g.ops.back().seq, ok, g.error);
  }
}

}  // namespace zgrid::head
