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
#include <cstdint>
#include <deque>
#include <list>
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

struct Client {
  // Movable only (its queued responses own buffers); noexcept so that
  // std::vector<Client> moves rather than tries to copy when it grows.
  Client() = default;
  Client(Client&&) noexcept = default;
  Client& operator=(Client&&) noexcept = default;

  std::string id;
  std::string rid;                      // current routing id (transport address) of its connection
  std::uint64_t acked_seq = 0;          // highest sequence acknowledged (durable: synced)
  std::uint64_t accepted_seq = 0;       // highest sequence accepted (durable: maybe not synced yet)
  std::uint64_t flushed_id = 0;         // durable: its requests with ids <= this may run
  std::uint64_t max_id = 0;             // highest request id assigned to it
  std::uint64_t sent = 0;               // requests accepted from it
  std::uint64_t done = 0, faulted = 0;  // its answered requests
  bool ended = false;                   // EndRequests received: committed
  bool removed = false;                 // removed by the idle timeout
  std::int64_t removed_wall = 0;        // when (Unix seconds; 0: unknown)
  Millis removed_idle_ms = 0;           // after how long idle
  bool removing = false;                // its removal is being journaled: refused meanwhile
  Millis retry_removal_at = 0;          // a failed journaled removal is retried from then
  Millis last_activity = 0;
  std::uint64_t running = 0;  // its requests now on nodes
  std::uint64_t unacked_out = 0;
  std::deque<OutChunk> out;       // responses waiting for the window, oldest first
  std::uint64_t out_count = 0;    // responses in `out`
  std::deque<HeldAck> held_acks;  // back-pressure: acks not yet sent
  std::string open_token;         // the token of its last open_client (a resend is the same opener)
};

// A journaled request batch of a durable session (one R record). Its
// requests stay in `mem` only until they are loaded into the queue, so a
// session of millions of requests costs a few bytes per batch in memory.
struct BatchRef {
  std::uint64_t first_id = 0;
  std::uint32_t n = 0;
  std::uint32_t client = 0;
  std::vector<Request> mem;
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

struct Session {
  std::uint64_t ordinal = 0;
  std::string id;
  std::string service;
  std::string owner;  // the CURVE public key (Z85) that created it; empty without CURVE
  bool durable = false;
  proto::SessionState state = proto::SessionState::kOpen;
  Millis client_idle_timeout_ms = 0;
  Millis task_timeout_ms = 0;      // 0: none (the head's --task-timeout applies)
  Millis deadline = 0;             // monotonic; 0: none. Not run by then: fault `timeout`
  std::int64_t deadline_wall = 0;  // the same in Unix seconds (journaled)
  std::int64_t created_wall = 0;
  Millis created_at = 0;  // monotonic, when made in this head's life; 0: recovered
  Millis last_activity = 0;
  std::uint64_t next_request_id = 1;
  // The create_session token it was made under (empty: none), indexed by
  // SessionTable (set it through set_token). While `creating` its session
  // record is not yet synced; resent create_session calls wait in
  // `create_waiters` (routing id, corr) for the same answer.
  std::string token;
  bool creating = false;
  std::vector<std::pair<std::string, std::uint64_t>> create_waiters;

  std::deque<Request> queue;  // eligible to run, in order
  std::vector<Client> clients;
  std::unordered_map<std::string, std::uint32_t> client_index;

  // counters (docs/protocol.md, status)
  std::uint64_t total = 0, committed = 0, running = 0, done = 0, faulted = 0;
  std::uint64_t requests_removed = 0;  // sent by clients since removed (Client::removed)
  std::uint64_t clients_removed = 0;
  std::uint64_t out_pending = 0;  // responses queued in clients' out deques

  // durable only
  std::vector<BatchRef> batches;             // every journaled batch, by first_id
  std::deque<std::size_t> unloaded;          // indexes into batches not yet loaded into queue
  std::vector<std::uint64_t> answered_bits;  // bitmap by request id: response journaled
  std::uint64_t next_resp_seq = 1;           // fetch cursor of the next response record
  std::uint64_t journal_bytes = 0;           // its request and response records (quota)
  std::uint64_t committing = 0;              // answered, response not yet synced
  Millis completed_at = 0;                   // when first seen complete (retention)
  std::uint32_t purging = 0;                 // purge writes pending: paused, answers held back
  Millis read_retry_at = 0;                  // a batch read failed: loading waits until then
  bool read_error_logged = false;            // a read error was logged (once per episode)
  bool rescan_pending = false;               // answers lost to a corrupt record: recount
  Millis retry_purge_at = 0;                 // a failed retention purge is retried from then

  // Stateful sessions (docs/services.md, "Stateful sessions"): one request
  // at a time, in request-id order, on one instance (`pinned` node,
  // `instance_no`). `history` holds the requests that instance ran, in
  // order; a fresh instance (node lost, instance restarted) first replays
  // history[replayed..] with their answers dropped. Invariant: running <= 1.
  struct Ran {
    std::uint64_t id = 0;
    std::uint32_t client = 0;
    std::string payload;
    bool record = false;    // its answer was not recorded: the replay's is
    std::string user_data;  // (kept for that answer only)
  };
  bool stateful = false;
  std::uint64_t pinned = 0;                   // NodeState::ordinal holding the instance; 0: none
  std::uint64_t instance_no = 0;              // bumped for each fresh instance
  std::vector<Ran> history;                   // requests run, in id order
  std::size_t replayed = 0;                   // of history, replayed on the current instance
  std::unordered_set<std::uint64_t> not_run;  // recovery: answered by the head, never run
  std::string instance_key() const { return id + "." + std::to_string(instance_no); }

  ServiceStats* stats = nullptr;  // its service's counters (HeadContext::stats_of)
  bool complete_seen = false;     // the session_complete event was recorded (SessionTable::sweep)

  KeyLoad contributed;          // what it last added to its key's load (SessionTable::touch)
  KeyLoad* key_load = nullptr;  // its key's load in the SessionTable (set there)

  bool is_answered(std::uint64_t id) const {
    return id / 64 < answered_bits.size() && (answered_bits[id / 64] >> (id % 64)) & 1;
  }
  void set_answered(std::uint64_t id) {
    if (id / 64 >= answered_bits.size())
      answered_bits.resize(id / 64 + 1 + answered_bits.size() / 2, 0);
    answered_bits[id / 64] |= std::uint64_t{1} << (id % 64);
  }

  // The client that sent request `id` (by the batch index), or nullptr.
  const Client* client_of(std::uint64_t id) const {
    auto it = std::upper_bound(batches.begin(), batches.end(), id,
                               [](std::uint64_t v, const BatchRef& b) { return v < b.first_id; });
    if (it == batches.begin()) return nullptr;
    --it;
    if (id >= it->first_id + it->n) return nullptr;
    return &clients[it->client];
  }
  Client* client_of(std::uint64_t id) {
    return const_cast<Client*>(std::as_const(*this).client_of(id));
  }

  std::uint64_t queued() const { return queue.size(); }
  std::uint64_t answered() const { return done + faulted; }
};

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
