// The head's in-memory state: sessions, their clients and queues, nodes, and
// the in-flight map. Owned by the reactor thread alone (no locking).
//
// Invariants:
//  - every request of a session is in exactly one place: its session's queue
//    (queued), the in-flight map (running), or answered (counted done/faulted);
//  - a node's `inflight` equals the number of in-flight entries naming it and
//    never exceeds its `capacity` (the credit it advertised);
//  - a client's `unacked_out` responses were sent and not yet acknowledged by
//    it; at most `response_window`.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <deque>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "common/protocol.hpp"

namespace zgrid::head {

struct ServiceStats;  // head/observe.hpp
class Tasks;          // head/tasks.hpp: the only writer of a StatefulInstance
class Outbox;         // head/outbox.hpp: the only writer of a Client::Delivery

// Whether an answer with this fault code came from running the request (a
// result or the service's fault) rather than from the head (deadline,
// cancel, retries used up, unreadable record, no such service): only those
// are replayed to a stateful session's fresh instance.
inline bool ran_on_instance(std::string_view fault_code) {
  namespace f = proto::fault;
  return fault_code != f::kTimeout && fault_code != f::kCancelled &&
         fault_code != f::kRetryLimitExceeded && fault_code != f::kDataLoss &&
         fault_code != f::kUnknownService;
}

struct Request {
  std::uint64_t id = 0;        // request id, unique within the session
  std::uint32_t client = 0;    // index into Session::clients
  std::uint32_t tries = 0;     // times it was charged a lost run
  bool solo = false;           // dispatch alone (its node died holding a batch)
  bool replay = false;         // stateful: a replay on a fresh instance; its answer is dropped
  std::uint64_t instance = 0;  // stateful: the Session::instance_no it was sent to
  std::string user_data;
  std::string payload;
};

// Responses waiting for a client's window, already encoded as one
// `responses` message: the body up to its items array (a 5-byte header whose
// count is patched in when sent), then the items. Encoding at answer time
// saves a copy of every result and its allocations.
struct OutChunk {
  Writer body;
  std::size_t count_at = 0;  // offset of the items array header
  std::uint32_t count = 0;
  zmq::message_t ready;  // the finished body, kept if a send would block
  bool finished = false;
};

struct HeldAck {
  proto::Ack ack;
  std::uint64_t corr;
};

// An interactive submit with wait_ms: its reply, held until every answer is
// queued for its client (then they go with it) or the deadline.
struct HeldSubmitted {
  std::uint64_t corr = 0;
  proto::Submitted reply;
  std::uint64_t expect = 0;  // answers to wait for (its accepted requests)
  Millis deadline = 0;
};

class Session;

// One client of a session. Its counters (sent, done, faulted, running) and
// its end (ended, removed) are the session's to change: they add up to the
// session's counters (Session::check), so only Session's methods write them
// and others read them. The rest is plain data with one writer each:
//  - the connection (rid, the sequences, flushed_id, max_id, last_activity,
//    open_token, the removal's time and retry): client_handlers, lifecycle
//    and recovery, as each message or record says;
//  - the delivery (Delivery: unacked_out, out, out_count, held_acks, submitted): the
//    outbox alone (a passkey only Outbox can make).
class Client {
 public:
  // Movable only (its queued responses own buffers); noexcept so that
  // std::vector<Client> moves rather than tries to copy when it grows.
  Client() = default;
  Client(Client&&) noexcept = default;
  Client& operator=(Client&&) noexcept = default;

  std::uint64_t sent() const { return sent_; }        // requests accepted from it
  std::uint64_t done() const { return done_; }        // its requests answered ok
  std::uint64_t faulted() const { return faulted_; }  // its requests answered with a fault
  std::uint64_t running() const { return running_; }  // its requests now on nodes
  bool ended() const { return ended_; }               // EndRequests received: committed
  bool removed() const { return removed_; }           // removed by the idle timeout

  std::string id;
  std::string rid;                 // current routing id (transport address) of its connection
  std::uint64_t acked_seq = 0;     // highest sequence acknowledged (durable: synced)
  std::uint64_t accepted_seq = 0;  // highest sequence accepted (durable: maybe not synced yet)
  std::uint64_t flushed_id = 0;    // durable: its requests with ids <= this may run
  std::uint64_t max_id = 0;        // highest request id assigned to it
  std::int64_t removed_wall = 0;   // when removed (Unix seconds; 0: unknown)
  Millis removed_idle_ms = 0;      // after how long idle
  bool removing = false;           // its removal is being journaled: refused meanwhile
  Millis retry_removal_at = 0;     // a failed journaled removal is retried from then
  Millis last_activity = 0;
  std::string open_token;  // the token of its last open_client (a resend is the same opener)

  // The outbox's (head/outbox.hpp): responses and acknowledgements on their
  // way to this client. Read by all; written by Outbox alone (OutboxKey).
  struct Delivery {
    std::uint64_t unacked_out = 0;           // sent, not yet acknowledged: at most response_window
    std::deque<OutChunk> out;                // responses waiting for the window, oldest first
    std::uint64_t out_count = 0;             // responses in `out`
    std::deque<HeldAck> held_acks;           // back-pressure: acks not yet sent
    std::optional<HeldSubmitted> submitted;  // a submit's reply waiting for its answers
  };
  class OutboxKey {
    friend class Outbox;
    OutboxKey() = default;
  };
  const Delivery& delivery() const { return delivery_; }
  Delivery& delivery(OutboxKey) { return delivery_; }

 private:
  friend class Session;
  Delivery delivery_;
  std::uint64_t sent_ = 0;
  std::uint64_t done_ = 0, faulted_ = 0;
  std::uint64_t running_ = 0;
  bool ended_ = false;
  bool removed_ = false;
};

// A journaled request batch of a durable session (one R record). Its
// requests stay in `mem` only until they are loaded into the queue, so a
// session of millions of requests costs a few bytes per batch in memory.
struct BatchRef {
  std::uint64_t first_id = 0;
  std::uint32_t n = 0;
  std::uint32_t client = 0;
  std::vector<Request> mem;
  bool one_record = false;  // journaled inside its session's 'M' record, not as 'R' + 'I'
};

// What one client key holds (docs/security.md, quotas): kept by
// head/session_table.hpp as its sessions change.
struct KeyLoad {
  std::uint64_t sessions = 0;       // sessions of the key in the table
  std::uint64_t open = 0;           // of them, open
  std::uint64_t queued = 0;         // requests accepted and not yet running or settled
  std::uint64_t journal_bytes = 0;  // its durable sessions' records
  bool operator==(const KeyLoad&) const = default;
};

// A stateful session's instance (docs/services.md, "Stateful sessions"):
// one request at a time, in request-id order, on one instance (`pinned`
// node, `instance_no`). `history` holds the requests that instance ran, in
// order; a fresh instance (node lost, instance restarted) first replays
// history[replayed..] with their answers dropped. Tasks' alone to change
// (Session::instance(TasksKey)).
struct StatefulInstance {
  struct Ran {
    std::uint64_t id = 0;
    std::uint32_t client = 0;
    std::string payload;
    bool record = false;    // its answer was not recorded: the replay's is
    std::string user_data;  // (kept for that answer only)
  };
  std::uint64_t pinned = 0;                   // NodeState::ordinal holding the instance; 0: none
  std::uint64_t instance_no = 0;              // bumped for each fresh instance
  std::vector<Ran> history;                   // requests run, in id order
  std::size_t replayed = 0;                   // of history, replayed on the current instance
  std::unordered_set<std::uint64_t> not_run;  // recovery: answered by the head, never run
};

// Debug builds check every kept-up table each tick (and the tests'
// heads in any build, ZGRID_TEST_VERIFY); Release builds do not.
#ifdef NDEBUG
inline constexpr bool kDebugChecks = false;
#else
inline constexpr bool kDebugChecks = true;
#endif

// A session: made and dropped by the SessionTable (head/session_table.hpp),
// which owns it and the load of each client key.
//
// Who owns what:
//  - identity (ordinal, id, owner) is fixed when made; the token is the
//    table's (SessionTable::set_token, which indexes it).
//  - the state, the counters, the queue, the clients and their counters, the
//    journaled batches and the answered bitmap are private: they change
//    only through the methods below, each named for what happens, and each
//    brings the key's load (KeyLoad) up to date itself. No caller can change
//    a counter, the queue or the key load without the table knowing.
//  - settings (service, durable, stateful, the timeouts, the deadline, the
//    creation times, stats) are written when the session is made
//    (client_handlers) or recovered (recovery) and read by all.
//  - the journal's bookkeeping (next_resp_seq, the read retries,
//    rescan_pending) belongs to durable (and recovery, which it calls), the
//    purge's (purging, retry_purge_at) to lifecycle, read_error_logged to
//    both; out_pending to the outbox (with the clients' Delivery);
//    completed_at to the table's sweep;
//  - the stateful instance (StatefulInstance) is Tasks' alone to write
//    (a passkey only Tasks can make); batch_loader and recovery add what
//    the journal says was run or answered by the head through ran_before
//    and answered_by_head.
//
// What must hold (check() says whether it does; debug builds run it for every
// session each tick):
//  - every accepted request is queued, running, answered (done/faulted),
//    removed with its client, or journaled and not yet loaded;
//  - running, and done/faulted of the clients not removed, are the sums of
//    their clients'; requests_removed and clients_removed those of the
//    removed clients; committed that of the ended clients' sent;
//  - the key's load holds what this session contributes (contribution());
//  - a stateful session starts a request only when nothing of it runs (its
//    replays go many at a time; asserted in debug builds).
class Session {
 public:
  Session(std::uint64_t ordinal_, std::string id_, std::string owner_)
      : ordinal(ordinal_), id(std::move(id_)), owner(std::move(owner_)) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::uint64_t ordinal;
  const std::string id;
  const std::string owner;  // the CURVE public key (Z85) that created it; empty without CURVE
  // The create_session token it was made under (empty: none), indexed by
  // SessionTable (set it through SessionTable::set_token).
  const std::string& token() const { return token_; }

  // ---- settings (written when made or recovered) ----
  std::string service;
  bool durable = false;
  bool stateful = false;
  Millis client_idle_timeout_ms = 0;
  Millis task_timeout_ms = 0;      // 0: none (the head's --task-timeout applies)
  Millis deadline = 0;             // monotonic; 0: none. Not run by then: fault `timeout`
  std::int64_t deadline_wall = 0;  // the same in Unix seconds (journaled)
  std::int64_t created_wall = 0;
  Millis created_at = 0;          // monotonic, when made in this head's life; 0: recovered
  ServiceStats* stats = nullptr;  // its service's counters (HeadContext::stats_of)
  // While `creating` its session record is not yet synced; resent
  // create_session calls wait in `create_waiters` (routing id, corr) for
  // the same answer (client_handlers).
  bool creating = false;
  std::vector<std::pair<std::string, std::uint64_t>> create_waiters;
  Millis last_activity = 0;

  // ---- state ----
  proto::SessionState state() const { return state_; }
  bool is_open() const { return state_ == proto::SessionState::kOpen; }
  void seal();    // open -> sealed
  void cancel();  // open or sealed -> cancelled
  // Recovery: the state its session record says.
  void restore_state(proto::SessionState st);

  // ---- counters (docs/protocol.md, status) ----
  std::uint64_t total() const { return total_; }
  std::uint64_t committed() const { return committed_; }
  std::uint64_t running() const { return running_; }
  std::uint64_t done() const { return done_; }
  std::uint64_t faulted() const { return faulted_; }
  std::uint64_t answered() const { return done_ + faulted_; }
  std::uint64_t requests_removed() const { return requests_removed_; }  // of removed clients
  std::uint64_t clients_removed() const { return clients_removed_; }
  std::uint64_t journal_bytes() const { return journal_bytes_; }  // request and response records
  std::uint64_t committing() const { return committing_; }  // answered, response not yet synced

  // ---- clients ----
  std::span<Client> clients() { return clients_; }
  std::span<const Client> clients() const { return clients_; }
  Client& client(std::uint32_t ci) { return clients_[ci]; }
  const Client& client(std::uint32_t ci) const { return clients_[ci]; }
  Client* find_client(const std::string& client_id);
  std::uint32_t index_of(const Client& c) const {
    return static_cast<std::uint32_t>(&c - clients_.data());
  }
  // A new client; recovery passes what its client record says (its
  // requests count as committed when it ended, as removed when removed).
  std::uint32_t add_client(Client c, std::uint64_t sent = 0, bool ended = false,
                           bool removed = false);
  // Its EndRequests took effect: its requests are committed.
  void commit_client(std::uint32_t ci);
  // Removed (idle timeout): its queued requests go, its answers are taken
  // back, its requests count as removed.
  void remove_client(std::uint32_t ci);
  // Durable: counted as sent before the batch's write, taken back when the
  // write fails; a reopened journal may say more were sent.
  void count_sent(std::uint32_t ci, std::uint64_t n);
  void uncount_sent(std::uint32_t ci, std::uint64_t n);
  void raise_sent(std::uint32_t ci, std::uint64_t sent);

  // ---- requests and the queue ----
  std::uint64_t next_request_id() const { return next_request_id_; }
  std::uint64_t new_request_id() { return next_request_id_++; }
  const std::deque<Request>& queue() const { return queue_; }  // eligible to run, in order
  std::uint64_t queued() const { return queue_.size(); }
  // Interactive: accepted from client `ci`, queued at once.
  void accept(std::uint32_t ci, std::vector<Request>&& accepted);
  // Durable: a batch is journaled (live, or found by recovery): counted,
  // and indexed for loading unless its client is removed.
  void add_batch(BatchRef b, std::uint64_t record_bytes);
  void add_journal_bytes(std::uint64_t n);
  // A journaled request loaded into the queue (batch_loader).
  void load(Request r) { queue_.push_back(std::move(r)); }
  // Back to the front (retries, a purge being written).
  void requeue_front(Request r) { queue_.push_front(std::move(r)); }
  // Back in request-id order (stateful); false when it is queued already
  // (the copy with user data is kept).
  bool requeue_in_order(Request r);
  // The first queued request off the queue (to be requeued or answered).
  Request take_front();
  // Every queued request off the queue (cancel: each is then answered).
  std::deque<Request> take_queue();
  // The first queued request starts running (sent to a node).
  Request start_front();
  // A replay of client `ci`'s request starts running (stateful).
  void start_replay(std::uint32_t ci);
  // A request of client `ci` stopped running (answered, lost or handed back).
  void settle(std::uint32_t ci);

  // ---- answers ----
  // Interactive: an answer of client `ci`'s request delivered.
  void count_answer(std::uint32_t ci, bool ok);
  // Durable: request `id`'s answer is journaled; false when it was already.
  bool record_answer(std::uint64_t id, std::uint32_t ci, bool ok);
  bool is_answered(std::uint64_t id) const {
    return id / 64 < answered_bits_.size() && (answered_bits_[id / 64] >> (id % 64)) & 1;
  }
  void begin_commit() { ++committing_; }  // an answer goes to the journal
  void end_commit(std::uint64_t n) {      // its write completed
    assert(committing_ >= n);
    committing_ -= n;
  }
  // Recount of the answers from the journal (durable: a corrupt record was
  // found): the answers are forgotten, then recorded again from what is
  // readable; undo_recount puts back what was before should reading fail.
  struct Recount {
    std::vector<std::uint64_t> bits;
    std::uint64_t done = 0, faulted = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> by_client;
  };
  Recount begin_recount();
  void undo_recount(Recount&& r);

  // ---- journaled batches (durable) ----
  const std::vector<BatchRef>& batches() const { return batches_; }  // by first_id
  std::vector<Request> take_batch_mem(std::size_t i) { return std::move(batches_[i].mem); }
  void drop_batch_mem(std::size_t i) { batches_[i].mem = std::vector<Request>(); }
  // Indexes into batches() not yet loaded into the queue, in order.
  const std::deque<std::size_t>& unloaded() const { return unloaded_; }
  void loaded(std::size_t pos) {  // unloaded()[pos] was loaded or lost
    unloaded_.erase(unloaded_.begin() + static_cast<std::ptrdiff_t>(pos));
  }
  void unload_all();                             // every batch of a client still there, again
  void forget_unloaded() { unloaded_.clear(); }  // cancel: none will load
  // The client that sent request `id` (by the batch index), or nullptr.
  const Client* client_of(std::uint64_t id) const;
  Client* client_of(std::uint64_t id) {
    return const_cast<Client*>(std::as_const(*this).client_of(id));
  }

  // Responses queued in its clients' deliveries (the outbox's, as Client::Delivery).
  std::uint64_t out_pending() const { return out_pending_; }
  std::uint64_t& out_pending(Client::OutboxKey) { return out_pending_; }

  // When the table's sweep first saw it complete (retention counts from then; 0: not complete).
  Millis completed_at() const { return completed_at_; }

  // ---- the journal's bookkeeping (durable, lifecycle) ----
  std::uint64_t next_resp_seq = 1;  // fetch cursor of the next response record
  std::uint32_t purging = 0;        // purge writes pending: paused, answers held back
  Millis read_retry_at = 0;         // a batch read failed: loading waits until then
  bool read_error_logged = false;   // a read error was logged (once per episode)
  bool rescan_pending = false;      // answers lost to a corrupt record: recount
  Millis retry_purge_at = 0;        // a failed retention purge is retried from then

  // ---- the stateful instance (tasks) ----
  // Read by all; written by Tasks alone (instance(TasksKey)), except what
  // recovery and the batch loader learn from the journal, through the two
  // methods after it.
  const StatefulInstance& instance() const { return instance_; }
  class TasksKey {
    friend class Tasks;
    TasksKey() = default;
  };
  StatefulInstance& instance(TasksKey) { return instance_; }
  // Recovery: request `id` was answered by the head (deadline, cancel, ...),
  // never run on an instance: a fresh one does not replay it.
  void answered_by_head(std::uint64_t id) {
    if (stateful) instance_.not_run.insert(id);
  }
  // Batch loader: a journaled request found answered was run by the lost
  // instance (unless answered by the head): the fresh one replays it.
  void ran_before(Request&& r) {
    if (!stateful || instance_.not_run.count(r.id) ||
        r.id <= (instance_.history.empty() ? 0 : instance_.history.back().id))
      return;
    instance_.history.push_back({r.id, r.client, std::move(r.payload)});
  }
  std::string instance_key() const { return id + "." + std::to_string(instance_.instance_no); }

  // What this session adds to its key's load.
  KeyLoad contribution() const {
    std::uint64_t settled = answered() + running_ + requests_removed_;
    return KeyLoad{1, is_open() ? 1u : 0u, total_ > settled ? total_ - settled : 0, journal_bytes_};
  }
  // Whether the invariants above hold (recounts the clients: O(clients)).
  bool check() const;

 private:
  friend class SessionTable;
  // Brings the key's load up to date after a change of the counters or state.
  void changed() {
    KeyLoad now = contribution();
    if (now == contributed_) return;
    key_load_->sessions += now.sessions - contributed_.sessions;
    key_load_->open += now.open - contributed_.open;
    key_load_->queued += now.queued - contributed_.queued;
    key_load_->journal_bytes += now.journal_bytes - contributed_.journal_bytes;
    contributed_ = now;
  }

  std::string token_;
  proto::SessionState state_ = proto::SessionState::kOpen;
  std::uint64_t total_ = 0, committed_ = 0, running_ = 0, done_ = 0, faulted_ = 0;
  std::uint64_t requests_removed_ = 0, clients_removed_ = 0;
  std::uint64_t journal_bytes_ = 0, committing_ = 0;
  std::uint64_t next_request_id_ = 1;
  std::deque<Request> queue_;
  std::vector<Client> clients_;
  std::unordered_map<std::string, std::uint32_t> client_index_;
  std::vector<BatchRef> batches_;             // every journaled batch, by first_id
  std::deque<std::size_t> unloaded_;          // indexes into batches_ not yet loaded into queue_
  std::vector<std::uint64_t> answered_bits_;  // bitmap by request id: response journaled
  StatefulInstance instance_;
  std::uint64_t out_pending_ = 0;
  Millis completed_at_ = 0;      // the table's sweep: when first seen complete
  bool complete_seen_ = false;   // the table's sweep: the session_complete event was recorded
  KeyLoad contributed_;          // what it last added to its key's load
  KeyLoad* key_load_ = nullptr;  // its key's load in the SessionTable (set there)
};

// The per-request methods, inline: they run for every request the head moves.

inline Request Session::take_front() {
  assert(!queue_.empty());
  Request r = std::move(queue_.front());
  queue_.pop_front();
  return r;
}

inline Request Session::start_front() {
  assert(!queue_.empty() && (!stateful || running_ == 0));
  Request r = std::move(queue_.front());
  queue_.pop_front();
  ++clients_[r.client].running_;
  ++running_;
  changed();
  return r;
}

inline void Session::start_replay(std::uint32_t ci) {
  ++clients_[ci].running_;
  ++running_;
  changed();
}

inline void Session::settle(std::uint32_t ci) {
  assert(running_ > 0 && clients_[ci].running_ > 0);
  --running_;
  --clients_[ci].running_;
  changed();
}

inline void Session::count_answer(std::uint32_t ci, bool ok) {
  Client& c = clients_[ci];
  if (ok) {
    ++done_;
    ++c.done_;
  } else {
    ++faulted_;
    ++c.faulted_;
  }
  changed();
}

inline bool Session::record_answer(std::uint64_t id, std::uint32_t ci, bool ok) {
  if (is_answered(id)) return false;
  if (id / 64 >= answered_bits_.size())
    answered_bits_.resize(id / 64 + 1 + answered_bits_.size() / 2, 0);
  answered_bits_[id / 64] |= std::uint64_t{1} << (id % 64);
  count_answer(ci, ok);
  return true;
}

// Why a node is gone: only a node that said `bye` left gracefully (its work
// is re-queued uncharged).
enum class NodeLoss { kLeft, kReRegistered, kUnreachable, kSilent };
inline const char* loss_name(NodeLoss l) {
  switch (l) {
    case NodeLoss::kLeft:
      return "left";
    case NodeLoss::kReRegistered:
      return "re-registered";
    case NodeLoss::kUnreachable:
      return "unreachable";
    case NodeLoss::kSilent:
      return "silent";
  }
  return "?";
}

struct NodeState {
  std::uint64_t ordinal = 0;
  std::string id, host, rid;
  std::uint64_t pid = 0, workers = 0, capacity = 0;
  std::uint64_t inflight = 0, done = 0, faulted = 0, lost = 0;
  std::uint64_t bad = 0;              // service_error / unknown_service results (the node's fault)
  std::vector<std::string> services;  // name@version (bare names from older nodes)
  std::vector<proto::ServiceAd> service_info;  // registered timeouts and retries
  std::string key_name;                        // with CURVE: the name of the key it connected with
  Millis last_seen = 0;
  Millis joined = 0;
  std::uint64_t stuck = 0;   // workers stuck in a call past its task timeout (it says)
  bool blocked = false;      // its socket queue was full: wait for it to speak
  bool quarantined = false;  // its requests fault far more often than others': no new work
  bool draining = false;     // an operator asked for no new work (zgrid drain)
  // The heartbeat interval the head holds it to: the one it said it uses,
  // or a longer one the head told it since (NodeTable::hold_to); an older
  // node, which never says, the one its `registered` gave it.
  Millis heartbeat_ms = 0;
  bool says_interval = false;  // its heartbeats carry the interval it uses
  int fd = -1;                 // its connection's descriptor (libzmq's), -1: not known
  // Its place in NodeTable's liveness order (the table's own).
  std::list<std::uint64_t>::iterator seen_at;
  std::uint64_t free() const { return capacity > inflight ? capacity - inflight : 0; }
};

struct InFlight {
  std::uint64_t session = 0;  // Session::ordinal
  std::uint64_t node = 0;     // NodeState::ordinal
  Millis started = 0;         // when it was sent
  // The node enforces the task timeout (from when a worker starts the task);
  // past this the head gives up on it as lost (a node that does not report).
  // 0: no task timeout.
  Millis backstop = 0;
  Request request;
  int svc_max_retries = -1;  // the service's registered max retries (-1: the head's)
};

}  // namespace zgrid::head
