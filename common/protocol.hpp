// zgrid wire protocol v1 (specified in docs/protocol.md).
//
// Every message is one ZeroMQ frame of msgpack (the ROUTER adds the routing-id
// frame in front): an array [version, type, corr, fields...]. `corr` is chosen
// by the requester and echoed in the reply; pushed messages carry corr 0.
// Strings decoded here are views into the received frame: keep the frame (and
// the Envelope) alive while using them.
//
// Thread safety: stateless functions.
#pragma once

#include <array>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <zgrid/types.hpp>

#include "common/codec.hpp"
#include "common/status.hpp"

namespace zgrid::proto {

inline constexpr std::uint32_t kVersion = 1;

// Limits that are part of the contract (docs/protocol.md, "Limits").
inline constexpr std::size_t kMaxPayload = 1 << 20;       // request or result bytes
inline constexpr std::size_t kMaxUserData = 64 << 10;     // user_data bytes per request
inline constexpr std::size_t kMaxBatchItems = 65536;      // requests per batch
inline constexpr std::size_t kMaxMessageBytes = 8 << 20;  // one frame (ZMQ_MAXMSGSIZE)
inline constexpr std::size_t kMaxFrames = 4;              // frames per message
inline constexpr std::size_t kMaxNameLength = 128;        // ids, service names
inline constexpr std::size_t kMaxEndpointLength = 1024;   // a ZeroMQ endpoint (failover)

// Ranges of numeric fields (docs/protocol.md, "Field ranges"). A value outside
// its range is refused at decode with invalid_argument: arithmetic on these
// (deadlines, sequence numbers) can then never wrap.
inline constexpr std::uint64_t kMaxDurationMs = 365ull * 86'400'000;  // timeouts, deadlines, waits
inline constexpr std::uint64_t kMaxSeq = std::uint64_t{1} << 62;  // sequence numbers, request ids
inline constexpr std::uint64_t kMaxCapacity = 1'000'000;          // a node's credit
inline constexpr std::uint64_t kMaxWorkers = 65'536;              // a node's worker threads
inline constexpr std::uint64_t kMaxPid = 0xffffffffu;
inline constexpr std::int64_t kMaxRetriesLimit = 1'000;      // a service's max retries
inline constexpr std::uint64_t kMaxHeartbeatMs = 3'600'000;  // head -> node heartbeat interval
inline constexpr std::uint64_t kMaxHeartbeatMisses = 1'000;
inline constexpr std::uint64_t kMaxFetchPage = 1'000'000;  // Fetch.max (the head serves <= 16384)
// A node's register backoff at its longest (zgrid-node's default): after a
// head restart a node registers again within this of noticing it. The head
// derives its node reconnect window from it (head/options.hpp).
inline constexpr std::int64_t kNodeReconnectMaxMs = 5'000;

// Fault codes on the wire (docs/protocol.md, "Faults"), shared by head, node
// and services.
namespace fault {
inline constexpr std::string_view kInvalidArgument = "invalid_argument";
inline constexpr std::string_view kServiceError = "service_error";
inline constexpr std::string_view kUnknownService = "unknown_service";
inline constexpr std::string_view kRetryable = "retryable";  // run it again, charged a try
inline constexpr std::string_view kRetryLimitExceeded = "retry_limit_exceeded";
inline constexpr std::string_view kTimeout = "timeout";
inline constexpr std::string_view kCancelled = "cancelled";
inline constexpr std::string_view kDataLoss = "data_loss";  // its journal record is unreadable
// Node -> head only, never recorded as an answer:
// the task ran past its task timeout (charged a try, run again elsewhere)...
inline constexpr std::string_view kTaskTimeout = "task_timeout";
// ...or never started: every worker of the node is stuck (not charged).
inline constexpr std::string_view kNotRun = "not_run";
}  // namespace fault

// Message numbers, one per row of common/messages.def.
enum Type : std::uint32_t {
#define ZG_MESSAGE(Enum, name, number, role, direction, reply) k##Enum = number,
#include "common/messages.def"
};

// What a message is, from its row in common/messages.def.
enum class Role : std::uint8_t {
  kClientRequest,  // client -> head; the head's ClientHandlers::on_<name>
  kNodeMessage,    // node -> head (or both ways); HeadRooms::on_<name>
  kPush,           // the head starts it (tasks, end_session, responses)
  kReply,          // an answer to a request
};
enum class Direction : std::uint8_t {
  kClientToHead,
  kNodeToHead,
  kNodeAndHead,  // either way (heartbeat, bye)
  kHeadToNode,
  kHeadToClient,
  kHeadToClientPushed,
  kHeadToAny,  // to a client or a node (error)
};
// A node message the head takes only from a registered node, or from anyone.
enum class Needs : std::uint8_t { kRegistered, kAnyone };

// As docs/protocol.md writes it ("client→head").
std::string_view direction_text(Direction d);

struct MessageInfo {
  std::uint32_t type;
  std::string_view name;  // on the wire and in docs/protocol.md
  Role role;
  Direction direction;
  std::string_view reply;  // the name of the message that answers it; "none"
};

inline constexpr MessageInfo kMessages[] = {
#define ZG_MESSAGE(Enum, name, number, role, direction, reply) \
  {number, #name, Role::role, Direction::direction, #reply},
#include "common/messages.def"
};

// Every message number is below this: dispatch is an index into an array.
inline constexpr std::uint32_t kTypeLimit = 256;

namespace detail {
inline constexpr auto kMessageIndex = [] {
  std::array<std::uint8_t, kTypeLimit> index{};  // 1 + position in kMessages; 0: none
  for (std::size_t i = 0; i < std::size(kMessages); ++i)
    index[kMessages[i].type] = static_cast<std::uint8_t>(i + 1);
  return index;
}();
}  // namespace detail

// The row of message `type`; nullptr for a number no message has.
constexpr const MessageInfo* message_info(std::uint32_t type) {
  if (type >= kTypeLimit || detail::kMessageIndex[type] == 0) return nullptr;
  return &kMessages[detail::kMessageIndex[type] - 1];
}
// The row of the message with this wire name; nullptr if none.
constexpr const MessageInfo* message_named(std::string_view name) {
  for (const MessageInfo& m : kMessages)
    if (m.name == name) return &m;
  return nullptr;
}

// Its wire name, "unknown" for a number no message has.
inline const char* type_name(std::uint32_t type) {
  const MessageInfo* m = message_info(type);
  return m ? m->name.data() : "unknown";  // names are literals: NUL-terminated
}

// The range of a numeric field (docs/protocol.md, "Field ranges"), one per
// ZG_RANGE row of common/messages.def; the decoders read each such field
// through its range.
struct FieldRange {
  const char* field;     // as an out-of-range error names it
  const char* messages;  // the messages that carry it, space-separated
  std::int64_t lo, hi;
};
namespace range {
#define ZG_RANGE(Id, field, messages, lo, hi) \
  inline constexpr FieldRange Id{field, messages, std::int64_t{lo}, static_cast<std::int64_t>(hi)};
#include "common/messages.def"
}  // namespace range
inline constexpr const FieldRange* kFieldRanges[] = {
#define ZG_RANGE(Id, field, messages, lo, hi) &range::Id,
#include "common/messages.def"
};

// Per-item status byte in an Ack (the statuses string is empty when all are kItemOk).
enum ItemStatus : std::uint8_t {
  kItemOk = 0,         // accepted now
  kItemDuplicate = 1,  // already acknowledged earlier (resent after a reconnect)
  kItemTooLarge = 2,   // payload or user_data over the limit: not accepted
};

// CloseMode, SessionState (state_name), CreateSession, SessionInfo and
// Response are public: <zgrid/types.hpp>.

// ---- messages ---------------------------------------------------------------

struct Error {
  Code code = Code::kInternal;
  std::string message;
  // not_active only (a standby head's answer, docs/protocol.md "Failover"):
  // the lease epoch it knows and the active head's endpoints (empty while
  // no head holds the lease). Absent from other errors.
  std::uint64_t epoch = 0;
  std::string active_frontend, active_backend;
};

struct OpenClient {
  std::string session_id;
  std::string client_id;
  // Optional (field 3): names this opener, so that its resent open_client
  // is the same client coming back, never "already in use" (empty: none).
  std::string token;
};

struct ClientOpened {
  std::string session_id;
  std::string client_id;
  std::uint64_t acked_seq = 0;  // highest sequence number already acknowledged
};

struct SendItem {
  std::string_view user_data;
  std::string_view payload;
};

struct Send {
  std::string_view session_id;
  std::string_view client_id;
  std::uint64_t first_seq = 0;  // sequence number of items[0]; items are consecutive
  bool flush = false;           // make this and every earlier request eligible to run
  std::vector<SendItem> items;
};

struct Ack {
  std::string session_id;
  std::string client_id;
  std::uint64_t first_seq = 0;
  std::uint64_t count = 0;
  std::uint64_t first_request_id = 0;  // request ids of kItemOk items, consecutive
  std::string statuses;                // one ItemStatus byte per item, or empty: all ok
};

// A whole session in one message: create_session, open_client, one
// flushed send (first_seq 1), end_requests and a seal. Views into the frame.
struct Submit {
  CreateSession create;
  std::string_view client_id;
  std::vector<SendItem> items;
  // Optional (field 9): hold the reply up to this long for every answer
  // (durable: committed) and send them with it; 0: reply at once.
  std::uint64_t wait_ms = 0;
};

// Its reply: the new session and the acknowledgement of its one batch.
struct Submitted {
  SessionInfo info;
  std::uint64_t first_request_id = 0;  // request ids of kItemOk items, consecutive
  std::uint64_t count = 0;
  std::string statuses;  // one ItemStatus byte per item, or empty: all ok
  // Decoded only (field 9, a submit with wait_ms): every answer of the
  // session, as response items (views into the reply; checked).
  bool has_answers = false;
  Reader answers;
};

struct ClientRef {  // Flush, RespAck (count), EndRequests (last_seq)
  std::string session_id;
  std::string client_id;
  std::uint64_t value = 0;
};

struct Close {
  std::string session_id;
  CloseMode mode = CloseMode::kSeal;
};

struct Fetch {
  std::string session_id;
  std::uint64_t cursor = 0;   // response sequence number to start at (1-based; 0 = the beginning)
  std::uint64_t max = 0;      // most responses in one reply
  std::uint64_t wait_ms = 0;  // wait this long for new responses when none is ready
};

// The stored requests of a durable session, by request id from `from_id`
// (resubmit reads them). The reply carries whole journaled batches up to
// about `max` requests.
struct Requests {
  std::string session_id;
  std::uint64_t from_id = 0;
  std::uint64_t max = 0;
};
struct StoredRequest {
  std::uint64_t request_id = 0;
  std::string user_data, payload;
};
struct RequestsReply {
  std::vector<StoredRequest> items;
  std::uint64_t next_id = 0;  // where the next page starts
  bool end = false;           // no request after these
};

// What a node says about one service it hosts (Register, optional field 7).
struct ServiceAd {
  std::string advertised;             // name@version
  std::uint64_t task_timeout_ms = 0;  // 0: none registered
  std::int64_t max_retries = -1;      // -1: none registered
  bool sessions = false;              // serves stateful sessions (element 4; older nodes omit it)
};

struct Register {
  std::string node_id;
  std::string host;
  std::uint64_t pid = 0;
  std::uint64_t workers = 0;
  std::uint64_t capacity = 0;
  std::vector<std::string> services;    // name@version (older nodes: bare names)
  std::vector<ServiceAd> service_info;  // optional; absent from older nodes
};

struct Registered {
  std::uint64_t heartbeat_ms = 0;
  std::uint64_t misses = 0;
  std::string head_instance;
  std::uint64_t epoch = 0;  // the head's lease epoch (0: no lease; absent from older heads)
};

// A node's heartbeat carries the credit it wants from now on (adaptive
// prefetch, fewer workers while some are stuck) and how many of its workers
// are stuck in a call that ran past its task timeout. Older nodes send the
// id alone (credit unchanged) or the id and a non-zero credit. Newer nodes
// add the heartbeat interval they use now (the head's to check them by).
struct Heartbeat {
  std::string_view id;
  bool has_capacity = false;  // capacity is meaningful (0 allowed with `stuck`)
  std::uint64_t capacity = 0;
  std::uint64_t stuck = 0;
  std::uint64_t heartbeat_ms = 0;  // 0: not sent (an older node)
};

// The head's heartbeat, its answer to a node's: its instance id and the
// heartbeat interval the node is to use from now on (0: not sent, an older
// head; the node keeps the interval it has).
struct HeadHeartbeat {
  std::string_view head_instance;
  std::uint64_t heartbeat_ms = 0;
};

struct Task {
  std::uint64_t task_id;
  std::string_view payload;
};

struct Tasks {
  std::string_view service;
  std::vector<Task> items;
  // The task timeout of these tasks, counted from when a worker starts one
  // (0: none). The node enforces it: a task past it is reported
  // fault::kTaskTimeout and its worker is stuck until the call returns.
  std::uint64_t timeout_ms = 0;
  // Field 4, stateful sessions only: the key of the service instance these
  // tasks run on, "<session id>.<instance number>". The node makes the
  // instance (and opens its session) the first time it sees a key, and keeps
  // it until an EndSession names it or the node registers again. Empty: any
  // pooled instance (per-call work).
  std::string_view instance;
};

// Head -> node: close and free a stateful session's instance.
struct EndSession {
  std::string_view instance;
};

struct Result1 {
  std::uint64_t task_id;
  std::string_view fault_code;  // empty: ok
  std::string_view data;
};

struct Results {
  std::vector<Result1> items;
};

// ---- encoding ---------------------------------------------------------------

// Starts a message: writes [version, type, corr] inside an array of 3 + nfields.
Writer begin(std::uint32_t type, std::uint64_t corr, std::uint32_t nfields,
             std::size_t reserve = 128);

zmq::message_t encode_error(std::uint64_t corr, const Status& st);
// A standby's answer to any request but `status`: error not_active with the
// epoch and the active head's endpoints after the message.
zmq::message_t encode_not_active(std::uint64_t corr, std::string_view message, std::uint64_t epoch,
                                 std::string_view active_frontend, std::string_view active_backend);
// hello_ok: version, instance, epoch.
zmq::message_t encode_hello_ok(std::uint64_t corr, std::string_view version,
                               std::string_view instance, std::uint64_t epoch);
struct HelloOk {
  std::string head_version, head_instance;
  std::uint64_t epoch = 0;  // absent from older heads: 0
};
Status decode_hello_ok(Envelope& e, HelloOk* out);
zmq::message_t encode_ok(std::uint64_t corr);
zmq::message_t encode_hello(std::uint64_t corr, std::string_view version);
zmq::message_t encode_create_session(std::uint64_t corr, const CreateSession& m);
zmq::message_t encode_attach(std::uint64_t corr, std::string_view session_id);
zmq::message_t encode_session_info(std::uint64_t corr, const SessionInfo& m);
zmq::message_t encode_open_client(std::uint64_t corr, const OpenClient& m);
zmq::message_t encode_client_opened(std::uint64_t corr, const ClientOpened& m);
zmq::message_t encode_send(std::uint64_t corr, const Send& m);
zmq::message_t encode_ack(std::uint64_t corr, const Ack& m);
zmq::message_t encode_submit(std::uint64_t corr, const Submit& m);
// `answers`: the response items of every answer, encoded (write_response_item)
// and `count` of them, sent as field 9; none when `with_answers` is false.
zmq::message_t encode_submitted(std::uint64_t corr, const Submitted& m, bool with_answers = false,
                                std::string_view answers = {}, std::uint32_t count = 0);
// Flush, EndRequests, RespAck share one layout.
zmq::message_t encode_client_ref(std::uint32_t type, std::uint64_t corr, const ClientRef& m);
zmq::message_t encode_close(std::uint64_t corr, const Close& m);
zmq::message_t encode_fetch(std::uint64_t corr, const Fetch& m);
zmq::message_t encode_query(std::uint32_t type, std::uint64_t corr, std::string_view arg);
zmq::message_t encode_register(std::uint64_t corr, const Register& m);
zmq::message_t encode_registered(std::uint64_t corr, const Registered& m);
// The head's heartbeat: its instance and, when non-zero, the interval the
// node is to use (older heads: the instance alone).
zmq::message_t encode_heartbeat(std::string_view head_instance, std::uint64_t heartbeat_ms = 0);
// A node's heartbeat with its credit, stuck workers and, when non-zero, the
// heartbeat interval it uses.
zmq::message_t encode_node_heartbeat(std::string_view node_id, std::uint64_t capacity,
                                     std::uint64_t stuck, std::uint64_t heartbeat_ms = 0);
zmq::message_t encode_end_session(std::string_view instance);
zmq::message_t encode_requests(std::uint64_t corr, const Requests& m);
zmq::message_t encode_requests_reply(std::uint64_t corr, const RequestsReply& m);

// ---- decoding (fields after the envelope) -----------------------------------

Status decode_error(Envelope& e, Error* out);
Status decode_create_session(Envelope& e, CreateSession* out);
Status decode_session_info(Envelope& e, SessionInfo* out);
Status decode_open_client(Envelope& e, OpenClient* out);
Status decode_client_opened(Envelope& e, ClientOpened* out);
Status decode_send(Envelope& e, Send* out);
Status decode_ack(Envelope& e, Ack* out);
Status decode_submit(Envelope& e, Submit* out);
Status decode_submitted(Envelope& e, Submitted* out);
Status decode_client_ref(Envelope& e, ClientRef* out);
Status decode_close(Envelope& e, Close* out);
Status decode_fetch(Envelope& e, Fetch* out);
// For queries with a single string argument (Status, Attach).
Status decode_query(Envelope& e, std::string* arg);
Status decode_register(Envelope& e, Register* out);
Status decode_heartbeat(Envelope& e, Heartbeat* out);
Status decode_head_heartbeat(Envelope& e, HeadHeartbeat* out);
Status decode_registered(Envelope& e, Registered* out);
Status decode_tasks(Envelope& e, Tasks* out);
Status decode_end_session(Envelope& e, EndSession* out);
Status decode_requests(Envelope& e, Requests* out);
Status decode_requests_reply(Envelope& e, RequestsReply* out);
Status decode_results(Envelope& e, Results* out);
// Responses (pushed) and FetchReply share the item layout
// [request_id, user_data, fault_code|nil, data].
Status decode_response_items(Reader& items, std::vector<Response>* out);
// One item of those as views into the message; false at the end or on a
// malformed item (then `items` has failed: check items.ok()).
bool read_response_item(Reader& items, ResponseView* out);
// Checks every item (views only, nothing kept); the item count, or an error.
Result<std::size_t> check_response_items(Reader items);

// Builds the Responses/FetchReply item array incrementally.
void write_response_item(Writer& w, std::uint64_t request_id, std::string_view user_data,
                         std::string_view fault_code, std::string_view data);

// Checks version and returns a person-readable error for a newer peer.
Status check_version(const Envelope& e);

// ---- status tables ------------------------------------------------------------
//
// The replies to status, sessions and nodes (docs/protocol.md, "Status
// fields"). Each is a msgpack map, so a newer peer may add fields and an
// older one ignores them; the names, their order and their count come from
// one list per type (for_each_field), used to encode, decode and print.

struct SessionStatus {
  std::string session_id, service;
  bool durable = false;
  std::string owner;  // the owning key's file name; empty without CURVE
  std::string state;  // state_name()
  std::uint64_t total = 0, committed = 0, queued = 0, running = 0, done = 0, faulted = 0;
  std::uint64_t removed = 0;  // requests of removed clients
  std::uint64_t clients = 0, clients_open = 0, clients_removed = 0;
  std::int64_t created = 0;  // Unix seconds
  bool complete = false;
  std::uint64_t responses_queued = 0;
  std::int64_t idle_ms = 0, client_idle_timeout_ms = 0;
  bool stateful = false;
  // What became of removed clients (at most 3 named): "client C removed at
  // 2026-11-30T01:02:03Z after 2s idle, before committing, with 20 requests".
  std::string removals;
  // An open client that has not committed (the soonest to be removed when
  // idle), and in how many ms it would be; empty / 0: none.
  std::string waiting_for;
  std::int64_t removal_in_ms = 0;
  // Why its work cannot run now, in one line (no node offers its service;
  // durable, the head's journal refuses writes, e.g. its disk is full);
  // empty when it can, or when it is complete.
  std::string paused;
  // The head's verdict that no node offers its service (docs/protocol.md,
  // "A service no node offers"): `paused` then says so.
  bool unoffered = false;
};

struct GridStatus {
  std::uint64_t nodes = 0, workers = 0, sessions = 0, queued = 0, running = 0, done = 0;
  std::uint64_t faulted = 0, bad_messages = 0;
  double rate = 0;  // answers per second over the last second
  std::string instance;
  std::string journal;  // "none", "ok", or why it refuses requests
  std::uint64_t journal_syncs = 0, journal_ops = 0, journal_bytes = 0;
  std::uint64_t journal_read_errors = 0, journal_corrupt_records = 0, data_loss = 0;
  std::string dashboard;  // the HTTP listener's URL; empty when off
  // Failover (docs/operations.md): "active", "standby", or "single" (no
  // --data-dir: no lease, no standby); the lease epoch this head holds or
  // (standby) last saw; the active head's client endpoint; takeovers this
  // head made.
  std::string role;
  std::uint64_t epoch = 0;
  std::string active;
  std::uint64_t takeovers = 0;
  // The heartbeat interval the head tells its nodes now (--heartbeat, or
  // longer on a big grid: docs/protocol.md, "Nodes").
  std::uint64_t heartbeat_ms = 0;
};

struct NodeStatus {
  std::string state;  // ok, draining, quarantined
  std::string node_id, host;
  std::uint64_t pid = 0, workers = 0, stuck = 0, capacity = 0, inflight = 0, done = 0;
  std::uint64_t faulted = 0;
  std::int64_t last_heartbeat_ms = 0, uptime_ms = 0;
  std::uint64_t heartbeat_ms = 0;  // the heartbeat interval the head holds it to
  std::string services;            // comma-separated name@version
};

// zgrid drain NODE [--undo]
struct Drain {
  std::string node_id;
  bool undo = false;
};

// Calls f(name, field) for every field, in wire order; `S` may be const.
template <class S, class F>
requires std::same_as<std::remove_const_t<S>, SessionStatus>
void for_each_field(S& s, F&& f) {
  f("session_id", s.session_id), f("service", s.service), f("durable", s.durable);
  f("owner", s.owner), f("state", s.state), f("total", s.total), f("committed", s.committed);
  f("queued", s.queued), f("running", s.running), f("done", s.done), f("faulted", s.faulted);
  f("removed", s.removed), f("clients", s.clients), f("clients_open", s.clients_open);
  f("clients_removed", s.clients_removed), f("created", s.created), f("complete", s.complete);
  f("responses_queued", s.responses_queued), f("idle_ms", s.idle_ms);
  f("client_idle_timeout_ms", s.client_idle_timeout_ms), f("stateful", s.stateful);
  f("removals", s.removals), f("waiting_for", s.waiting_for), f("removal_in_ms", s.removal_in_ms);
  f("paused", s.paused), f("unoffered", s.unoffered);
}
template <class S, class F>
requires std::same_as<std::remove_const_t<S>, GridStatus>
void for_each_field(S& s, F&& f) {
  f("nodes", s.nodes), f("workers", s.workers), f("sessions", s.sessions);
  f("queued", s.queued), f("running", s.running), f("done", s.done), f("faulted", s.faulted);
  f("bad_messages", s.bad_messages), f("rate", s.rate), f("instance", s.instance);
  f("journal", s.journal), f("journal_syncs", s.journal_syncs), f("journal_ops", s.journal_ops);
  f("journal_bytes", s.journal_bytes), f("journal_read_errors", s.journal_read_errors);
  f("journal_corrupt_records", s.journal_corrupt_records), f("data_loss", s.data_loss);
  f("dashboard", s.dashboard), f("role", s.role), f("epoch", s.epoch), f("active", s.active);
  f("takeovers", s.takeovers), f("heartbeat_ms", s.heartbeat_ms);
}
template <class S, class F>
requires std::same_as<std::remove_const_t<S>, NodeStatus>
void for_each_field(S& s, F&& f) {
  f("state", s.state), f("node_id", s.node_id), f("host", s.host), f("pid", s.pid);
  f("workers", s.workers), f("stuck", s.stuck), f("capacity", s.capacity);
  f("inflight", s.inflight), f("done", s.done), f("faulted", s.faulted);
  f("last_heartbeat_ms", s.last_heartbeat_ms), f("uptime_ms", s.uptime_ms);
  f("heartbeat_ms", s.heartbeat_ms), f("services", s.services);
}

zmq::message_t encode_session_status(std::uint64_t corr, const SessionStatus& m);
zmq::message_t encode_grid_status(std::uint64_t corr, const GridStatus& m);
zmq::message_t encode_sessions_reply(std::uint64_t corr, const std::vector<SessionStatus>& m);
zmq::message_t encode_nodes_reply(std::uint64_t corr, const std::vector<NodeStatus>& m);
zmq::message_t encode_drain(std::uint64_t corr, const Drain& m);
// A status reply is a session's when it names one (session_id), else the grid's.
Status decode_session_status(Envelope& e, SessionStatus* out);
Status decode_grid_status(Envelope& e, GridStatus* out);
Status decode_sessions_reply(Envelope& e, std::vector<SessionStatus>* out);
Status decode_nodes_reply(Envelope& e, std::vector<NodeStatus>* out);
Status decode_drain(Envelope& e, Drain* out);

}  // namespace zgrid::proto
