#include "head/durable.hpp"

#include <algorithm>
#include <tuple>

#include "common/log.hpp"
#include "common/util.hpp"
#include "head/journal.hpp"
#include "head/journal_records.hpp"

namespace zgrid::head {

namespace {
constexpr const char* kLog = "head";
}  // namespace

Durable::~Durable() {
  close();
}

Status Durable::open(zmq::context_t& zctx, RecoveryReport* report, std::function<bool()> may_write,
                     std::function<bool()> may_commit, std::uint64_t takeover_gap) {
  const HeadOptions& o = ctx_.o;
  JournalOptions jo;
  jo.min_free_bytes = o.min_free_bytes;
  jo.reserve_bytes = o.disk_reserve_bytes;
  jo.fault_file = o.hooks.journal_fault_file;
  jo.fault_after_write = o.hooks.journal_fault_after;
  jo.read_fault_file = o.hooks.journal_read_fault_file;
  jo.may_write = std::move(may_write);
  jo.may_commit = std::move(may_commit);
  jo.takeover_gap_bytes = takeover_gap;
  if (o.hooks.journal_inline_max >= 0)
    jo.inline_max = static_cast<std::size_t>(o.hooks.journal_inline_max);
  if (long n = ctx_.crash.take("after-sync"); n >= 0) jo.crash_after_syncs = static_cast<int>(n);
  if (long n = ctx_.crash.take("after-segment-sync"); n >= 0)
    jo.crash_after_segment_syncs = static_cast<int>(n);
  jo.volatile_log = o.hooks.journal_volatile_log;
  auto j = Journal::open(o.data_dir, zctx, jo);
  if (!j.ok()) return j.status();
  return open(std::move(j).value(), report);
}

Status Durable::open(std::unique_ptr<JournalStore> store, RecoveryReport* report) {
  journal_ = std::move(store);
  ZG_RETURN_IF_ERROR(recover_sessions(*journal_, sessions_, ctx_.now, wall_seconds(), report));
  for (auto& [s, key] : report->corrupt_answers) note_corrupt_answers(*s, key);
  // Segment files of sessions purged just before a crash.
  journal_->remove_orphan_segments(
      [&](std::string_view sid) { return sessions_.find(std::string(sid)) != nullptr; });
  return Status::OK();
}

void Durable::on_completions() {
  if (!journal_) return;
  for (const JournalCompletion& c : journal_->take_completions()) {
    while (!pending_.empty() && pending_.front().first <= c.seq) {
      OpDone done = std::move(pending_.front().second);
      pending_.pop_front();
      done(c.ok, c.error);
    }
  }
}

void Durable::close() {
  // The journal writes what was submitted before it closes; completions
  // are no longer heard.
  journal_.reset();
  pending_.clear();
}

void Durable::submit(JournalOp op, OpDone done) {
  std::uint64_t seq = journal_->submit(std::move(op));
  pending_.emplace_back(seq, std::move(done));
}

void Durable::submit_session_write(std::uint64_t ordinal, JournalOp op, OpDone done) {
  std::uint64_t seq = journal_->submit(std::move(op));
  session_writes_[ordinal] = seq;
  pending_.emplace_back(seq,
                        [this, ordinal, done = std::move(done)](bool ok, const std::string& err) {
                          session_writes_.erase(ordinal);
                          done(ok, err);
                        });
}

void Durable::also_on(std::uint64_t seq, OpDone done) {
  auto at = std::find_if(pending_.begin(), pending_.end(),
                         [seq](const auto& p) { return p.first > seq; });
  pending_.emplace(at, seq, std::move(done));
}

Status Durable::unavailable() const {
  if (journal_->space_short())
    return Status::ResourceExhausted(
        "the journal's disk is full (" + journal_->health_reason() +
        "): new durable requests are refused; fetch, status and purge still work (zgrid close "
        "ID --purge gives a session's space back)");
  return Status::Unavailable("the journal refuses new requests (" + journal_->health_reason() +
                             "); fetch and status still work");
}

Status Durable::write_failed(const std::string& err) {
  if (JournalStore::is_no_space(err))
    return Status::ResourceExhausted(err +
                                     " (the disk is full: purge finished sessions or free "
                                     "space)");
  return Status::Unavailable(err);
}

bool Durable::may_run() const {
  return journal_->healthy() && journal_->backlog_bytes() <= kMaxBacklog;
}

SessionRecord Durable::session_record(const Session& s, std::optional<proto::SessionState> state) {
  return {s.service,
          s.created_wall,
          s.client_idle_timeout_ms,
          state.value_or(s.state()),
          s.task_timeout_ms,
          s.deadline_wall,
          s.owner,
          s.stateful,
          s.token()};
}

void Durable::put_session(JournalOp& op, const Session& s,
                          std::optional<proto::SessionState> state) {
  op.puts.emplace_back(jkey::session(jkey::kSession, s.id), session_record(s, state).encode());
}

bool Durable::one_record_fits(std::size_t frame_bytes) const {
  long max = ctx_.o.hooks.journal_inline_max;
  std::size_t limit = max >= 0 ? static_cast<std::size_t>(max) : JournalOptions{}.inline_max;
  return frame_bytes <= limit;
}

void Durable::put_client(JournalOp& op, const Session& s, const Client& c, std::uint64_t acked,
                         std::uint64_t sent, std::uint64_t flushed, bool ended, bool removed) {
  ClientRecord rec{acked,
                   sent,
                   flushed,
                   ended,
                   removed,
                   c.max_id,
                   removed ? c.removed_wall : 0,
                   removed ? c.removed_idle_ms : 0};
  op.puts.emplace_back(jkey::client(s.id, c.id), rec.encode());
}

JournalOp Durable::purge_op(const Session& s) {
  JournalOp op;
  op.maintenance = true;
  op.purge_session = s.id;
  for (char kind : jkey::kSessionKinds) op.delete_prefixes.push_back(jkey::session(kind, s.id));
  op.puts.emplace_back(jkey::session(jkey::kTombstone, s.id), encode_tombstone(wall_seconds()));
  return op;
}

JournalOp Durable::client_removal_op(const Session& s, std::uint32_t ci) {
  const Client& c = s.client(ci);
  JournalOp op;
  op.maintenance = true;
  for (const BatchRef& b : s.batches())
    if (b.client == ci) {
      // The index entry stays: it keeps request ids from being reused and
      // tells fetch and recovery whose answers to leave out.
      op.deletes.push_back(jkey::numbered(jkey::kRequests, s.id, b.first_id));
    }
  put_client(op, s, c, c.acked_seq, c.sent(), c.flushed_id, c.ended(), true);
  return op;
}

void Durable::record(Session& s, Request r, std::string_view fault_code, std::string_view data) {
  s.begin_commit();
  Round& round = rounds_[s.ordinal];
  proto::write_response_item(round.items, r.id, r.user_data, fault_code, data);
  round.list.push_back({std::move(r), std::string(fault_code)});
}

void Durable::flush(const Recorded& recorded) {
  if (rounds_.empty()) return;
  for (auto& [ord, round] : rounds_) {
    Session* s = sessions_.by_ordinal(ord);
    std::vector<Answer>& list = round.list;
    if (!s || list.empty()) continue;
    round.items.patch_array32(round.count_at, static_cast<std::uint32_t>(list.size()));
    JournalOp op;
    op.puts.emplace_back(jkey::numbered(jkey::kAnswers, s->id, s->next_resp_seq),
                         round.items.finish_string());
    s->add_journal_bytes(op.puts.back().second.size());
    s->next_resp_seq += list.size();
    auto shared = std::make_shared<std::vector<Answer>>(std::move(list));
    OpDone done = [this, ord = ord, shared, recorded](bool ok, const std::string&) {
      Session* s = sessions_.by_ordinal(ord);
      if (!s) return;  // purged meanwhile (or its making write failed)
      s->end_commit(shared->size());
      recorded(*s, *shared, ok);
      if (ok) ctx_.crash.reach("after-results");
    };
    // The session's own write has not started: the answers join it (one
    // synced write for both; their callback runs after the session's).
    if (auto w = session_writes_.find(ord);
        w != session_writes_.end() && journal_->amend(w->second, op.puts)) {
      also_on(w->second, std::move(done));
      continue;
    }
    submit(std::move(op), std::move(done));
  }
  rounds_.clear();
}

LoadOutcome Durable::load(Session& s, const LoadRule& rule) {
  LoadOutcome out = load_batches(*journal_, s, rule);
  for (const auto& [b, why] : out.lost)
    out.lost_first.push_back(
        note_corrupt(s, b.one_record
                            ? jkey::session(jkey::kOneMessage, s.id)
                            : jkey::numbered(jkey::kRequests, s.id, b.first_id)) == Seen::kFirst);
  if (out.unreadable.ok()) return out;
  ++ctx_.counters.journal_read_errors;
  s.read_retry_at = ctx_.now + kReadRetryMs;
  read_retry_.insert(s.ordinal);
  if (!s.read_error_logged) {
    s.read_error_logged = true;
    ZG_LOG(kError, kLog,
           "journal read error session=" + s.id + ": " + out.unreadable.message() +
               "; its requests wait and the read is tried again every second");
  }
  return out;
}

FetchPage Durable::fetch_page(Session& s, const proto::Fetch& f, std::uint64_t corr) {
  FetchPage page = build_fetch_page(*journal_, s, f, corr);
  // A record noted before has been accounted for (recovery left its answers
  // out, or a rescan did): only a new one needs the session recounted.
  for (const std::string& key : page.corrupt_keys)
    if (note_corrupt_answers(s, key) != Seen::kBefore) schedule_rescan(s);
  if (page.read_error) ++ctx_.counters.journal_read_errors;
  return page;
}

void Durable::forget(std::uint64_t ordinal) {
  rounds_.erase(ordinal);
  session_writes_.erase(ordinal);
  corrupt_seen_.erase(corrupt_seen_.lower_bound({ordinal, '\0', 0}),
                      corrupt_seen_.lower_bound({ordinal + 1, '\0', 0}));
}

Durable::Seen Durable::note_corrupt(const Session& s, std::string_view key) {
  std::tuple<std::uint64_t, char, std::uint64_t> rec{s.ordinal, key.empty() ? '\0' : key[0],
                                                     jkey::number_of(key)};
  if (corrupt_seen_.count(rec)) return Seen::kBefore;
  if (corrupt_seen_.size() >= kMaxCorruptRemembered) {
    if (!corrupt_full_logged_) {
      corrupt_full_logged_ = true;
      ZG_LOG(kError, kLog,
             "journal corruption: more than " + std::to_string(kMaxCorruptRemembered) +
                 " corrupt records; further ones are neither counted nor logged");
    }
    return Seen::kUntracked;
  }
  corrupt_seen_.insert(rec);
  ++ctx_.counters.journal_corrupt_records;
  return Seen::kFirst;
}

Durable::Seen Durable::note_corrupt_answers(Session& s, std::string_view key) {
  Seen seen = note_corrupt(s, key);
  if (seen == Seen::kFirst)
    ZG_LOG(kError, kLog,
           "journal corruption session=" + s.id + ": response record #" +
               std::to_string(jkey::number_of(key)) +
               " is unreadable; its requests run again to recompute the lost answers");
  return seen;
}

// A response record found corrupt while the head runs: its answers are
// lost. Once the session is quiet (nothing queued, running or being
// written), its answers are recounted from the readable records and every
// request left unanswered runs again (the same outcome as a restart).
void Durable::schedule_rescan(Session& s) {
  if (s.rescan_pending) return;
  s.rescan_pending = true;
  read_retry_.insert(s.ordinal);
}

std::vector<Session*> Durable::take_due_retries() {
  std::vector<Session*> due;
  if (read_retry_.empty()) return due;
  for (auto it = read_retry_.begin(); it != read_retry_.end();) {
    Session* s = sessions_.by_ordinal(*it);
    bool take = !s;
    if (s && s->rescan_pending)
      take = s->queue().empty() && s->running() == 0 && s->committing() == 0 && s->purging == 0 &&
             !has_round(s->ordinal);
    else if (s)
      take = ctx_.now >= s->read_retry_at;
    if (!take) {
      ++it;
      continue;
    }
    if (s) due.push_back(s);
    it = read_retry_.erase(it);
  }
  return due;
}

bool Durable::rescan(Session& s) {
  Session::Recount before = s.begin_recount();
  std::uint64_t done = before.done, faulted = before.faulted;
  AnswerCounts added;
  Status st = scan_records(
      *journal_, jkey::session(jkey::kAnswers, s.id),
      [&](std::string_view key, std::string_view, std::string_view v) {
        (void)apply_answer_record(s, key, v, &added);
        return Status::OK();
      },
      [&](std::string_view key) {
        s.next_resp_seq = std::max(s.next_resp_seq, jkey::number_of(key) + 1);
      });
  if (!st.ok()) {  // cannot read now: as it was, try again later
    s.undo_recount(std::move(before));
    s.read_retry_at = ctx_.now + kReadRetryMs;
    read_retry_.insert(s.ordinal);
    return false;
  }
  s.rescan_pending = false;
  // Every batch of a client still there goes back to be loaded: reading
  // skips the requests that have an answer.
  s.unload_all();
  std::uint64_t lost = done + faulted - std::min(done + faulted, s.done() + s.faulted());
  if (lost > 0)
    ZG_LOG(kWarn, kLog,
           "session=" + s.id + ": " + std::to_string(lost) +
               " answers lost to a corrupt response record run again");
  return true;
}

Result<bool> Durable::reconcile_if_reopened(RecoveryReport* report) {
  if (journal_->reopens() == reopens_seen_) return false;
  reopens_seen_ = journal_->reopens();
  ZG_RETURN_IF_ERROR(reconcile_sessions(*journal_, sessions_, report));
  for (auto& [s, key] : report->corrupt_answers) note_corrupt_answers(*s, key);
  ctx_.counters.done += report->counted.done;
  ctx_.counters.faulted += report->counted.faulted;
  for (auto& [s, taken] : report->taken) {
    ServiceStats& st = ctx_.stats_of(*s);
    st.accepted += taken.requests;
    st.done += taken.answers.done;
    for (const auto& [code, n] : taken.answers.faulted_by_code) st.count_fault(code, n);
  }
  if (report->fixed > 0)
    ZG_LOG(kWarn, kLog,
           "journal reopened: " + std::to_string(report->fixed) +
               " records were written although their write had reported failure; taken into "
               "account");
  journal_->reconciled(reopens_seen_);
  return true;
}

}  // namespace zgrid::head
