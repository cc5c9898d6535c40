// A session's life in the head: loading its journaled work, seal, cancel,
// deadline, purge, retirement, the removal of idle clients and sessions,
// and the repairs after journal read errors.
//
// Every change of a durable session's state is written to the journal
// first and applied in the write's completion, after success: a failure
// leaves the session exactly as it was (logged; automatic ones retry).
// Replies are not sent here: a caller that must answer a client passes a
// completion (OpDone), and fetches that may wake are reported in
// HeadContext::fetches_to_wake.
// Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <cstdint>
#include <deque>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "head/context.hpp"
#include "head/distributor.hpp"
#include "head/durable.hpp"
#include "head/outbox.hpp"
#include "head/session_table.hpp"
#include "head/state.hpp"
#include "head/tasks.hpp"

namespace zgrid::head {

class Lifecycle {
 public:
  using OpDone = Durable::OpDone;

  Lifecycle(HeadContext& ctx, SessionTable& sessions, Tasks& tasks, Durable& durable,
            Outbox& outbox)
      : ctx_(ctx), sessions_(sessions), tasks_(tasks), durable_(durable), outbox_(outbox) {}

  // After the journal was opened: finishes what a crash interrupted
  // (cancels whose answers were not all synced) and loads what may run.
  void recovered();
  // Moves flushed, journaled requests into the queue, up to the durable
  // window: the head never holds a whole large session in memory.
  void load_ready(Session& s);
  // What a session can do now, for the distributor. A session past its
  // deadline is expired here.
  SessionTurn turn_of(std::uint64_t ordinal);
  // Requests accepted and not yet running: queued, and flushed in batches
  // not yet loaded.
  static std::uint64_t queued_count(const Session& s);

  // Seal (no new clients or requests) or cancel (fault what has not run):
  // for a durable session the new state is written first. `done` hears the
  // outcome.
  void close(Session& s, proto::SessionState to, OpDone done);
  // Deletes the session: for a durable one every key and a tombstone in one
  // write, and only once that succeeded does it leave memory. Durable purges
  // go to the journal paced (pump_purges). A purge of a session whose purge
  // is already under way writes nothing more: `done` hears that one's outcome.
  void purge(Session& s, OpDone done);
  // Removes a session from memory; results arriving later are dropped.
  void drop(Session& s);
  // An interactive session that is sealed and has delivered everything: dropped.
  void maybe_retire(Session& s);

  // Journals this round's durable answers.
  void flush_answers();
  // On the tick: reads due again, a journal reopened after a failed write
  // (an error here stops the head), the idle timers.
  Status tick();

 private:
  void apply_close(Session& s, proto::SessionState to);
  void cancel(Session& s);
  void expire(Session& s);
  // Answers every request of the session that has not run with a fault.
  std::uint64_t fault_unrun(Session& s, std::string_view code, std::string_view message);
  void after_load(Session& s, const LoadOutcome& out);
  void fault_lost_batch(Session& s, const BatchRef& b, const Status& why, bool first);
  void retry_reads();
  void sweep_idle();
  void pump_purges();
  void submit_purge(Session& s, OpDone done);
  void purge_done(std::uint64_t ord, const OpDone& done, bool ok, const std::string& err);
  void remove_client(Session& s, std::uint32_t ci);
  void apply_client_removal(Session& s, std::uint32_t ci);

  HeadContext& ctx_;
  SessionTable& sessions_;
  Tasks& tasks_;
  Durable& durable_;
  Outbox& outbox_;

  // A journaled removal or retention purge that failed is tried again after this.
  static constexpr Millis kRetryAfterMs = 5'000;
  // The idle sweep visits every session. With 100,000 complete sessions
  // kept, sweeping each tick was 21% of the head's CPU and halved the rate
  // of new durable sessions; so it runs at most often enough to visit this
  // many sessions a second (every tick below about 6,000 sessions; every
  // 4 s at 100,000, against idle timeouts of minutes).
  static constexpr std::uint64_t kSweepVisitsPerSecond = 25'000;
  Millis next_sweep_ = 0;
  // Durable purges waiting for their turn (session ordinal, completion), and
  // how many are in the journal (pump_purges). When each purge went to the
  // journal at once, 10,000 of them queued there kept another client's
  // durable submit waiting for seconds.
  static constexpr std::uint64_t kMaxPurgesInJournal = 1'024;
  std::deque<std::pair<std::uint64_t, OpDone>> purge_queue_;
  std::uint64_t purges_in_journal_ = 0;
  // More callers of a purge already under way (session ordinal): they hear
  // its outcome when it ends; at most kMaxPurgeWaiters a session (more are
  // answered at once: Unavailable, "try again").
  static constexpr std::size_t kMaxPurgeWaiters = 64;
  std::unordered_map<std::uint64_t, std::vector<OpDone>> purge_waiters_;
};

}  // namespace zgrid::head
