#include "head/client_handlers.hpp"

#include "head/status_rows.hpp"

#include <algorithm>
#include <array>
#include <memory>

#include "common/log.hpp"
#include "common/service_spec.hpp"
#include "common/util.hpp"
#include "head/journal_records.hpp"

namespace zgrid::head {

namespace {
constexpr const char* kLog = "head";

proto::SessionInfo info_of(const Session& s) {
  return proto::SessionInfo{s.id, s.service, s.durable, s.state(), s.stateful};
}
}  // namespace

Status ClientHandlers::handle(const Call& call) {
  // on_<name> of each client message in common/messages.def, by number.
  static constexpr auto kHandlers = [] {
    std::array<Handler, proto::kTypeLimit> t{};
#define ZG_CLIENT(Enum, name, number, reply) t[number] = &ClientHandlers::on_##name;
#include "common/messages.def"
    return t;
  }();
  Envelope& env = call.env;
  ctx_.stop.reach(proto::type_name(env.type));  // a test's stall (ZGRID_STOP_POINT)
  Handler h = env.type < kHandlers.size() ? kHandlers[env.type] : nullptr;
  if (h == nullptr) return Status::Protocol("unknown message type " + std::to_string(env.type));
  return (this->*h)(call);
}

Status ClientHandlers::on_hello(const Call& call) {
  reply_hello(call);
  return Status::OK();
}

Status ClientHandlers::on_ping(const Call& call) {
  Envelope& env = call.env;
  proto::ClientRef m;
  if (!env.fields.at_end()) {
    ZG_RETURN_IF_ERROR(proto::decode_client_ref(env, &m));
    Session* s;
    Client* c;
    if (!m.session_id.empty()) (void)bind_client(call, m.session_id, m.client_id, &s, &c);
  }
  // The reply names this head instance: a client notices a restart.
  reply_hello(call);
  return Status::OK();
}

Status ClientHandlers::on_flush(const Call& call) {
  return flush_or_end(call, false);
}

Status ClientHandlers::on_end_requests(const Call& call) {
  return flush_or_end(call, true);
}

Status ClientHandlers::on_resp_ack(const Call& call) {
  proto::ClientRef m;
  ZG_RETURN_IF_ERROR(proto::decode_client_ref(call.env, &m));
  Session* s;
  Client* c;
  if (!bind_client(call, m.session_id, m.client_id, &s, &c).ok()) return Status::OK();
  r_.outbox.acked(*c, m.value);
  // A sealed interactive session leaves once its last responses are
  // acknowledged (a submitted one is sealed before they are sent).
  r_.lifecycle.maybe_retire(*s);
  return Status::OK();
}

void ClientHandlers::reply_hello(const Call& call) {
  reply_(call.rid, proto::encode_hello_ok(call.env.corr, kVersion, ctx_.instance, ctx_.epoch));
}

Durable::OpDone ClientHandlers::reply_when_done(const std::string& rid, std::uint64_t corr) {
  return [this, rid, corr](bool ok, const std::string& err) {
    if (ok)
      reply_(rid, proto::encode_ok(corr));
    else
      reply_error(rid, corr, Durable::write_failed(err));
  };
}

Status ClientHandlers::find_owned(const std::string& sid, const std::string& key, Session** s) {
  *s = r_.sessions.find(sid);
  if (*s == nullptr) return session_not_found(sid);
  return r_.security.check_owner(**s, key);
}

Status ClientHandlers::session_not_found(const std::string& id) const {
  if (r_.sessions.purged(id)) return Status::NotFound("session " + id + " was purged");
  return Status::NotFound("unknown session " + id);
}

Status ClientHandlers::bind_client(const Call& call, const std::string& sid, const std::string& cid,
                                   Session** s, Client** c) {
  ZG_RETURN_IF_ERROR(find_owned(sid, call.peer_key, s));
  *c = (*s)->find_client(cid);
  if (*c == nullptr) return Status::NotFound("unknown client " + cid + " in session " + sid);
  if ((*c)->removed() || (*c)->removing)
    return Status::NotFound("client " + cid + " was removed (idle timeout)");
  (*c)->rid = call.rid;  // a reconnecting client arrives with a new routing id
  (*c)->last_activity = ctx_.now;
  (*s)->last_activity = ctx_.now;
  return Status::OK();
}

// Checks a new session's settings against this head and the caller's key,
// then creates it in memory (a durable one is journaled by the caller).
Result<Session*> ClientHandlers::new_session(const Call& call, const proto::CreateSession& m) {
  const HeadOptions& o = ctx_.o;
  if (!valid_name(m.service)) return Status::InvalidArgument("bad service name");
  if (auto sp = spec::parse(m.service); !sp.ok()) return sp.status();
  ZG_RETURN_IF_ERROR(r_.security.check_service(m.service));
  if (m.durable && !r_.durable.enabled())
    return Status::FailedPrecondition(
        "this head keeps no journal: start it with --data-dir for durable sessions");
  if (m.durable && !r_.durable.journal().healthy()) return r_.durable.unavailable();
  if (m.stateful) ZG_RETURN_IF_ERROR(check_stateful(m.service));
  if (o.max_sessions_per_key > 0) {
    std::uint64_t open = r_.sessions.load(call.peer_key).open;
    if (open >= o.max_sessions_per_key)
      return Status::ResourceExhausted(
          "this key has " + std::to_string(open) + " open sessions (the head allows " +
          std::to_string(o.max_sessions_per_key) + " per key): close some first");
  }
  Session& s = r_.sessions.create(call.peer_key);
  ++ctx_.observed.sessions_created;
  s.service = m.service;
  s.durable = m.durable;
  s.stateful = m.stateful;
  s.client_idle_timeout_ms = m.client_idle_timeout_ms
                                 ? static_cast<Millis>(m.client_idle_timeout_ms)
                                 : o.client_idle_timeout_ms;
  s.created_wall = wall_seconds();
  s.created_at = ctx_.now;
  s.last_activity = ctx_.now;
  s.task_timeout_ms = static_cast<Millis>(m.task_timeout_ms);
  if (m.deadline_ms > 0) {
    s.deadline = ctx_.now + static_cast<Millis>(m.deadline_ms);
    s.deadline_wall = s.created_wall + static_cast<std::int64_t>((m.deadline_ms + 999) / 1000);
  }
  ZG_LOG(kInfo, kLog,
         "session created session=" + s.id + " service=" + s.service +
             (s.durable ? " durable" : " interactive") + (s.stateful ? " stateful" : "") +
             (r_.security.curve() ? " owner=" + r_.security.name_of(s.owner) : std::string()));
  return &s;
}

Status ClientHandlers::on_create_session(const Call& call) {
  proto::CreateSession m;
  ZG_RETURN_IF_ERROR(proto::decode_create_session(call.env, &m));
  if (!m.token.empty()) {
    if (!valid_name(m.token))
      return Status::InvalidArgument("create_session: token must be 1..64 printable characters");
    // A resend (the first copy's answer was late or lost): the same session.
    if (Session* made = r_.sessions.by_token(call.peer_key, m.token))
      return resent_create(call, m, *made);
  }
  ZG_ASSIGN_OR_RETURN(Session * created, new_session(call, m));
  Session& s = *created;
  r_.sessions.set_token(s, m.token);
  if (!s.durable) {
    reply_(call.rid, proto::encode_session_info(call.env.corr, info_of(s)));
    return Status::OK();
  }
  s.creating = true;
  JournalOp op;
  Durable::put_session(op, s);
  r_.durable.submit(std::move(op), [this, rid = call.rid, corr = call.env.corr, ord = s.ordinal](
                                       bool ok, const std::string& err) {
    Session* s = r_.sessions.by_ordinal(ord);
    if (!s) return;
    s->creating = false;
    auto waiters = std::move(s->create_waiters);
    waiters.emplace(waiters.begin(), rid, corr);
    if (!ok) {
      Status st = Durable::write_failed(err);
      for (const auto& [wrid, wcorr] : waiters) reply_error(wrid, wcorr, st);
      r_.lifecycle.drop(*s);
      return;
    }
    ctx_.crash.reach("before-session-info");
    for (const auto& [wrid, wcorr] : waiters)
      reply_(wrid, proto::encode_session_info(wcorr, info_of(*s)));
  });
  return Status::OK();
}

// A create_session whose token names session `s` of the same owner: the
// answer is that session (once its record is synced), never a second one.
Status ClientHandlers::resent_create(const Call& call, const proto::CreateSession& m, Session& s) {
  if (s.service != m.service || s.durable != m.durable || s.stateful != m.stateful)
    return Status::InvalidArgument("create_session: token " + m.token + " already made session " +
                                   s.id + " (service " + s.service +
                                   "): a token names one request, draw a new one");
  ZG_LOG(kDebug, kLog, "create_session resent session=" + s.id);
  s.last_activity = ctx_.now;
  if (s.creating) {
    if (s.create_waiters.size() >= kMaxCreateWaiters)
      return Status::Unavailable("session " + s.id + " is still being created: wait for it");
    s.create_waiters.emplace_back(call.rid, call.env.corr);
    return Status::OK();
  }
  reply_(call.rid, proto::encode_session_info(call.env.corr, info_of(s)));
  return Status::OK();
}

// A stateful session needs a service that keeps session state. Refused
// when nodes offer the service and none of them offers sessions of it; with
// no node of the service registered yet it waits like any session.
Status ClientHandlers::check_stateful(const std::string& service) const {
  auto wanted = spec::parse(service);
  if (!wanted.ok()) return wanted.status();
  std::string hosts;
  for (const auto& kv : r_.nodes.all()) {
    const NodeState& n = kv.second;
    if (Distributor::offers_sessions(n, service)) return Status::OK();
    for (const std::string& adv : n.services)
      if (spec::matches(*wanted, adv) && hosts.find(adv) == std::string::npos)
        hosts += (hosts.empty() ? "" : ", ") + adv;
  }
  if (hosts.empty()) return Status::OK();
  return Status::FailedPrecondition(
      "service " + service + " does not support stateful sessions (nodes offer " + hosts +
      " for per-call sessions only): submit without --stateful, or use a service that keeps "
      "session state (docs/services.md, \"Stateful sessions\")");
}

Status ClientHandlers::on_attach_session(const Call& call) {
  std::string sid;
  ZG_RETURN_IF_ERROR(proto::decode_query(call.env, &sid));
  Session* s;
  ZG_RETURN_IF_ERROR(find_owned(sid, call.peer_key, &s));
  s->last_activity = ctx_.now;
  reply_(call.rid, proto::encode_session_info(call.env.corr, info_of(*s)));
  return Status::OK();
}

Status ClientHandlers::on_open_client(const Call& call) {
  proto::OpenClient m;
  ZG_RETURN_IF_ERROR(proto::decode_open_client(call.env, &m));
  if (!valid_name(m.client_id))
    return Status::InvalidArgument("client id must be 1..64 printable characters");
  if (!m.token.empty() && !valid_name(m.token))
    return Status::InvalidArgument("open_client: token must be 1..64 printable characters");
  Session* s;
  ZG_RETURN_IF_ERROR(find_owned(m.session_id, call.peer_key, &s));
  Client* found = s->find_client(m.client_id);
  if (found == nullptr) {
    if (s->state() != proto::SessionState::kOpen)
      return Status::FailedPrecondition("session " + s->id + " is " +
                                        proto::state_name(s->state()) + ": no new clients");
    Client c;
    c.id = m.client_id;
    c.rid = call.rid;
    c.last_activity = ctx_.now;
    c.open_token = m.token;
    found = &s->client(s->add_client(std::move(c)));
  } else {
    Client& c = *found;
    if (c.removed()) return Status::NotFound("client " + c.id + " was removed (idle timeout)");
    // A second live client with the same id is refused; the same client
    // coming back (new connection after its old one went quiet, after a
    // head restart, or resending this open_client with its token) is not.
    bool same_opener = !m.token.empty() && m.token == c.open_token;
    bool live = !c.ended() && !c.rid.empty() && c.rid != call.rid && !same_opener &&
                ctx_.now - c.last_activity < kLiveWindowMs;
    if (live)
      return Status::AlreadyExists("client id " + c.id + " is already in use in this session");
    c.rid = call.rid;
    c.last_activity = ctx_.now;
    c.open_token = m.token;
  }
  const Client& c = *found;
  reply_(call.rid, proto::encode_client_opened(call.env.corr, {s->id, c.id, c.acked_seq}));
  return Status::OK();
}

Status ClientHandlers::on_send(const Call& call) {
  proto::Send m;
  ZG_RETURN_IF_ERROR(proto::decode_send(call.env, &m));
  Session* s;
  Client* c;
  ZG_RETURN_IF_ERROR(
      bind_client(call, std::string(m.session_id), std::string(m.client_id), &s, &c));
  if (c->ended())
    return Status::FailedPrecondition("client " + c->id + " already called EndRequests");
  if (s->state() != proto::SessionState::kOpen)
    return Status::FailedPrecondition(std::string("session is ") + proto::state_name(s->state()));
  if (s->purging > 0) return Status::FailedPrecondition("session " + s->id + " is being purged");
  if (m.first_seq > c->accepted_seq + 1)
    return Status(Code::kOutOfSequence, "sequence gap: expected " +
                                            std::to_string(c->accepted_seq + 1) + ", got " +
                                            std::to_string(m.first_seq));
  if (s->durable && !r_.durable.journal().healthy()) return r_.durable.unavailable();
  ZG_RETURN_IF_ERROR(check_key_quotas(s->owner, s->durable, m.items.size(), call.frame.size()));
  proto::Ack ack;
  ack.session_id = s->id;
  ack.client_id = c->id;
  ack.first_seq = m.first_seq;
  std::vector<Request> accepted = accept_items(*s, *c, m.items, &ack);
  std::uint64_t n = accepted.size();
  if (s->durable)
    return on_send_durable(call, *s, *c, std::move(ack), std::move(accepted), m.flush);
  s->accept(s->index_of(*c), std::move(accepted));
  c->acked_seq = c->accepted_seq;
  ctx_.stats_of(*s).accepted += n;
  r_.tasks.activate(s);
  // Back-pressure: above the high-water mark the acknowledgement waits, so
  // the client's send window closes and head memory stays bounded.
  if (r_.outbox.must_hold(*s, *c))
    r_.outbox.hold(*c, {std::move(ack), call.env.corr});
  else
    ack_(call.rid, proto::encode_ack(call.env.corr, ack));
  return Status::OK();
}

// Durable: journal the batch (the received frame as it is: no re-encoding)
// and the client's new high-water sequence in one synced write; only then
// acknowledge. A resend after a crash finds its items duplicates.
Status ClientHandlers::on_send_durable(const Call& call, Session& s, Client& c, proto::Ack ack,
                                       std::vector<Request> accepted, bool flush) {
  std::uint64_t n = accepted.size();
  s.count_sent(s.index_of(c), n);
  std::uint64_t flushed = flush ? c.max_id : c.flushed_id;
  JournalOp op;
  if (n > 0) {
    RequestRecord rr{ack.statuses, ack.first_request_id,
                     std::string_view(call.frame.data<char>(), call.frame.size())};
    op.puts.emplace_back(jkey::numbered(jkey::kRequests, s.id, ack.first_request_id), rr.encode());
    IndexRecord ir{n, c.id, op.puts.back().second.size()};
    op.puts.emplace_back(jkey::numbered(jkey::kIndex, s.id, ack.first_request_id), ir.encode());
  }
  Durable::put_client(op, s, c, c.accepted_seq, c.sent(), flushed, false, c.removed());
  BatchRef b;
  b.first_id = ack.first_request_id;
  b.n = static_cast<std::uint32_t>(n);
  b.client = s.index_of(c);
  b.mem = std::move(accepted);
  auto batch = std::make_shared<BatchRef>(std::move(b));
  std::uint64_t last_seq = c.accepted_seq;
  std::uint64_t record_bytes = n > 0 ? op.puts.front().second.size() : 0;
  r_.durable.submit(std::move(op),
                    [this, ord = s.ordinal, corr = call.env.corr, ack = std::move(ack), batch,
                     flushed, last_seq, record_bytes](bool ok, const std::string& err) mutable {
                      Session* s = r_.sessions.by_ordinal(ord);
                      if (!s) return;  // purged meanwhile
                      Client& c = s->client(batch->client);
                      if (!ok) {
                        // Nothing of it is durable: forget it, tell the client.
                        c.accepted_seq = c.acked_seq;
                        s->uncount_sent(batch->client, batch->n);
                        reply_error(c.rid, corr, Durable::write_failed(err));
                        return;
                      }
                      ctx_.crash.reach("before-ack");
                      c.acked_seq = std::max(c.acked_seq, last_seq);
                      c.flushed_id = std::max(c.flushed_id, flushed);
                      batch_synced(*s, std::move(*batch), record_bytes);
                      reply_(c.rid, proto::encode_ack(corr, ack));
                    });
  return Status::OK();
}

// Takes the items of a batch whose first has sequence number
// ack->first_seq: an item at or below the client's accepted sequence is a
// duplicate, an oversized one is refused (its number is consumed); the rest
// get request ids and are returned. Fills ack's count, first id and statuses.
std::vector<Request> ClientHandlers::accept_items(Session& s, Client& c,
                                                  const std::vector<proto::SendItem>& items,
                                                  proto::Ack* ack) {
  ack->count = items.size();
  ack->first_request_id = s.next_request_id();
  const std::uint32_t cidx = s.index_of(c);
  std::vector<Request> accepted;
  accepted.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    std::uint64_t seq = ack->first_seq + i;
    const proto::SendItem& it = items[i];
    std::uint8_t status = proto::kItemOk;
    if (seq <= c.accepted_seq)
      status = proto::kItemDuplicate;
    else if (it.payload.size() > proto::kMaxPayload || it.user_data.size() > proto::kMaxUserData)
      status = proto::kItemTooLarge;
    if (status != proto::kItemOk) {
      if (ack->statuses.empty())
        ack->statuses.assign(items.size(), static_cast<char>(proto::kItemOk));
      ack->statuses[i] = static_cast<char>(status);
      if (seq > c.accepted_seq) c.accepted_seq = seq;
      continue;
    }
    Request r;
    r.id = s.new_request_id();
    r.client = cidx;
    r.user_data.assign(it.user_data);
    r.payload.assign(it.payload);
    accepted.push_back(std::move(r));
    c.accepted_seq = seq;
  }
  if (!accepted.empty()) c.max_id = accepted.back().id;
  return accepted;
}

void ClientHandlers::batch_synced(Session& s, BatchRef batch, std::uint64_t record_bytes) {
  ctx_.stats_of(s).accepted += batch.n;
  s.add_batch(std::move(batch), record_bytes);
  r_.lifecycle.load_ready(s);
  // What did not fit in the window is dropped from memory: the journal has it.
  for (std::size_t i : s.unloaded()) s.drop_batch_mem(i);
}

Status ClientHandlers::check_key_quotas(const std::string& owner, bool durable, std::size_t adding,
                                        std::size_t frame_bytes) const {
  const HeadOptions& o = ctx_.o;
  if (o.max_queued_per_key == 0 && o.max_journal_bytes_per_key == 0) return Status::OK();
  const KeyLoad& load = r_.sessions.load(owner);
  std::uint64_t queued = load.queued, bytes = load.journal_bytes;
  if (o.max_queued_per_key > 0 && queued + adding > o.max_queued_per_key)
    return Status::ResourceExhausted(
        "this key has " + std::to_string(queued) + " requests queued (the head allows " +
        std::to_string(o.max_queued_per_key) + " per key): wait for results, then send more");
  if (durable && o.max_journal_bytes_per_key > 0 &&
      bytes + frame_bytes > o.max_journal_bytes_per_key)
    return Status::ResourceExhausted("this key's durable sessions hold " + std::to_string(bytes) +
                                     " journal bytes (the head allows " +
                                     std::to_string(o.max_journal_bytes_per_key) +
                                     " per key): purge finished sessions first");
  return Status::OK();
}

// Flush (its requests may run) and EndRequests (`end`: committed, which is
// ended and flushed in one synced write, after every batch of it).
Status ClientHandlers::flush_or_end(const Call& call, bool end) {
  proto::ClientRef m;
  ZG_RETURN_IF_ERROR(proto::decode_client_ref(call.env, &m));
  Session* s;
  Client* c;
  if (Status st = bind_client(call, m.session_id, m.client_id, &s, &c); !st.ok()) {
    // A resend whose first copy let the session complete and leave: every
    // client of a retired session had ended, so the answer was ok.
    if (st.code() == Code::kNotFound && r_.sessions.find(m.session_id) == nullptr &&
        r_.sessions.gone_lately(m.session_id, call.peer_key, ctx_.now) == 1) {
      reply_(call.rid, proto::encode_ok(call.env.corr));
      return Status::OK();
    }
    return st;
  }
  if (end && m.value != c->accepted_seq)
    return Status::FailedPrecondition("EndRequests after sequence " + std::to_string(m.value) +
                                      " but " + std::to_string(c->accepted_seq) + " acknowledged");
  if (!s->durable || (end && c->ended())) {
    // Interactive requests are eligible as soon as they are acknowledged.
    if (end && !c->ended()) {
      s->commit_client(s->index_of(*c));
      note_committed(*s);
    }
    reply_(call.rid, proto::encode_ok(call.env.corr));
    return Status::OK();
  }
  if (!r_.durable.journal().healthy()) return r_.durable.unavailable();
  JournalOp op;
  std::uint64_t flushed = c->max_id;
  Durable::put_client(op, *s, *c, c->accepted_seq, c->sent(), flushed, end || c->ended(),
                      c->removed());
  r_.durable.submit(std::move(op), [this, ord = s->ordinal, cid = c->id, corr = call.env.corr,
                                    flushed, end](bool ok, const std::string& err) {
    Session* s = r_.sessions.by_ordinal(ord);
    if (!s) return;
    Client* found = s->find_client(cid);
    if (found == nullptr) return;
    Client& c = *found;
    if (!ok) {
      reply_error(c.rid, corr, Durable::write_failed(err));
      return;
    }
    if (end && !c.ended()) {
      s->commit_client(s->index_of(c));
      note_committed(*s);
    }
    c.flushed_id = std::max(c.flushed_id, flushed);
    r_.lifecycle.load_ready(*s);
    reply_(c.rid, proto::encode_ok(corr));
    if (end) ctx_.fetches_to_wake.push_back(s->id);  // it may be complete now
  });
  return Status::OK();
}

// The session_committed event, once every client of the session has ended.
void ClientHandlers::note_committed(const Session& s) {
  for (const auto& c : s.clients())
    if (!c.ended() && !c.removed()) return;
  ctx_.event("session_committed", s.id,
             "session " + s.id + " committed: " + std::to_string(s.committed()) + " requests");
}

proto::SessionStatus ClientHandlers::status_of(const Session& s) const {
  return session_row(sources(), s);
}

Status ClientHandlers::on_status(const Call& call) {
  std::string sid;
  ZG_RETURN_IF_ERROR(proto::decode_query(call.env, &sid));
  if (!sid.empty()) {
    Session* s;
    ZG_RETURN_IF_ERROR(find_owned(sid, call.peer_key, &s));
    reply_(call.rid, proto::encode_session_status(call.env.corr, status_of(*s)));
    return Status::OK();
  }
  proto::GridStatus m = grid_row(sources());
  reply_(call.rid, proto::encode_grid_status(call.env.corr, m));
  return Status::OK();
}

Status ClientHandlers::on_nodes(const Call& call) {
  std::vector<proto::NodeStatus> list;
  list.reserve(r_.nodes.size());
  for (const auto& kv : r_.nodes.all()) {
    proto::NodeStatus m = node_row(sources(), kv.second);
    list.push_back(std::move(m));
  }
  reply_(call.rid, proto::encode_nodes_reply(call.env.corr, list));
  return Status::OK();
}

// zgrid drain NODE: no new work to the node (its in-flight work finishes),
// so an operator can stop it without failing anything; `undo` lifts it.
Status ClientHandlers::on_drain(const Call& call) {
  proto::Drain m;
  ZG_RETURN_IF_ERROR(proto::decode_drain(call.env, &m));
  const std::string& node_id = m.node_id;
  bool undo = m.undo;
  if (r_.security.curve() && !r_.security.is_admin(call.peer_key))
    return Status::PermissionDenied("draining a node needs an admin key (--admin-keys)");
  NodeState* n = r_.nodes.find_id(node_id);
  if (!n) return Status::NotFound("unknown node " + node_id + " (see zgrid nodes)");
  if (n->draining == !undo) {  // already so (a resent drain): nothing changes, no second event
    reply_(call.rid, proto::encode_ok(call.env.corr));
    return Status::OK();
  }
  n->draining = !undo;
  r_.nodes.touch(*n);
  std::string line = std::string(undo ? "node undrained" : "node draining") + " node=" + node_id +
                     " inflight=" + std::to_string(n->inflight);
  ZG_LOG(kInfo, kLog, line);
  ctx_.event(undo ? "node_undrained" : "node_drained", node_id, std::move(line));
  if (undo) r_.tasks.activate_all();
  reply_(call.rid, proto::encode_ok(call.env.corr));
  return Status::OK();
}

Status ClientHandlers::on_sessions(const Call& call) {
  // With CURVE a key sees its own sessions (an admin sees all).
  std::vector<proto::SessionStatus> list;
  for (const auto& kv : r_.sessions.all())
    if (r_.security.check_owner(*kv.second, call.peer_key).ok())
      list.push_back(status_of(*kv.second));
  reply_(call.rid, proto::encode_sessions_reply(call.env.corr, list));
  return Status::OK();
}

Status ClientHandlers::on_close(const Call& call) {
  proto::Close m;
  ZG_RETURN_IF_ERROR(proto::decode_close(call.env, &m));
  Session* s = r_.sessions.find(m.session_id);
  if (!s && m.mode == proto::CloseMode::kPurge && r_.sessions.purged(m.session_id)) {
    reply_(call.rid, proto::encode_ok(call.env.corr));  // purged already: purge is idempotent
    return Status::OK();
  }
  if (!s && r_.sessions.gone_lately(m.session_id, call.peer_key, ctx_.now) != 0) {
    // An interactive session that left after the first copy of this close
    // (or another close): sealed, cancelled or purged is where it ended.
    reply_(call.rid, proto::encode_ok(call.env.corr));
    return Status::OK();
  }
  if (!s) return session_not_found(m.session_id);
  ZG_RETURN_IF_ERROR(r_.security.check_owner(*s, call.peer_key));
  auto done = reply_when_done(call.rid, call.env.corr);
  if (m.mode == proto::CloseMode::kPurge)
    r_.lifecycle.purge(*s, std::move(done));
  else
    r_.lifecycle.close(*s,
                       m.mode == proto::CloseMode::kSeal ? proto::SessionState::kSealed
                                                         : proto::SessionState::kCancelled,
                       std::move(done));
  return Status::OK();
}

Status ClientHandlers::on_fetch(const Call& call) {
  proto::Fetch m;
  ZG_RETURN_IF_ERROR(proto::decode_fetch(call.env, &m));
  Session* s;
  ZG_RETURN_IF_ERROR(find_owned(m.session_id, call.peer_key, &s));
  if (!s->durable)
    return Status::FailedPrecondition(
        "fetch needs a durable session (interactive results stream to their client)");
  FetchPage page = r_.durable.fetch_page(*s, m, call.env.corr);
  if (!page.ready) {
    parked_.park(
        {call.rid, call.env.corr, m,
         ctx_.now + std::min<Millis>(static_cast<Millis>(m.wait_ms), ParkedFetches::kMaxWaitMs)});
    return Status::OK();
  }
  reply_(call.rid, std::move(page.reply));
  return Status::OK();
}

// A page of a durable session's stored requests (answered or not), whole
// batches at a time, for resubmit. Removed clients' requests are gone.
Status ClientHandlers::on_requests(const Call& call) {
  proto::Requests m;
  ZG_RETURN_IF_ERROR(proto::decode_requests(call.env, &m));
  Session* s;
  ZG_RETURN_IF_ERROR(find_owned(m.session_id, call.peer_key, &s));
  if (!s->durable)
    return Status::FailedPrecondition(
        "session " + s->id +
        " is interactive: the head keeps the requests of durable sessions only (submit with "
        "--durable to resubmit later)");
  proto::RequestsReply out;
  out.end = true;
  std::size_t bytes = 0;
  auto first = std::upper_bound(s->batches().begin(), s->batches().end(), m.from_id,
                                [](std::uint64_t v, const BatchRef& b) { return v < b.first_id; });
  if (first != s->batches().begin()) --first;
  for (auto it = first; it != s->batches().end(); ++it) {
    const BatchRef& b = *it;
    if (b.first_id + b.n <= m.from_id || s->client(b.client).removed()) continue;
    if (out.items.size() >= m.max) {
      out.end = false;
      out.next_id = b.first_id;
      break;
    }
    std::vector<Request> reqs;
    if (!b.mem.empty()) {
      reqs = b.mem;
    } else if (Status st = read_batch(r_.durable.journal(), *s, b, &reqs, true); !st.ok()) {
      return Status(st.code(),
                    "cannot read the requests of session " + s->id + ": " + st.message());
    }
    std::size_t batch_bytes = 0;
    for (const auto& q : reqs) batch_bytes += q.payload.size() + q.user_data.size() + 16;
    if (!out.items.empty() && bytes + batch_bytes > kMaxRequestsReplyBytes) {
      out.end = false;  // the frame stays under the 8 MiB limit: the next page has it
      out.next_id = b.first_id;
      break;
    }
    bytes += batch_bytes;
    for (auto& q : reqs) {
      if (q.id < m.from_id) continue;
      out.items.push_back({q.id, std::move(q.user_data), std::move(q.payload)});
    }
    out.next_id = b.first_id + b.n;
  }
  reply_(call.rid, proto::encode_requests_reply(call.env.corr, out));
  return Status::OK();
}

void ClientHandlers::wake_fetches(const std::string& sid) {
  for (ParkedFetch& p : parked_.take(sid, ctx_.now)) serve_parked(std::move(p));
}

void ClientHandlers::serve_parked(ParkedFetch p) {
  Session* s = r_.sessions.find(p.fetch.session_id);
  if (!s) {
    reply_error(p.rid, p.corr, session_not_found(p.fetch.session_id));
    return;
  }
  proto::Fetch f = p.fetch;
  const bool over = ctx_.now >= p.deadline;
  if (over) f.wait_ms = 0;
  FetchPage page = r_.durable.fetch_page(*s, f, p.corr);
  if (p.submitted) {
    // Whole or not at all: the answers go with the reply once the session
    // is complete; at the deadline (or when the page is an error) the reply
    // goes alone and the client fetches them as after any submit.
    bool whole = page.ready && page.done && page.count == p.fetch.max;
    if (whole) {
      std::string_view items(page.reply.data<char>() + page.items_begin,
                             page.items_end - page.items_begin);
      reply_(p.rid, proto::encode_submitted(p.corr, *p.submitted, true, items, page.count));
    } else if (over || (page.ready && page.items_end == 0) || SessionTable::complete(*s)) {
      // Over, an error, or complete but not in one page (over 16,384
      // answers or 4 MiB): the client fetches them.
      reply_(p.rid, proto::encode_submitted(p.corr, *p.submitted));
    } else {
      parked_.park(std::move(p));
    }
    return;
  }
  if (!page.ready) {
    parked_.park(std::move(p));
    return;
  }
  reply_(p.rid, std::move(page.reply));
}

void ClientHandlers::reply_submitted(const std::string& rid, std::uint64_t corr, const Session& s,
                                     proto::Submitted sub, std::uint64_t wait_ms, std::uint64_t n) {
  if (wait_ms == 0 || n == 0) {
    reply_(rid, proto::encode_submitted(corr, sub));
    return;
  }
  ParkedFetch p;
  p.rid = rid;
  p.corr = corr;
  p.fetch.session_id = s.id;
  p.fetch.cursor = 1;
  p.fetch.max = n;
  p.fetch.wait_ms = wait_ms;
  p.deadline = ctx_.now + std::min<Millis>(static_cast<Millis>(wait_ms), ParkedFetches::kMaxWaitMs);
  p.submitted = std::move(sub);
  serve_parked(std::move(p));
}

}  // namespace zgrid::head
