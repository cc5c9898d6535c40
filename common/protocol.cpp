#include "common/protocol.hpp"

namespace zgrid::proto {

namespace {
// The table's own consistency (common/messages.def), checked at compile time.
constexpr bool numbers_unique_and_small() {
  for (std::size_t i = 0; i < std::size(kMessages); ++i) {
    if (kMessages[i].type == 0 || kMessages[i].type >= kTypeLimit) return false;
    for (std::size_t j = i + 1; j < std::size(kMessages); ++j)
      if (kMessages[i].type == kMessages[j].type || kMessages[i].name == kMessages[j].name)
        return false;
  }
  return true;
}
// By name, not through message_named(): GCC does not fold a pointer
// comparison into a constant under -fsanitize=address.
constexpr bool replies_are_messages() {
  for (const MessageInfo& m : kMessages) {
    bool found = m.reply == "none";
    for (const MessageInfo& r : kMessages) found = found || r.name == m.reply;
    if (!found) return false;
  }
  return true;
}
static_assert(numbers_unique_and_small(), "messages.def: a number or a name twice, or >= 256");
static_assert(replies_are_messages(), "messages.def: a reply that is no message");
}  // namespace

std::string_view direction_text(Direction d) {
  switch (d) {
    case Direction::kClientToHead:
      return "client→head";
    case Direction::kNodeToHead:
      return "node→head";
    case Direction::kNodeAndHead:
      return "node↔head";
    case Direction::kHeadToNode:
      return "head→node";
    case Direction::kHeadToClient:
      return "head→client";
    case Direction::kHeadToClientPushed:
      return "head→client (pushed)";
    case Direction::kHeadToAny:
      return "head→client, head→node";
  }
  return "unknown";
}

const char* state_name(SessionState s) {
  switch (s) {
    case SessionState::kOpen:
      return "open";
    case SessionState::kSealed:
      return "sealed";
    case SessionState::kCancelled:
      return "cancelled";
    case SessionState::kClosed:
      return "closed";
  }
  return "unknown";
}

Writer begin(std::uint32_t type, std::uint64_t corr, std::uint32_t nfields, std::size_t reserve) {
  Writer w(reserve);
  w.array(3 + nfields).u64(kVersion).u64(type).u64(corr);
  return w;
}

zmq::message_t encode_error(std::uint64_t corr, const Status& st) {
  Writer w = begin(kError, corr, 2);
  w.u64(static_cast<std::uint64_t>(st.code())).str(st.message());
  return w.finish();
}

zmq::message_t encode_not_active(std::uint64_t corr, std::string_view message, std::uint64_t epoch,
                                 std::string_view active_frontend,
                                 std::string_view active_backend) {
  Writer w = begin(kError, corr, 5);
  w.u64(static_cast<std::uint64_t>(Code::kNotActive)).str(message).u64(epoch);
  w.str(active_frontend).str(active_backend);
  return w.finish();
}

zmq::message_t encode_hello_ok(std::uint64_t corr, std::string_view version,
                               std::string_view instance, std::uint64_t epoch) {
  Writer w = begin(kHelloOk, corr, 3);
  w.str(version).str(instance).u64(epoch);
  return w.finish();
}

zmq::message_t encode_ok(std::uint64_t corr) {
  return begin(kOk, corr, 0).finish();
}

zmq::message_t encode_hello(std::uint64_t corr, std::string_view version) {
  Writer w = begin(kHello, corr, 1);
  w.str(version);
  return w.finish();
}

zmq::message_t encode_create_session(std::uint64_t corr, const CreateSession& m) {
  bool token = !m.token.empty();
  Writer w = begin(kCreateSession, corr, token ? 7 : m.stateful ? 6 : 5);
  w.str(m.service)
      .boolean(m.durable)
      .u64(m.client_idle_timeout_ms)
      .u64(m.task_timeout_ms)
      .u64(m.deadline_ms);
  if (m.stateful || token) w.boolean(m.stateful);  // field 6
  if (token) w.str(m.token);                       // field 7: a head that predates it ignores it
  return w.finish();
}

zmq::message_t encode_attach(std::uint64_t corr, std::string_view session_id) {
  return encode_query(kAttachSession, corr, session_id);
}

zmq::message_t encode_session_info(std::uint64_t corr, const SessionInfo& m) {
  Writer w = begin(kSessionInfo, corr, 5);
  w.str(m.session_id).str(m.service).boolean(m.durable).u64(static_cast<std::uint64_t>(m.state));
  w.boolean(m.stateful);
  return w.finish();
}

zmq::message_t encode_open_client(std::uint64_t corr, const OpenClient& m) {
  Writer w = begin(kOpenClient, corr, m.token.empty() ? 2 : 3);
  w.str(m.session_id).str(m.client_id);
  if (!m.token.empty()) w.str(m.token);  // a head that predates it ignores it
  return w.finish();
}

zmq::message_t encode_client_opened(std::uint64_t corr, const ClientOpened& m) {
  Writer w = begin(kClientOpened, corr, 3);
  w.str(m.session_id).str(m.client_id).u64(m.acked_seq);
  return w.finish();
}

namespace {

std::size_t items_bytes(const std::vector<SendItem>& items) {
  std::size_t bytes = 64;
  for (const auto& it : items) bytes += it.user_data.size() + it.payload.size() + 6;
  return bytes;
}

void write_items(Writer& w, const std::vector<SendItem>& items) {
  w.array(static_cast<std::uint32_t>(items.size()));
  for (const auto& it : items) w.array(2).bin(it.user_data).bin(it.payload);
}

// Oversized items are kept as views and refused per item (kItemTooLarge).
void read_items(Reader& r, std::vector<SendItem>* out) {
  Reader items = r.array(kMaxBatchItems);
  out->clear();
  if (!r.ok()) return;
  out->reserve(items.remaining());
  while (!items.at_end() && items.ok()) {
    Reader it = items.array(2);
    SendItem si;
    si.user_data = it.bytes();
    si.payload = it.bytes();
    if (!it.ok()) items.fail(it);
    out->push_back(si);
  }
  if (!items.ok()) r.fail(items);
}

void write_statuses(Writer& w, const std::string& statuses) {
  if (statuses.empty())
    w.nil();
  else
    w.bin(statuses);
}

}  // namespace

zmq::message_t encode_send(std::uint64_t corr, const Send& m) {
  Writer w = begin(kSend, corr, 5, items_bytes(m.items));
  w.str(m.session_id).str(m.client_id).u64(m.first_seq).boolean(m.flush);
  write_items(w, m.items);
  return w.finish();
}

zmq::message_t encode_submit(std::uint64_t corr, const Submit& m) {
  const CreateSession& c = m.create;
  Writer w = begin(kSubmit, corr, m.wait_ms > 0 ? 9 : 8, items_bytes(m.items) + c.service.size());
  w.str(c.service).boolean(c.durable).u64(c.client_idle_timeout_ms).u64(c.task_timeout_ms);
  w.u64(c.deadline_ms).boolean(c.stateful).str(m.client_id);
  write_items(w, m.items);
  if (m.wait_ms > 0) w.u64(m.wait_ms);
  return w.finish();
}

zmq::message_t encode_submitted(std::uint64_t corr, const Submitted& m, bool with_answers,
                                std::string_view answers, std::uint32_t count) {
  const SessionInfo& i = m.info;
  Writer w =
      begin(kSubmitted, corr, with_answers ? 9 : 8, 128 + m.statuses.size() + answers.size());
  w.str(i.session_id).str(i.service).boolean(i.durable).u64(static_cast<std::uint64_t>(i.state));
  w.boolean(i.stateful).u64(m.first_request_id).u64(m.count);
  write_statuses(w, m.statuses);
  if (with_answers) {
    w.patch_array32(w.array32_placeholder(), count);
    w.raw(answers);
  }
  return w.finish();
}

zmq::message_t encode_ack(std::uint64_t corr, const Ack& m) {
  Writer w = begin(kAck, corr, 6, 96 + m.statuses.size());
  w.str(m.session_id).str(m.client_id).u64(m.first_seq).u64(m.count).u64(m.first_request_id);
  write_statuses(w, m.statuses);
  return w.finish();
}

zmq::message_t encode_client_ref(std::uint32_t type, std::uint64_t corr, const ClientRef& m) {
  Writer w = begin(type, corr, 3);
  w.str(m.session_id).str(m.client_id).u64(m.value);
  return w.finish();
}

zmq::message_t encode_close(std::uint64_t corr, const Close& m) {
  Writer w = begin(kClose, corr, 2);
  w.str(m.session_id).u64(static_cast<std::uint64_t>(m.mode));
  return w.finish();
}

zmq::message_t encode_fetch(std::uint64_t corr, const Fetch& m) {
  Writer w = begin(kFetch, corr, 4);
  w.str(m.session_id).u64(m.cursor).u64(m.max).u64(m.wait_ms);
  return w.finish();
}

zmq::message_t encode_query(std::uint32_t type, std::uint64_t corr, std::string_view arg) {
  Writer w = begin(type, corr, 1);
  w.str(arg);
  return w.finish();
}

zmq::message_t encode_register(std::uint64_t corr, const Register& m) {
  Writer w = begin(kRegister, corr, 7);
  w.str(m.node_id).str(m.host).u64(m.pid).u64(m.workers).u64(m.capacity);
  w.array(static_cast<std::uint32_t>(m.services.size()));
  for (const auto& s : m.services) w.str(s);
  w.array(static_cast<std::uint32_t>(m.service_info.size()));
  for (const auto& s : m.service_info)
    w.array(4).str(s.advertised).u64(s.task_timeout_ms).i64(s.max_retries).boolean(s.sessions);
  return w.finish();
}

zmq::message_t encode_registered(std::uint64_t corr, const Registered& m) {
  Writer w = begin(kRegistered, corr, 4);
  w.u64(m.heartbeat_ms).u64(m.misses).str(m.head_instance).u64(m.epoch);
  return w.finish();
}

zmq::message_t encode_heartbeat(std::string_view head_instance, std::uint64_t heartbeat_ms) {
  Writer w = begin(kHeartbeat, 0, heartbeat_ms > 0 ? 2 : 1);
  w.str(head_instance);
  if (heartbeat_ms > 0) w.u64(heartbeat_ms);
  return w.finish();
}

zmq::message_t encode_node_heartbeat(std::string_view node_id, std::uint64_t capacity,
                                     std::uint64_t stuck, std::uint64_t heartbeat_ms) {
  Writer w = begin(kHeartbeat, 0, heartbeat_ms > 0 ? 4 : 3);
  w.str(node_id).u64(capacity).u64(stuck);
  if (heartbeat_ms > 0) w.u64(heartbeat_ms);
  return w.finish();
}

void write_response_item(Writer& w, std::uint64_t request_id, std::string_view user_data,
                         std::string_view fault_code, std::string_view data) {
  w.array(4).u64(request_id).bin(user_data);
  if (fault_code.empty())
    w.nil();
  else
    w.str(fault_code);
  w.bin(data);
}

// ---- decoding ---------------------------------------------------------------

namespace {
// A structural error is kProtocol; a well-formed value outside its documented
// range is kInvalidArgument, naming the field and the range.
Status finish(const Reader& r, const char* what) {
  if (r.ok()) return Status::OK();
  if (r.range_error()) {
    const Reader::RangeError& e = r.range();
    std::string v =
        e.negative ? std::to_string(static_cast<std::int64_t>(e.value)) : std::to_string(e.value);
    return Status::InvalidArgument(std::string(what) + ": " + e.field + " " + v + " is outside " +
                                   std::to_string(e.lo) + ".." + std::to_string(e.hi));
  }
  return Status::Protocol(std::string("malformed ") + what + ": " + r.error());
}

// A numeric field read through its range (common/messages.def).
std::uint64_t in(Reader& r, const FieldRange& f) {
  return r.u64_in(static_cast<std::uint64_t>(f.lo), static_cast<std::uint64_t>(f.hi), f.field);
}
std::int64_t in_signed(Reader& r, const FieldRange& f) {
  return r.i64_in(f.lo, f.hi, f.field);
}

std::string name_field(Reader& r) {
  return std::string(r.bytes(kMaxNameLength));
}

// create_session's fields, which submit starts with. `all_required`: the
// last three too (submit); else each may be absent (older clients).
void read_create(Reader& r, CreateSession* c, bool all_required) {
  c->service = name_field(r);
  c->durable = r.boolean();
  c->client_idle_timeout_ms = in(r, range::kClientIdleTimeout);
  auto absent = [&] { return !all_required && r.at_end(); };
  c->task_timeout_ms = absent() ? 0 : in(r, range::kTaskTimeout);
  c->deadline_ms = absent() ? 0 : in(r, range::kDeadline);
  c->stateful = absent() ? false : r.boolean();
}

// An optional token field (create_session, open_client); the head checks
// its characters (valid_name) as it does a client id's.
void read_token(Reader& r, std::string* token) {
  token->clear();
  if (r.ok() && !r.at_end()) *token = name_field(r);
}
}  // namespace

Status check_version(const Envelope& e) {
  if (e.version == kVersion) return Status::OK();
  return Status::Version("peer speaks protocol v" + std::to_string(e.version) +
                         ", this build speaks v" + std::to_string(kVersion));
}

Status decode_error(Envelope& e, Error* out) {
  Reader& r = e.fields;
  out->code = code_from_int(r.u64());
  out->message = std::string(r.bytes(4096));
  if (out->code == Code::kOk) out->code = Code::kInternal;
  if (out->code == Code::kNotActive && !r.at_end()) {
    out->epoch = r.u64();
    out->active_frontend = std::string(r.bytes(kMaxEndpointLength));
    out->active_backend = std::string(r.bytes(kMaxEndpointLength));
  }
  return finish(r, "error");
}

Status decode_hello_ok(Envelope& e, HelloOk* out) {
  Reader& r = e.fields;
  out->head_version = std::string(r.bytes(kMaxNameLength));
  out->head_instance = std::string(r.bytes(64));
  if (!r.at_end()) out->epoch = r.u64();
  return finish(r, "hello_ok");
}

Status decode_create_session(Envelope& e, CreateSession* out) {
  Reader& r = e.fields;
  read_create(r, out, /*all_required=*/false);  // older clients send three fields
  read_token(r, &out->token);                   // field 7; older clients omit it
  return finish(r, "create_session");
}

Status decode_session_info(Envelope& e, SessionInfo* out) {
  Reader& r = e.fields;
  out->session_id = name_field(r);
  out->service = name_field(r);
  out->durable = r.boolean();
  out->state = static_cast<SessionState>(in(r, range::kState));
  out->stateful = r.ok() && !r.at_end() ? r.boolean() : false;  // field 5; older heads omit it
  return finish(r, "session_info");
}

Status decode_open_client(Envelope& e, OpenClient* out) {
  Reader& r = e.fields;
  out->session_id = name_field(r);
  out->client_id = name_field(r);
  read_token(r, &out->token);  // field 3; older clients omit it
  return finish(r, "open_client");
}

Status decode_client_opened(Envelope& e, ClientOpened* out) {
  Reader& r = e.fields;
  out->session_id = name_field(r);
  out->client_id = name_field(r);
  out->acked_seq = in(r, range::kAckedSeq);
  return finish(r, "client_opened");
}

Status decode_send(Envelope& e, Send* out) {
  Reader& r = e.fields;
  out->session_id = r.bytes(kMaxNameLength);
  out->client_id = r.bytes(kMaxNameLength);
  out->first_seq = in(r, range::kFirstSeq);
  out->flush = r.boolean();
  read_items(r, &out->items);
  return finish(r, "send");
}

// Every field is required: a submit is new in this protocol, with no older
// layout to accept.
Status decode_submit(Envelope& e, Submit* out) {
  Reader& r = e.fields;
  read_create(r, &out->create, /*all_required=*/true);
  out->client_id = r.bytes(kMaxNameLength);
  read_items(r, &out->items);
  if (r.ok() && !r.at_end()) out->wait_ms = in(r, range::kWait);  // field 9; older clients omit it
  return finish(r, "submit");
}

Status decode_submitted(Envelope& e, Submitted* out) {
  Reader& r = e.fields;
  SessionInfo& i = out->info;
  i.session_id = name_field(r);
  i.service = name_field(r);
  i.durable = r.boolean();
  i.state = static_cast<SessionState>(in(r, range::kState));
  i.stateful = r.boolean();
  out->first_request_id = in(r, range::kFirstRequestId);
  out->count = in(r, range::kCount);
  bool nil = false;
  out->statuses = std::string(r.bytes_or_nil(&nil, kMaxBatchItems));
  if (r.ok() && !r.at_end()) {  // field 9: the answers of a submit with wait_ms
    out->answers = r.array(kMaxBatchItems);
    if (!r.ok()) return finish(r, "submitted");
    auto checked = check_response_items(out->answers);
    if (!checked.ok()) return checked.status();
    out->has_answers = true;
  }
  return finish(r, "submitted");
}

Status decode_ack(Envelope& e, Ack* out) {
  Reader& r = e.fields;
  out->session_id = name_field(r);
  out->client_id = name_field(r);
  out->first_seq = in(r, range::kFirstSeq);
  out->count = in(r, range::kCount);
  out->first_request_id = in(r, range::kFirstRequestId);
  bool nil = false;
  out->statuses = std::string(r.bytes_or_nil(&nil, kMaxBatchItems));
  return finish(r, "ack");
}

Status decode_client_ref(Envelope& e, ClientRef* out) {
  Reader& r = e.fields;
  out->session_id = name_field(r);
  out->client_id = name_field(r);
  out->value = in(r, range::kValue);
  return finish(r, proto::type_name(e.type));
}

Status decode_close(Envelope& e, Close* out) {
  Reader& r = e.fields;
  out->session_id = name_field(r);
  std::uint64_t mode = in(r, range::kMode);
  out->mode = static_cast<CloseMode>(mode);
  return finish(r, "close");
}

Status decode_fetch(Envelope& e, Fetch* out) {
  Reader& r = e.fields;
  out->session_id = name_field(r);
  out->cursor = in(r, range::kCursor);
  out->max = in(r, range::kFetchMax);
  out->wait_ms = in(r, range::kWait);
  return finish(r, "fetch");
}

Status decode_query(Envelope& e, std::string* arg) {
  Reader& r = e.fields;
  *arg = r.at_end() ? std::string() : name_field(r);
  return finish(r, proto::type_name(e.type));
}

Status decode_register(Envelope& e, Register* out) {
  Reader& r = e.fields;
  out->node_id = name_field(r);
  out->host = name_field(r);
  out->pid = in(r, range::kPid);
  out->workers = in(r, range::kWorkers);
  out->capacity = in(r, range::kCapacity);
  Reader svcs = r.array(256);
  out->services.clear();
  while (r.ok() && svcs.ok() && !svcs.at_end()) out->services.push_back(name_field(svcs));
  if (!svcs.ok()) r.fail(svcs);
  out->service_info.clear();
  if (r.ok() && !r.at_end()) {  // field 7, since service registration; older nodes omit it
    Reader info = r.array(256);
    while (r.ok() && info.ok() && !info.at_end()) {
      Reader it = info.array(4);
      ServiceAd ad;
      ad.advertised = name_field(it);
      ad.task_timeout_ms = in(it, range::kTaskTimeout);
      ad.max_retries = in_signed(it, range::kMaxRetries);
      ad.sessions = it.ok() && !it.at_end() ? it.boolean() : false;  // element 4 since sessions
      if (!it.ok()) info.fail(it);
      out->service_info.push_back(std::move(ad));
    }
    if (!info.ok()) r.fail(info);
  }
  return finish(r, "register");
}

Status decode_heartbeat(Envelope& e, Heartbeat* out) {
  Reader& r = e.fields;
  out->id = r.bytes(kMaxNameLength);
  out->has_capacity = false;
  out->capacity = out->stuck = out->heartbeat_ms = 0;
  if (r.ok() && !r.at_end()) {
    // Field 2 since adaptive prefetch, field 3 since stuck workers, field 4
    // since scaled heartbeats. In the two-field form a credit of 0 is not
    // allowed (older nodes meant "unchanged" by leaving the field out); with
    // `stuck`, 0 means every worker is stuck.
    std::uint64_t cap = in(r, range::kHeartbeatCapacity);
    if (!r.at_end()) {
      out->stuck = in(r, range::kStuck);
      if (r.ok() && !r.at_end()) out->heartbeat_ms = in(r, range::kHeartbeatMs);
    } else if (r.ok() && cap == 0) {
      r.fail("bad capacity");
    }
    out->capacity = cap;
    out->has_capacity = r.ok();
  }
  return finish(r, "heartbeat");
}

Status decode_head_heartbeat(Envelope& e, HeadHeartbeat* out) {
  Reader& r = e.fields;
  out->head_instance = r.bytes(kMaxNameLength);
  out->heartbeat_ms = 0;
  if (r.ok() && !r.at_end()) out->heartbeat_ms = in(r, range::kHeartbeatMs);
  return finish(r, "heartbeat");
}

Status decode_registered(Envelope& e, Registered* out) {
  Reader& r = e.fields;
  out->heartbeat_ms = in(r, range::kHeartbeatMs);
  out->misses = in(r, range::kMisses);
  out->head_instance = name_field(r);
  if (!r.at_end()) out->epoch = r.u64();
  return finish(r, "registered");
}

Status decode_tasks(Envelope& e, Tasks* out) {
  Reader& r = e.fields;
  out->service = r.bytes(kMaxNameLength);
  Reader items = r.array(kMaxBatchItems);
  out->items.clear();
  if (r.ok()) {
    out->items.reserve(items.remaining());
    while (!items.at_end() && items.ok()) {
      Reader it = items.array(2);
      Task t;
      t.task_id = it.u64();
      t.payload = it.bytes(kMaxPayload);
      if (!it.ok()) items.fail(it);
      out->items.push_back(t);
    }
    if (!items.ok()) r.fail(items);
  }
  // Field 3 since node-enforced task timeouts; older heads omit it.
  out->timeout_ms = r.ok() && !r.at_end() ? in(r, range::kTasksTimeout) : 0;
  // Field 4 since stateful sessions.
  out->instance = r.ok() && !r.at_end() ? r.bytes(kMaxNameLength) : std::string_view();
  return finish(r, "tasks");
}

zmq::message_t encode_requests(std::uint64_t corr, const Requests& m) {
  Writer w = begin(kRequests, corr, 3);
  w.str(m.session_id).u64(m.from_id).u64(m.max);
  return w.finish();
}

zmq::message_t encode_requests_reply(std::uint64_t corr, const RequestsReply& m) {
  std::size_t bytes = 64;
  for (const auto& it : m.items) bytes += it.user_data.size() + it.payload.size() + 16;
  Writer w = begin(kRequestsReply, corr, 3, bytes);
  w.array(static_cast<std::uint32_t>(m.items.size()));
  for (const auto& it : m.items) w.array(3).u64(it.request_id).bin(it.user_data).bin(it.payload);
  w.u64(m.next_id).boolean(m.end);
  return w.finish();
}

Status decode_requests(Envelope& e, Requests* out) {
  Reader& r = e.fields;
  out->session_id = name_field(r);
  out->from_id = in(r, range::kFromId);
  out->max = in(r, range::kRequestsMax);
  return finish(r, "requests");
}

Status decode_requests_reply(Envelope& e, RequestsReply* out) {
  Reader& r = e.fields;
  Reader items = r.array(kMaxBatchItems * 2);
  out->items.clear();
  while (r.ok() && items.ok() && !items.at_end()) {
    Reader it = items.array(3);
    StoredRequest q;
    q.request_id = it.u64();
    q.user_data = std::string(it.bytes(kMaxUserData));
    q.payload = std::string(it.bytes(kMaxPayload));
    if (!it.ok()) items.fail(it);
    out->items.push_back(std::move(q));
  }
  if (!items.ok()) r.fail(items);
  out->next_id = r.u64();
  out->end = r.boolean();
  return finish(r, "requests_reply");
}

zmq::message_t encode_end_session(std::string_view instance) {
  Writer w = begin(kEndSession, 0, 1);
  w.str(instance);
  return w.finish();
}

Status decode_end_session(Envelope& e, EndSession* out) {
  Reader& r = e.fields;
  out->instance = r.bytes(kMaxNameLength);
  if (r.ok() && out->instance.empty()) r.fail("empty instance");
  return finish(r, "end_session");
}

Status decode_results(Envelope& e, Results* out) {
  Reader& r = e.fields;
  Reader items = r.array(kMaxBatchItems);
  out->items.clear();
  if (r.ok()) {
    out->items.reserve(items.remaining());
    while (!items.at_end() && items.ok()) {
      Reader it = items.array(3);
      Result1 x;
      x.task_id = it.u64();
      bool nil = false;
      x.fault_code = it.bytes_or_nil(&nil, kMaxNameLength);
      x.data = it.bytes(kMaxPayload);
      if (!it.ok()) items.fail(it);
      out->items.push_back(x);
    }
    if (!items.ok()) r.fail(items);
  }
  return finish(r, "results");
}

bool read_response_item(Reader& items, ResponseView* out) {
  if (items.at_end() || !items.ok()) return false;
  Reader it = items.array(4);
  out->request_id = it.u64();
  out->user_data = it.bytes(kMaxUserData);
  bool nil = false;
  out->fault_code = it.bytes_or_nil(&nil, kMaxNameLength);
  out->data = it.bytes(kMaxPayload);
  if (!it.ok()) {
    items.fail(it);
    return false;
  }
  return true;
}

Result<std::size_t> check_response_items(Reader items) {
  std::size_t n = 0;
  ResponseView v;
  while (read_response_item(items, &v)) ++n;
  ZG_RETURN_IF_ERROR(finish(items, "responses"));
  return n;
}

Status decode_response_items(Reader& items, std::vector<Response>* out) {
  out->reserve(out->size() + items.remaining());
  ResponseView v;
  while (read_response_item(items, &v)) v.copy_to(&out->emplace_back());
  return finish(items, "responses");
}

// ---- status tables ------------------------------------------------------------

namespace {

struct FieldWriter {
  Writer& w;
  void operator()(std::string_view k, const std::string& v) { w.kv(k, v); }
  void operator()(std::string_view k, std::uint64_t v) { w.kv(k, v); }
  void operator()(std::string_view k, std::int64_t v) { w.kv_i(k, v); }
  void operator()(std::string_view k, double v) { w.kv_f(k, v); }
  void operator()(std::string_view k, bool v) { w.kv_b(k, v); }
};

template <class T>
void write_table(Writer& w, const T& t) {
  std::uint32_t n = 0;
  for_each_field(t, [&n](std::string_view, const auto&) { ++n; });
  w.map(n);
  FieldWriter fw{w};
  for_each_field(t, fw);
}

// One map value into its field; false when its type does not fit.
bool read_value(Reader& r, std::string* v) {
  Kind k = r.peek();
  if (k != Kind::kStr && k != Kind::kBin) return false;
  v->assign(r.bytes());
  return true;
}
bool read_value(Reader& r, std::uint64_t* v) {
  if (r.peek() != Kind::kUint) return false;
  *v = r.u64();
  return true;
}
bool read_value(Reader& r, std::int64_t* v) {
  Kind k = r.peek();
  if (k != Kind::kUint && k != Kind::kNegInt) return false;
  Reader look = r;
  if (k == Kind::kUint && look.u64() > static_cast<std::uint64_t>(INT64_MAX)) return false;
  *v = r.i64();
  return true;
}
bool read_value(Reader& r, double* v) {
  Kind k = r.peek();
  if (k == Kind::kFloat) {
    *v = r.f64();
    return true;
  }
  std::int64_t i;
  if (!read_value(r, &i)) return false;
  *v = static_cast<double>(i);
  return true;
}
bool read_value(Reader& r, bool* v) {
  if (r.peek() != Kind::kBool) return false;
  *v = r.boolean();
  return true;
}

// Fields by name; unknown names are skipped (a newer head), a known name
// with a value of the wrong type is a protocol error.
template <class T>
Status read_table(Reader& from, T* out, const char* what) {
  if (from.peek() != Kind::kMap)
    return Status::Protocol(std::string("malformed ") + what + ": not a map");
  Reader m = from.map();
  while (!m.at_end()) {
    if (m.peek() != Kind::kStr) {  // a key that is no name: skipped with its value
      m.skip();
      m.skip();
      continue;
    }
    std::string_view key = m.bytes();
    bool ok = true, known = false;
    for_each_field(*out, [&](std::string_view name, auto& field) {
      if (!known && name == key) {
        known = true;
        ok = read_value(m, &field);
      }
    });
    if (!ok)
      return Status::Protocol(std::string("malformed ") + what + ": field " + std::string(key) +
                              " has the wrong type");
    if (!known) m.skip();
  }
  return Status::OK();
}

template <class T>
zmq::message_t encode_table(std::uint32_t type, std::uint64_t corr, const T& t) {
  Writer w = begin(type, corr, 1, 512);
  write_table(w, t);
  return w.finish();
}

template <class T>
zmq::message_t encode_list(std::uint32_t type, std::uint64_t corr, const std::vector<T>& list) {
  Writer w = begin(type, corr, 1, 256 + list.size() * 400);
  w.array(static_cast<std::uint32_t>(list.size()));
  for (const T& t : list) write_table(w, t);
  return w.finish();
}

template <class T>
Status decode_list(Envelope& e, std::vector<T>* out, const char* what) {
  Reader arr = e.fields.array(1u << 24);
  out->clear();
  while (arr.ok() && !arr.at_end()) {
    T t;
    ZG_RETURN_IF_ERROR(read_table(arr, &t, what));
    out->push_back(std::move(t));
  }
  if (!arr.ok()) return Status::Protocol(std::string("malformed ") + what);
  return Status::OK();
}

}  // namespace

zmq::message_t encode_session_status(std::uint64_t corr, const SessionStatus& m) {
  return encode_table(kStatusReply, corr, m);
}
zmq::message_t encode_grid_status(std::uint64_t corr, const GridStatus& m) {
  return encode_table(kStatusReply, corr, m);
}
zmq::message_t encode_sessions_reply(std::uint64_t corr, const std::vector<SessionStatus>& m) {
  return encode_list(kSessionsReply, corr, m);
}
zmq::message_t encode_nodes_reply(std::uint64_t corr, const std::vector<NodeStatus>& m) {
  return encode_list(kNodesReply, corr, m);
}
zmq::message_t encode_drain(std::uint64_t corr, const Drain& m) {
  Writer w = begin(kDrain, corr, 2);
  w.str(m.node_id).boolean(m.undo);
  return w.finish();
}

Status decode_session_status(Envelope& e, SessionStatus* out) {
  return read_table(e.fields, out, "session status");
}
Status decode_grid_status(Envelope& e, GridStatus* out) {
  return read_table(e.fields, out, "grid status");
}
Status decode_sessions_reply(Envelope& e, std::vector<SessionStatus>* out) {
  return decode_list(e, out, "sessions reply");
}
Status decode_nodes_reply(Envelope& e, std::vector<NodeStatus>* out) {
  return decode_list(e, out, "nodes reply");
}
Status decode_drain(Envelope& e, Drain* out) {
  Reader& r = e.fields;
  out->node_id = name_field(r);
  out->undo = r.at_end() ? false : r.boolean();  // older clients send the id alone
  return finish(r, "drain");
}

}  // namespace zgrid::proto
