// The durable side of the head: the journal (head/journal.hpp) and
// everything that reads or writes it on the reactor's behalf.
//
//  - Writes: submit() queues an op on the journal thread; its completion
//    (synced or failed) comes back on an inproc socket the reactor polls and
//    runs the op's callback, in submission order.
//  - Answers: a durable session's answers of one reactor round are gathered
//    (record) and written as one response record per session (flush); the
//    caller's callback learns which were recorded.
//  - Reads: loading request batches (head/batch_loader.hpp), fetch pages
//    (head/fetch.hpp), recovery and reconcile (head/recovery.hpp), with what
//    they find counted and logged here, and reported to the caller to act on
//    (lost batches to answer, sessions to load again).
//
// It knows sessions (head/session_table.hpp) but not nodes, clients'
// connections or the distributor: it never answers a request or sends a
// message itself. Not thread-safe: the reactor thread alone calls it.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/status.hpp"
#include "head/batch_loader.hpp"
#include "head/context.hpp"
#include "head/fetch.hpp"
#include "head/journal_records.hpp"
#include "head/journal_store.hpp"
#include "head/recovery.hpp"
#include "head/session_table.hpp"
#include "head/state.hpp"

namespace zgrid::head {

// A response on its way to the journal.
struct Answer {
  Request request;    // kept to run it again if the record is not written
  std::string fault;  // the fault code; empty: none
};

class Durable {
 public:
  using OpDone = std::function<void(bool ok, const std::string& error)>;
  // A session's answers of one round were recorded (ok) or not.
  using Recorded = std::function<void(Session& s, std::vector<Answer>& answers, bool ok)>;

  Durable(HeadContext& ctx, SessionTable& sessions) : ctx_(ctx), sessions_(sessions) {}
  ~Durable();

  // Opens the LevelDB journal in the options' data directory and rebuilds
  // the sessions from it; the caller then loads or cancels each (`report`).
  // `may_write`, `may_commit`: the lease's fence (head/lease.hpp;
  // JournalOptions), asked before every journal write; empty: always.
  // `takeover_gap`: JournalOptions::takeover_gap_bytes.
  Status open(zmq::context_t& zctx, RecoveryReport* report, std::function<bool()> may_write = {},
              std::function<bool()> may_commit = {}, std::uint64_t takeover_gap = 0);
  // The same over a store of the caller's (tests: MemoryJournal).
  Status open(std::unique_ptr<JournalStore> store, RecoveryReport* report);
  bool enabled() const { return journal_ != nullptr; }
  JournalStore& journal() { return *journal_; }
  const JournalStore& journal() const { return *journal_; }
  // A socket to poll for completions (nullptr: call on_completions anyway).
  zmq::socket_t* completion_socket() { return journal_->completion_socket(); }
  // Runs the callbacks of the ops the journal has finished, in order.
  void on_completions();
  // Lets what was submitted reach the disk, then closes the journal.
  void close();

  // ---- writes -----------------------------------------------------------------
  void submit(JournalOp op, OpDone done);
  // The same for the write that makes session `ordinal` (a one-message
  // session's 'M' record): until the journal starts writing it, the
  // session's answers (flush) are added to it rather than written after it,
  // so that the session and its answers take one synced write.
  void submit_session_write(std::uint64_t ordinal, JournalOp op, OpDone done);
  // Why the journal takes no new requests: a full disk is resource_exhausted
  // (purging finished sessions gives space back), anything else unavailable.
  Status unavailable() const;
  // The reply for a journal write that failed.
  static Status write_failed(const std::string& err);
  // Whether the session's work may run: results could be recorded, and the
  // disk is not far behind (else they would pile up in memory).
  bool may_run() const;

  // The session's record with `state` (its current state by default): a
  // change of state is written first and applied once it is durable.
  static void put_session(JournalOp& op, const Session& s,
                          std::optional<proto::SessionState> state = std::nullopt);
  static SessionRecord session_record(const Session& s,
                                      std::optional<proto::SessionState> state = std::nullopt);
  // Whether a one-message session whose `submit` frame has this many bytes
  // is journaled as one 'M' record: when the frame would be kept inline in
  // LevelDB anyway (JournalOptions::inline_max).
  bool one_record_fits(std::size_t frame_bytes) const;
  static void put_client(JournalOp& op, const Session& s, const Client& c, std::uint64_t acked,
                         std::uint64_t sent, std::uint64_t flushed, bool ended, bool removed);
  // Deletes every key of the session and writes its tombstone.
  static JournalOp purge_op(const Session& s);
  // Client `ci` removed: its record says so, its request batches are deleted.
  static JournalOp client_removal_op(const Session& s, std::uint32_t ci);

  // ---- answers ----------------------------------------------------------------
  // Gathers one answer of session `s` (not yet recorded) for this round.
  void record(Session& s, Request r, std::string_view fault_code, std::string_view data);
  bool has_round(std::uint64_t ordinal) const { return rounds_.count(ordinal) > 0; }
  // The session left memory: its round and what was noted of it go.
  void forget(std::uint64_t ordinal);
  // Writes this round's answers: one response record per session.
  void flush(const Recorded& recorded);

  // ---- reads ------------------------------------------------------------------
  // Loads batches of `s` (head/batch_loader.hpp). An unreadable batch is
  // counted, logged once and marked to be tried again in a second; lost
  // batches are returned for the caller to answer.
  LoadOutcome load(Session& s, const LoadRule& rule);
  // A page for `f` (head/fetch.hpp); corrupt response records found are
  // logged and their session marked for a rescan, read errors counted.
  FetchPage fetch_page(Session& s, const proto::Fetch& f, std::uint64_t corr);
  // A record of `s` found corrupt (`key`: its journal key): counted in
  // journal_corrupt_records and logged by the caller the first time only,
  // however often it is read again (each fetch, rescan or reload finds it
  // anew). Damage is remembered per record, up to kMaxCorruptRemembered
  // records for the whole head; past that, new ones are neither counted
  // nor logged (said once), and are kUntracked.
  enum class Seen { kFirst, kBefore, kUntracked };
  Seen note_corrupt(const Session& s, std::string_view key);
  // A response record of `s` found unreadable: noted, and logged the first time.
  Seen note_corrupt_answers(Session& s, std::string_view key);
  void schedule_rescan(Session& s);

  // Sessions whose reads are due again now: a failed batch read, or a
  // rescan once the session is quiet. Taken out of the retry set.
  std::vector<Session*> take_due_retries();
  // Recounts the answers of `s` from its readable response records and puts
  // every batch of a client still there back to be loaded. False: the
  // journal could not be read (tried again later).
  bool rescan(Session& s);
  // After a failed write the journal reopens; then the head must bring its
  // sessions up to what the journal holds. True when that happened (the
  // report says what was found); the caller loads every session again.
  Result<bool> reconcile_if_reopened(RecoveryReport* report);

 private:
  // A session's answers of one round: the requests, and their response
  // items already encoded as the record's value (an array whose 5-byte
  // header gets the count when the record is written).
  struct Round {
    std::vector<Answer> list;
    Writer items{4096};
    std::size_t count_at = items.array32_placeholder();
  };

  HeadContext& ctx_;
  SessionTable& sessions_;
  std::unique_ptr<JournalStore> journal_;
  std::deque<std::pair<std::uint64_t, OpDone>> pending_;  // submitted, not yet synced
  // Sessions whose making write is submitted and not yet complete: ordinal
  // to that write's seq (submit_session_write).
  std::map<std::uint64_t, std::uint64_t> session_writes_;
  // Runs `done` with op `seq`'s completion, after the callbacks already
  // waiting for it.
  void also_on(std::uint64_t seq, OpDone done);
  std::map<std::uint64_t, Round> rounds_;  // answers of this round, by session
  std::set<std::uint64_t> read_retry_;     // sessions whose reads are tried again on the tick
  std::uint64_t reopens_seen_ = 0;
  // Corrupt records already counted: session ordinal, key kind, key number.
  std::set<std::tuple<std::uint64_t, char, std::uint64_t>> corrupt_seen_;
  bool corrupt_full_logged_ = false;
  static constexpr std::size_t kMaxCorruptRemembered = 65'536;

  static constexpr Millis kReadRetryMs = 1'000;  // a failed journal read is tried again after this
  static constexpr std::size_t kMaxBacklog = 32u << 20;
};

}  // namespace zgrid::head
