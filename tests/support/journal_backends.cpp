#include "tests/support/journal_backends.hpp"

#include <sys/wait.h>
#include <unistd.h>
#include <zmq.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

#include "head/journal.hpp"
#include "head/journal_records.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid::head::testing {

using zgrid::testing::TempDir;
using zgrid::testing::wait_until;

bool JournalBackend::await(std::uint64_t seq, int timeout_ms) {
  auto covered = [&] { return !completions.empty() && completions.back().seq >= seq; };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    for (auto& c : store().take_completions()) completions.push_back(std::move(c));
    if (covered()) return true;
    zmq::socket_t* s = store().completion_socket();
    // Without a socket the store completes as it writes: nothing more will come.
    if (s == nullptr || std::chrono::steady_clock::now() >= deadline) return false;
    zmq::pollitem_t item{s->handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
  }
}

const JournalCompletion* JournalBackend::outcome(std::uint64_t seq) const {
  for (const auto& c : completions)
    if (c.seq >= seq) return &c;
  return nullptr;
}

namespace {

// ---- LevelDB ---------------------------------------------------------------------

class LevelDbBackend : public JournalBackend {
 public:
  ~LevelDbBackend() override {
    j_.reset();
    ctx_.reset();
  }
  const JournalCaps& caps() const override {
    static const JournalCaps c{.group_commit = true,
                               .bulk_files = true,
                               .read_faults_hit_every_record = false,
                               .removes_orphan_bulk = true,
                               .exclusive_open = false};  // the lease excludes (head/lease.hpp)
    return c;
  }

  JournalStore& open(OpenMode mode) override {
    close();
    if (!ctx_) ctx_ = std::make_unique<zmq::context_t>(1);
    mode_ = mode;
    auto j = Journal::open(data_dir(), *ctx_, options());
    if (!j.ok()) throw std::runtime_error("Journal::open: " + j.status().message());
    j_ = std::move(j).value();
    return *j_;
  }
  JournalStore& store() override {
    if (!j_) throw std::logic_error("no store open");
    return *j_;
  }
  void close() override {
    j_.reset();
    completions.clear();
  }
  Status open_another() override {
    auto j = Journal::open(data_dir(), *ctx_, options());
    return j.status();
  }

  void fail_writes(bool on) override { flag(dir_.file("write-fault"), on); }
  void fail_reads(bool on) override { flag(dir_.file("read-fault"), on); }
  bool await_reopen(std::uint64_t before) override {
    return wait_until([&] { return j_->reopens() > before; }, 10'000, 10);
  }

  void damage_bulk(std::string_view sid) override {
    // One byte in every 256: every record of a few hundred bytes or more fails its checksum.
    std::fstream f(segment(sid), std::ios::in | std::ios::out | std::ios::binary);
    if (!f) throw std::runtime_error("no segment file " + segment(sid));
    f.seekg(0, std::ios::end);
    std::streamoff size = f.tellg();
    for (std::streamoff at = 0; at < size; at += 256) {
      char c;
      f.seekg(at);
      f.read(&c, 1);
      c = static_cast<char>(~c);
      f.seekp(at);
      f.write(&c, 1);
    }
  }
  void truncate_bulk(std::string_view sid) override {
    std::filesystem::resize_file(segment(sid), 0);
  }
  void lose_bulk(std::string_view sid) override {
    if (j_) throw std::logic_error("lose_bulk on an open store");
    if (!std::filesystem::remove(segment(sid)))
      throw std::runtime_error("no segment file " + segment(sid));
  }
  bool bulk_file_exists(std::string_view sid) override {
    return std::filesystem::exists(segment(sid));
  }

  // The crash point SIGKILLs the process that reaches it: the store runs in
  // a child forked before any journal thread of this process exists.
  bool run_until_crash(int syncs, const std::function<void(const SubmitAndWait&)>& body) override {
    if (j_) throw std::logic_error("run_until_crash on an open store");
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      zmq::context_t ctx(1);
      JournalOptions o = options();
      o.crash_after_syncs = syncs;
      auto j = Journal::open(data_dir(), ctx, o);
      if (!j.ok()) _exit(2);
      Journal& journal = **j;
      body([&](JournalOp op) {
        std::uint64_t seq = journal.submit(std::move(op));
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
          for (const auto& c : journal.take_completions())
            if (c.seq >= seq) return c.ok;
          zmq::pollitem_t item{journal.completion_socket()->handle(), 0, ZMQ_POLLIN, 0};
          zmq::poll(&item, 1, std::chrono::milliseconds(50));
        }
        return false;
      });
      _exit(0);  // the crash point was not reached
    }
    int st = 0;
    bool ended = wait_until([&] { return waitpid(pid, &st, WNOHANG) == pid; }, 20'000, 5);
    if (!ended) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return false;
    }
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
  }

 private:
  std::string data_dir() const { return dir_.file("data"); }
  std::string segment(std::string_view sid) const {
    return data_dir() + "/segments/" + std::string(sid) + ".seg";
  }
  JournalOptions options() const {
    JournalOptions o;
    o.min_free_bytes = 0;  // whatever the test machine's disk holds
    o.reserve_bytes = 0;
    o.fault_file = dir_.file("write-fault");
    o.fault_after_write = mode_.faults_after_write;
    o.read_fault_file = dir_.file("read-fault");
    return o;
  }
  static void flag(const std::string& path, bool on) {
    if (on)
      std::ofstream(path) << "x";
    else
      std::filesystem::remove(path);
  }

  TempDir dir_;
  OpenMode mode_;
  std::unique_ptr<zmq::context_t> ctx_;
  std::unique_ptr<Journal> j_;
};

// ---- MemoryJournal ---------------------------------------------------------------

// MemoryJournal's storage is the object itself: closing keeps its records
// (as a disk would) and opening makes a new object holding them.
class MemoryBackend : public JournalBackend {
 public:
  const JournalCaps& caps() const override {
    static const JournalCaps c{.group_commit = false,
                               .bulk_files = false,
                               .read_faults_hit_every_record = true,
                               .removes_orphan_bulk = false,
                               .exclusive_open = false};
    return c;
  }

  JournalStore& open(OpenMode mode) override {
    close();
    mode_ = mode;
    j_ = std::make_unique<MemoryJournal>();
    for (const auto& [k, v] : data_) j_->put(k, v);
    for (const auto& k : corrupt_) j_->corrupt(k);
    return *j_;
  }
  JournalStore& store() override {
    if (!j_) throw std::logic_error("no store open");
    return *j_;
  }
  void close() override {
    completions.clear();
    if (!j_) return;
    // Every op is applied when submitted: what it holds is what was written.
    j_->fail_reads(false);
    data_.clear();
    corrupt_.clear();
    auto c = j_->cursor("");
    for (c->seek(""); c->valid(); c->next()) {
      std::string key(c->key());
      std::string_view v;
      Status st = c->value(&v);
      data_[key] = st.ok() ? std::string(v) : std::string();
      if (!st.ok()) corrupt_.insert(key);
    }
    j_.reset();
  }
  Status open_another() override { return Status::OK(); }

  void fail_writes(bool on) override {
    j_->fail_writes(on ? "journal write failed: injected fault" : "", mode_.faults_after_write);
  }
  void fail_reads(bool on) override { j_->fail_reads(on); }
  bool await_reopen(std::uint64_t before) override {
    if (j_->reopens() <= before) j_->reopen();  // what the LevelDB journal's thread does
    return j_->reopens() > before;
  }

  void damage_bulk(std::string_view sid) override { corrupt_bulk(sid); }
  void truncate_bulk(std::string_view sid) override { corrupt_bulk(sid); }
  void lose_bulk(std::string_view sid) override {
    if (j_) throw std::logic_error("lose_bulk on an open store");
    for (const auto& [k, v] : data_)
      if (jkey::is_bulk(k) && jkey::sid_of(k) == sid) corrupt_.insert(k);
  }
  bool bulk_file_exists(std::string_view) override {
    throw std::logic_error("MemoryJournal keeps no bulk files");
  }

  bool run_until_crash(int syncs, const std::function<void(const SubmitAndWait&)>& body) override {
    if (j_) throw std::logic_error("run_until_crash on an open store");
    open({});
    int n = 0;
    bool crashed = false;
    body([&](JournalOp op) {
      if (crashed) return false;
      if (++n == syncs) {
        // Written (an op is applied when submitted), never heard of.
        j_->hold_completions(true);
        j_->submit(std::move(op));
        crashed = true;
        return false;
      }
      std::uint64_t seq = j_->submit(std::move(op));
      return await(seq) && outcome(seq)->ok;
    });
    close();
    return crashed;
  }

 private:
  void corrupt_bulk(std::string_view sid) {
    for (char kind : {jkey::kRequests, jkey::kAnswers}) {
      auto c = j_->cursor(jkey::session(kind, sid));
      for (c->seek(jkey::session(kind, sid)); c->valid(); c->next())
        j_->corrupt(std::string(c->key()));
    }
  }

  OpenMode mode_;
  std::map<std::string, std::string> data_;
  std::set<std::string> corrupt_;
  std::unique_ptr<MemoryJournal> j_;
};

}  // namespace

std::unique_ptr<JournalBackend> make_leveldb_backend() {
  return std::make_unique<LevelDbBackend>();
}
std::unique_ptr<JournalBackend> make_memory_backend() {
  return std::make_unique<MemoryBackend>();
}

}  // namespace zgrid::head::testing
