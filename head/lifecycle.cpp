#include "head/lifecycle.hpp"

#include <algorithm>
#include <deque>

#include "common/log.hpp"
#include "common/util.hpp"

namespace zgrid::head {

namespace {
constexpr const char* kLog = "head";
constexpr std::string_view kCancelledBeforeRun = "session cancelled before this request ran";

bool is_open(const Session& s) {
  return s.state() == proto::SessionState::kOpen;
}
}  // namespace

void Lifecycle::recovered() {
  for (auto& kv : sessions_.all()) {
    Session& s = *kv.second;
    if (s.state() == proto::SessionState::kCancelled)
      cancel(s);
    else
      load_ready(s);
  }
}

void Lifecycle::load_ready(Session& s) {
  if (!s.durable || s.state() == proto::SessionState::kCancelled) return;
  if (ctx_.now >= s.read_retry_at)  // else a read failed a moment ago
    after_load(s, durable_.load(s, {ctx_.o.durable_window, true}));
  tasks_.activate(&s);
}

// What loading found, acted on: lost batches are answered `data_loss` (an
// unreadable one is retried by the Durable room).
void Lifecycle::after_load(Session& s, const LoadOutcome& out) {
  for (std::size_t i = 0; i < out.lost.size(); ++i)
    fault_lost_batch(s, out.lost[i].first, out.lost[i].second,
                     i < out.lost_first.size() && out.lost_first[i]);
}

// A request batch whose journal record is lost: each of its requests not
// yet answered is answered `data_loss` (its payload is gone; it cannot run).
// `first`: its damage is reported for the first time.
void Lifecycle::fault_lost_batch(Session& s, const BatchRef& b, const Status& why, bool first) {
  std::uint64_t n = 0;
  for (std::uint64_t id = b.first_id; id < b.first_id + b.n; ++id) {
    if (s.is_answered(id)) continue;
    Request q;
    q.id = id;
    q.client = b.client;
    tasks_.answer(s, q, proto::fault::kDataLoss,
                  "request " + std::to_string(id) + ": its record in the journal is unreadable (" +
                      why.message() + "): it cannot run");
    ++n;
  }
  ctx_.counters.data_loss += n;
  // Found again on every reload of the session (a rescan puts its batches
  // back): logged the first time only.
  if (first)
    ZG_LOG(kError, kLog,
           "journal corruption session=" + s.id + ": " + why.message() + "; " + std::to_string(n) +
               " requests answered data_loss");
}

SessionTurn Lifecycle::turn_of(std::uint64_t ordinal) {
  using State = SessionTurn::State;
  Session* s = sessions_.by_ordinal(ordinal);
  if (!s || s->queue().empty() || s->purging > 0) return {State::kIdle};
  // Nothing could be recorded (or the disk is behind): results would only
  // pile up in memory. Run it once the journal catches up.
  if (s->durable && !durable_.may_run()) return {State::kWaiting};
  if (s->deadline > 0 && ctx_.now >= s->deadline) {
    expire(*s);  // what has not run by its deadline faults `timeout`
    return {State::kIdle};
  }
  // Its clients are not reading: paused until they catch up (Outbox::flush).
  if (outbox_.must_pause(*s)) return {State::kPaused};
  // A stateful session holds at most one request in flight: it leaves the
  // ring until that one settles (Tasks::settle activates it again).
  if (s->stateful && s->running() > 0) return {State::kIdle};
  return {State::kReady,           s->service,  s->queue().size(),
          s->queue().front().solo, s->stateful, s->instance().pinned};
}

std::uint64_t Lifecycle::queued_count(const Session& s) {
  std::uint64_t q = s.queue().size();
  for (std::size_t i : s.unloaded()) {
    const BatchRef& b = s.batches()[i];
    const Client& c = s.client(b.client);
    if (!c.removed() && b.first_id + b.n - 1 <= c.flushed_id) q += b.n;
  }
  return q;
}

void Lifecycle::close(Session& s, proto::SessionState to, OpDone done) {
  if (!s.durable) {
    apply_close(s, to);
    done(true, "");
    maybe_retire(s);
    return;
  }
  // The new state is written first and applied only once it is durable; a
  // failed write leaves the session exactly as it was.
  JournalOp op;
  op.maintenance = true;
  Durable::put_session(op, s, to == proto::SessionState::kSealed && !is_open(s) ? s.state() : to);
  durable_.submit(std::move(op), [this, ord = s.ordinal, to, done = std::move(done)](
                                     bool ok, const std::string& err) {
    Session* s = sessions_.by_ordinal(ord);
    if (ok && s) apply_close(*s, to);
    if (!ok && s)
      ZG_LOG(kError, kLog,
             std::string(to == proto::SessionState::kSealed ? "seal" : "cancel") +
                 " failed session=" + s->id + ": " + err + "; the session is unchanged");
    done(ok, err);
  });
}

void Lifecycle::apply_close(Session& s, proto::SessionState to) {
  if (to == proto::SessionState::kCancelled) {
    cancel(s);
    return;
  }
  s.seal();
  ZG_LOG(kInfo, kLog, "session sealed session=" + s.id);
}

void Lifecycle::cancel(Session& s) {
  s.cancel();
  fault_unrun(s, proto::fault::kCancelled, kCancelledBeforeRun);
  ZG_LOG(kInfo, kLog, "session cancelled session=" + s.id);
}

void Lifecycle::expire(Session& s) {
  std::uint64_t n = fault_unrun(s, proto::fault::kTimeout,
                                "the session's deadline passed before this request ran");
  if (n > 0)
    ZG_LOG(kWarn, kLog,
           "session deadline passed session=" + s.id + " timed_out=" + std::to_string(n));
}

// The queued requests and, for a durable session, every journaled batch not
// yet loaded (flushed or not). Requests already running finish normally.
std::uint64_t Lifecycle::fault_unrun(Session& s, std::string_view code, std::string_view message) {
  if (s.durable)  // every batch, flushed or not; an unreadable one is answered on a retry
    after_load(s, durable_.load(s, {UINT64_MAX, false}));
  std::uint64_t n = s.queue().size();
  while (!s.queue().empty()) {
    Request r = s.take_front();
    tasks_.answer(s, r, code, message);
  }
  return n;
}

// While the purge is waiting or being written the session is paused and
// its answers are not recorded (they would re-create keys): they go back to
// its queue, to run again should the purge fail.
void Lifecycle::purge(Session& s, OpDone done) {
  if (!s.durable) {
    ZG_LOG(kInfo, kLog, "session purged session=" + s.id);
    ctx_.event("session_purged", s.id, "session " + s.id + " purged");
    sessions_.remember_gone(s, /*purged=*/true, ctx_.now);  // a resent purge is answered ok
    drop(s);
    done(true, "");
    return;
  }
  if (s.purging > 0) {
    // Its purge is waiting or being written (a resent purge, or retention's
    // and a client's at once): this one hears that purge's outcome, and no
    // second purge is written. At most kMaxPurgeWaiters: a client resending
    // past that hears "try again" at once.
    auto& waiters = purge_waiters_[s.ordinal];
    if (waiters.size() >= kMaxPurgeWaiters) {
      done(false, "the purge of session " + s.id + " is under way: try again");
      return;
    }
    waiters.push_back(std::move(done));
    return;
  }
  ++s.purging;
  purge_queue_.emplace_back(s.ordinal, std::move(done));
  pump_purges();
}

// Purges are paced: at most kMaxPurgesInJournal in the journal's queue at
// once, the next ones submitted as those complete. A burst of thousands
// (a script purging sessions, a retention sweep) then never sits in the
// journal's queue ahead of another client's write: that write waits for
// at most a group or two of purges, not for the whole burst.
void Lifecycle::pump_purges() {
  while (purges_in_journal_ < kMaxPurgesInJournal && !purge_queue_.empty()) {
    auto [ord, done] = std::move(purge_queue_.front());
    purge_queue_.pop_front();
    Session* s = sessions_.by_ordinal(ord);
    if (!s) {  // cannot happen: only a purge drops a durable session
      purge_done(ord, done, true, "");
      continue;
    }
    ++purges_in_journal_;
    submit_purge(*s, std::move(done));
  }
}

void Lifecycle::submit_purge(Session& s, OpDone done) {
  durable_.submit(Durable::purge_op(s), [this, ord = s.ordinal, sid = s.id, done = std::move(done)](
                                            bool ok, const std::string& err) {
    --purges_in_journal_;
    Session* s = sessions_.by_ordinal(ord);
    if (ok) {
      sessions_.add_tombstone(sid);
      if (s) drop(*s);
      ZG_LOG(kInfo, kLog, "session purged session=" + sid);
      ctx_.event("session_purged", sid, "session " + sid + " purged");
    } else if (s) {
      --s->purging;
      ZG_LOG(kError, kLog,
             "purge failed session=" + sid + ": " + err + "; nothing of it was deleted");
      tasks_.activate(s);
    }
    purge_done(ord, done, ok, err);
    pump_purges();
  });
}

// The purge's outcome to its caller and to every caller waiting for it.
void Lifecycle::purge_done(std::uint64_t ord, const OpDone& done, bool ok, const std::string& err) {
  done(ok, err);
  if (auto w = purge_waiters_.extract(ord); !w.empty())
    for (auto& also : w.mapped()) also(ok, err);
}

void Lifecycle::drop(Session& s) {
  tasks_.end_instance(s);
  outbox_.drop_held_acks(s);
  durable_.forget(s.ordinal);
  sessions_.drop(&s);  // in-flight entries refer to the ordinal: their results are dropped
}

void Lifecycle::maybe_retire(Session& s) {
  if (s.durable || s.state() == proto::SessionState::kOpen) return;
  if (!SessionTable::complete(s) || s.out_pending() > 0 || s.running() > 0) return;
  for (const auto& c : s.clients())
    if (c.delivery().unacked_out > 0) return;
  ZG_LOG(kDebug, kLog, "session retired session=" + s.id);
  sessions_.remember_gone(s, /*purged=*/false, ctx_.now);  // a resent seal is answered ok
  drop(s);
}

void Lifecycle::flush_answers() {
  if (!durable_.enabled()) return;
  durable_.flush([this](Session& s, std::vector<Answer>& answers, bool ok) {
    tasks_.recorded(s, answers, ok);
  });
}

Status Lifecycle::tick() {
  tasks_.check_backstops();
  if (durable_.enabled()) {
    RecoveryReport report;
    auto reopened = durable_.reconcile_if_reopened(&report);
    if (!reopened.ok()) return reopened.status();
    if (*reopened)
      for (auto& kv : sessions_.all()) load_ready(*kv.second);
    retry_reads();
  }
  if (ctx_.now >= next_sweep_) {
    sweep_idle();
    next_sweep_ = ctx_.now + static_cast<Millis>(sessions_.size() * 1000 / kSweepVisitsPerSecond);
  }
  return Status::OK();
}

// Sessions whose batches could not be read, or whose answers must be
// recounted after a corrupt response record.
void Lifecycle::retry_reads() {
  for (Session* s : durable_.take_due_retries()) {
    if (s->rescan_pending) {
      if (!durable_.rescan(*s)) continue;
      if (s->state() == proto::SessionState::kCancelled)
        fault_unrun(*s, proto::fault::kCancelled, kCancelledBeforeRun);
      else
        load_ready(*s);
    } else if (s->state() == proto::SessionState::kCancelled) {
      fault_unrun(*s, proto::fault::kCancelled, kCancelledBeforeRun);
    } else if (s->deadline > 0 && ctx_.now >= s->deadline) {
      expire(*s);
    } else {
      load_ready(*s);
    }
    if (s->unloaded().empty()) s->read_error_logged = false;
  }
}

// Client idle timeout (docs/architecture.md, "Idle timeouts"): an open
// client idle past its session's timeout is removed with every request it
// sent. Idle interactive sessions with no client and no work are closed.
void Lifecycle::sweep_idle() {
  SessionTable::Sweep sw =
      sessions_.sweep(ctx_.now, ctx_.o.session_idle_timeout_ms, ctx_.o.retention_ms);
  for (Session* s : sw.completed) tasks_.end_instance(*s);  // a stateful one's instance is done
  for (Session* s : sw.completed)
    ctx_.event("session_complete", s->id,
               "session " + s->id + " complete: " + std::to_string(s->done()) + " done, " +
                   std::to_string(s->faulted()) + " faulted, " +
                   std::to_string(s->requests_removed()) + " removed");
  for (auto [s, ci] : sw.idle_clients) remove_client(*s, ci);
  for (Session* s : sw.idle_sessions) {
    ZG_LOG(kInfo, kLog, "idle session closed session=" + s->id);
    drop(*s);
  }
  for (Session* s : sw.retention_over) {
    ZG_LOG(kInfo, kLog, "retention period over session=" + s->id);
    purge(*s, [this, ord = s->ordinal](bool ok, const std::string&) {
      if (Session* s = sessions_.by_ordinal(ord); s && !ok)
        s->retry_purge_at = ctx_.now + kRetryAfterMs;
    });
  }
}

// For a durable session the removal is journaled first (its client record
// says removed; its request batches are deleted) and applied only once that
// is durable: a failed write leaves the client as it was, logged, and the
// sweep tries again later. Meanwhile the client is refused like a removed one.
void Lifecycle::remove_client(Session& s, std::uint32_t ci) {
  if (!s.durable) {
    apply_client_removal(s, ci);
    return;
  }
  Client& c = s.client(ci);
  c.removing = true;
  c.removed_wall = wall_seconds();  // what the removal record says
  c.removed_idle_ms = ctx_.now - c.last_activity;
  durable_.submit(Durable::client_removal_op(s, ci),
                  [this, ord = s.ordinal, ci](bool ok, const std::string& err) {
                    Session* s = sessions_.by_ordinal(ord);
                    if (!s) return;
                    Client& c = s->client(ci);
                    c.removing = false;
                    if (ok) {
                      apply_client_removal(*s, ci);
                      return;
                    }
                    c.retry_removal_at = ctx_.now + kRetryAfterMs;
                    ZG_LOG(kError, kLog,
                           "client removal failed session=" + s->id + " client=" + c.id + ": " +
                               err + "; it stays until the journal takes the removal");
                  });
}

void Lifecycle::apply_client_removal(Session& s, std::uint32_t ci) {
  Client& c = s.client(ci);
  if (!s.durable) {
    c.removed_wall = wall_seconds();
    c.removed_idle_ms = ctx_.now - c.last_activity;
  }
  outbox_.forget(s, c);
  // Its queued requests go and its recorded answers are taken back:
  // removed means removed.
  s.remove_client(ci);
  if (durable_.enabled()) ctx_.fetches_to_wake.push_back(s.id);  // it may be complete now
  // Its answered requests stay counted as done or faulted: the service's
  // counters never go back, and the three outcomes add up to accepted.
  ctx_.stats_of(s).removed += c.sent() - std::min(c.sent(), c.done() + c.faulted());
  std::string line = "client removed (idle " + format_duration(s.client_idle_timeout_ms) +
                     ") session=" + s.id + " client=" + c.id +
                     " requests_removed=" + std::to_string(c.sent());
  ZG_LOG(kWarn, kLog, line);
  ctx_.event("client_removed", s.id, std::move(line));
  tasks_.forget_client(s, ci);  // stateful: replays leave its requests out
  // Its responses are gone: a session paused for them may run again; a
  // stateful one's later batches may have waited behind its unflushed ones.
  if (s.durable && s.stateful) load_ready(s);
  tasks_.activate(&s);
}

}  // namespace zgrid::head
