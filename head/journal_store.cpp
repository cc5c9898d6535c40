#include "head/journal_store.hpp"

namespace zgrid::head {

std::size_t JournalOp::bytes() const {
  std::size_t n = 0;
  for (const auto& [k, v] : puts) n += k.size() + v.size();
  for (const auto& k : deletes) n += k.size();
  return n + 64;
}

bool JournalStore::is_no_space(const std::string& error) {
  return error.find("No space left") != std::string::npos ||
         error.find("Disk quota exceeded") != std::string::npos;
}

std::uint64_t MemoryJournal::submit(JournalOp op) {
  op.seq = ++next_seq_;
  // Like LevelDB: a write that gives space back or records a change of state
  // goes through once the fault is gone, reopening the journal for it if
  // need be, before the owner has reconciled.
  bool maintenance = op.maintenance || !op.purge_session.empty() || !op.delete_prefixes.empty();
  if (maintenance && !healthy_ && write_error_.empty() && reopens_ == reconciled_) ++reopens_;
  bool writable = healthy_ || (maintenance && reopens_ > reconciled_);
  if (!write_error_.empty() || !writable) {
    // A failed sync: the op reached storage, yet its write fails.
    if (healthy_ && fail_after_storage_) apply(op);
    // Like LevelDB: after a failed write every write fails until reopened.
    healthy_ = false;
    last_error_ = write_error_.empty() ? "the journal awaits a reopen" : write_error_;
    ++stats_.failures;
    done_.push_back({op.seq, false, last_error_});
    return op.seq;
  }
  apply(op);
  ++stats_.syncs;
  stats_.sync_seconds.observe(0);
  ++stats_.ops;
  stats_.bytes += op.bytes();
  done_.push_back({op.seq, true, {}});
  written_.push_back(std::move(op));
  return next_seq_;
}

bool MemoryJournal::amend(std::uint64_t seq,
                          std::vector<std::pair<std::string, std::string>>& puts) {
  if (!hold_ || seq != next_seq_ || written_.empty() || written_.back().seq != seq) return false;
  JournalOp more;
  more.puts = std::move(puts);
  apply(more);
  for (auto& kv : more.puts) written_.back().puts.push_back(std::move(kv));
  return true;
}

void MemoryJournal::apply(const JournalOp& op) {
  for (const auto& prefix : op.delete_prefixes)
    for (auto it = data_.lower_bound(prefix); it != data_.end() && it->first.starts_with(prefix);)
      it = data_.erase(it);
  for (const auto& k : op.deletes) data_.erase(k);
  for (const auto& [k, v] : op.puts) data_[k] = v;
}

std::vector<JournalCompletion> MemoryJournal::take_completions() {
  if (hold_) return {};
  std::vector<JournalCompletion> out;
  out.swap(done_);
  return out;
}

Status MemoryJournal::read(const std::string& key, std::string_view* out) const {
  if (fail_reads_) return Status::Unavailable("injected read failure");
  if (corrupt_.count(key)) return Status::DataLoss("injected corruption of a record");
  auto it = data_.find(key);
  if (it == data_.end()) return Status::NotFound("no such journal record");
  *out = it->second;
  return Status::OK();
}

Status MemoryJournal::get(std::string_view key, std::string* value) const {
  std::string_view v;
  ZG_RETURN_IF_ERROR(read(std::string(key), &v));
  value->assign(v);
  return Status::OK();
}

class MemoryCursor : public JournalCursor {
 public:
  MemoryCursor(const MemoryJournal& j, std::string prefix)
      : j_(j), prefix_(std::move(prefix)), it_(j.data_.end()) {}
  bool raw_valid() const override { return it_ != j_.data_.end(); }
  bool valid() const override { return raw_valid() && it_->first.starts_with(prefix_); }
  void seek(std::string_view key) override { it_ = j_.data_.lower_bound(key); }
  void seek_to_last() override {
    it_ = j_.data_.empty() ? j_.data_.end() : std::prev(j_.data_.end());
  }
  void next() override { ++it_; }
  void prev() override { it_ = it_ == j_.data_.begin() ? j_.data_.end() : std::prev(it_); }
  std::string_view key() const override { return it_->first; }
  Status value(std::string_view* out) override { return j_.read(it_->first, out); }

 private:
  const MemoryJournal& j_;
  std::string prefix_;
  std::map<std::string, std::string, std::less<>>::const_iterator it_;
};

std::unique_ptr<JournalCursor> MemoryJournal::cursor(std::string prefix) const {
  if (refuse_cursors_) return nullptr;
  return std::make_unique<MemoryCursor>(*this, std::move(prefix));
}

}  // namespace zgrid::head
