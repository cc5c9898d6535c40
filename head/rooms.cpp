// The head's rooms wired once, and the reactor's work on them
// (head/rooms.hpp): used by the daemon (head/head.cpp) and the in-process
// tests (tests/support/head_rooms.hpp) alike.
#include "head/rooms.hpp"

#include <algorithm>
#include <cstdlib>

#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/log.hpp"
#include "common/protocol.hpp"
#include "common/util.hpp"

namespace zgrid::head {

namespace {

constexpr const char* kLog = "head";

std::string rid_of(const zmq::message_t& m) {
  return std::string(m.data<char>(), m.size());
}

}  // namespace

HeadRooms::HeadRooms(const HeadOptions& o, zmq::context_t& zctx, HeadIo io)
    : ctx(o),
      security(ctx.o, zctx),
      nodes(ctx.o.heartbeat_ms, ctx.o.heartbeat_misses, ctx.o.heartbeat_rate),
      dist(ctx.o.max_task_batch),
      outbox({ctx.o.response_window, ctx.o.response_queue_max, ctx.o.queue_hwm}),
      durable(ctx, sessions),
      tasks(ctx, sessions, nodes, inflight, dist, outbox, durable),
      lifecycle(ctx, sessions, tasks, durable, outbox),
      handlers(
          ctx, {sessions, nodes, outbox, security, durable, tasks, lifecycle},
          [this](const std::string& rid, zmq::message_t body) {
            reply_client(rid, std::move(body));
          },
          [this](const std::string& rid, zmq::message_t body) {
            reply_client(rid, std::move(body), /*ack=*/true);
          }),
      io_(std::move(io)) {}

// ---- the journal ----------------------------------------------------------------

Status HeadRooms::open_journal(zmq::context_t& zctx, std::function<bool()> may_write,
                               std::function<bool()> may_commit, std::uint64_t takeover_gap) {
  RecoveryReport report;
  ZG_RETURN_IF_ERROR(
      durable.open(zctx, &report, std::move(may_write), std::move(may_commit), takeover_gap));
  lifecycle.recovered();
  return Status::OK();
}

Status HeadRooms::open_journal(std::unique_ptr<JournalStore> store) {
  RecoveryReport report;
  ZG_RETURN_IF_ERROR(durable.open(std::move(store), &report));
  lifecycle.recovered();
  return Status::OK();
}

namespace {
// The one body frame of a message, decoded and of our protocol version. On
// an error `env->corr` is what the error reply carries (0 if unread).
Status decode_body(std::vector<zmq::message_t>& frames, zmqu::RecvStatus rs, Envelope* env) {
  if (rs == zmqu::RecvStatus::kTooManyFrames || frames.size() != 2)
    return Status::Protocol("expected exactly one body frame");
  Status st = decode_envelope(frames[1].data(), frames[1].size(), env);
  if (st.ok()) st = proto::check_version(*env);
  return st;
}
}  // namespace

// ---- clients --------------------------------------------------------------------

Status HeadRooms::on_client(std::vector<zmq::message_t>& frames, zmqu::RecvStatus rs) {
  if (frames.empty()) return Status::OK();
  std::string rid = rid_of(frames[0]);
  Envelope env;
  Status st = decode_body(frames, rs, &env);
  if (!st.ok()) {
    bad_message(ctx.observed.bad_client_messages);
    if (error_budget(rid)) reply_client(rid, proto::encode_error(env.corr, st));
    return st;
  }
  std::string peer_key;
  if (security.curve()) {
    // Set by our ZAP handler: the Z85 public key this connection proved it holds.
    peer_key = zmqu::user_id(frames[1]);
    if (peer_key.empty()) return Status::OK();  // not admitted by our ZAP handler: never served
  }
  return on_client_call(Call{rid, peer_key, frames[1], env});
}

Status HeadRooms::on_client_call(const Call& call) {
  Status st = handlers.handle(call);
  if (!st.ok()) {
    if (st.code() == Code::kProtocol) bad_message(ctx.observed.bad_client_messages);
    reply_client(call.rid, proto::encode_error(call.env.corr, st));
  }
  return st;
}

bool HeadRooms::error_budget(const std::string& rid) {
  if (error_budget_.size() > 10'000) error_budget_.clear();  // bounded memory
  auto& [since, used] = error_budget_[rid];
  if (ctx.now - since >= 1000) {
    since = ctx.now;
    used = 0;
  }
  return ++used <= kErrorBudget;
}

void HeadRooms::flush_clients() {
  Outbox::Flushed f = outbox.flush(
      sessions, ctx.now,
      [this](const std::string& rid, zmq::message_t& body) { return to_client(rid, body); });
  acks_.release_due(ctx.now,
                    [this](const std::string& r, zmq::message_t& m) { (void)io_.to_client(r, m); });
  for (Session* s : f.may_resume) tasks.activate(s);  // paused for its clients (turn_of)
  for (Session* s : f.delivered) lifecycle.maybe_retire(*s);
}

void HeadRooms::wake_fetches() {
  if (ctx.fetches_to_wake.empty()) return;
  std::vector<std::string> sids;
  sids.swap(ctx.fetches_to_wake);
  std::sort(sids.begin(), sids.end());
  sids.erase(std::unique(sids.begin(), sids.end()), sids.end());
  if (handlers.fetches_parked())
    for (const std::string& sid : sids) handlers.wake_fetches(sid);
}

// ---- nodes ----------------------------------------------------------------------

Status HeadRooms::on_node(std::vector<zmq::message_t>& frames, zmqu::RecvStatus rs) {
  if (frames.empty()) return Status::OK();
  // Only nodes our ZAP handler admitted carry a User-Id: nothing else is served.
  if (security.curve() && zmqu::user_id(frames.back()).empty()) return Status::OK();
  std::string rid = rid_of(frames[0]);
  NodeState* node = nodes.heard_from(rid, ctx.now);
  Envelope env;
  Status st = decode_body(frames, rs, &env);
  if (!st.ok()) {
    bad_message(ctx.observed.bad_node_messages);
    reply_node(rid, proto::encode_error(env.corr, st));
    return st;
  }
  st = dispatch_node({rid, node, env, frames[1]});
  if (!st.ok()) {
    if (st.code() == Code::kProtocol) bad_message(ctx.observed.bad_node_messages);
    reply_node(rid, proto::encode_error(env.corr, st));
  }
  return st;
}

Status HeadRooms::dispatch_node(const NodeCall& c) {
  struct Entry {
    NodeHandler handler = nullptr;
    proto::Needs needs = proto::Needs::kAnyone;
  };
  static constexpr auto kHandlers = [] {
    std::array<Entry, proto::kTypeLimit> t{};
#define ZG_NODE(Enum, name, number, direction, reply, needs) \
  t[number] = {&HeadRooms::on_##name, proto::Needs::needs};
#include "common/messages.def"
    return t;
  }();
  const Entry* e = c.env.type < kHandlers.size() ? &kHandlers[c.env.type] : nullptr;
  if (e == nullptr || e->handler == nullptr)
    return Status::Protocol("unknown message type " + std::to_string(c.env.type));
  // Declared dead (its work was re-queued) or the head restarted: it
  // must register again.
  if (!c.node && e->needs == proto::Needs::kRegistered)
    return Status::NotFound("unknown node: register first");
  return (this->*e->handler)(c);
}

Status HeadRooms::on_results(const NodeCall& c) {
  proto::Results m;
  ZG_RETURN_IF_ERROR(proto::decode_results(c.env, &m));
  tasks.on_results(*c.node, m);
  return Status::OK();
}

Status HeadRooms::on_bye(const NodeCall& c) {
  if (c.node) tasks.lose_node(c.node->ordinal, NodeLoss::kLeft);
  return Status::OK();
}

Status HeadRooms::on_register(const NodeCall& c) {
  const std::string& rid = c.rid;
  Envelope& env = c.env;
  const zmq::message_t& frame = c.frame;
  proto::Register m;
  ZG_RETURN_IF_ERROR(proto::decode_register(env, &m));
  if (!valid_name(m.node_id)) return Status::InvalidArgument("bad node id");
  // The host is shown and logged (key=value words): printable, no spaces.
  if (m.host.size() > 255) m.host.resize(255);
  for (char& ch : m.host)
    if (ch <= ' ' || ch > '~') ch = '?';
  // The same node id on a new connection replaces the old registration.
  for (std::uint64_t old : nodes.replaced_by(rid, m.node_id))
    tasks.lose_node(old, NodeLoss::kReRegistered);
  ctx.observed.offered(m.services);  // their own series in /metrics
  NodeState& n = nodes.add(rid, m, ctx.now);
  nodes.set_fd(n, zmq_msg_get(frame.handle(), ZMQ_SRCFD));  // -1 where libzmq cannot say
  std::string line = "node joined node=" + n.id + " host=" + n.host +
                     " workers=" + std::to_string(n.workers) +
                     " capacity=" + std::to_string(n.capacity);
  ZG_LOG(kInfo, kLog, line);
  ctx.observed.node_back(n.id);
  ctx.event("node_registered", n.id, std::move(line));
  // Sessions waiting for a node of their service can go now.
  tasks.activate_all();
  if (security.curve()) {
    // Admitted on the node port by our ZAP handler: note which key it holds.
    n.key_name = security.name_of(zmqu::user_id(frame));
    ZG_LOG(kInfo, kLog, "node " + n.id + " holds node key " + n.key_name);
  }
  // The interval with this node counted (NodeTable::add): the node's from now on.
  proto::Registered r{static_cast<std::uint64_t>(n.heartbeat_ms),
                      static_cast<std::uint64_t>(ctx.o.heartbeat_misses), ctx.instance, ctx.epoch};
  reply_node(rid, proto::encode_registered(env.corr, r));
  return Status::OK();
}

Status HeadRooms::on_heartbeat(const NodeCall& c) {
  NodeState& node = *c.node;
  Envelope& env = c.env;
  proto::Heartbeat m;
  ZG_RETURN_IF_ERROR(proto::decode_heartbeat(env, &m));
  // Answered at once, with the interval the node is to use now: the head
  // sends no heartbeats of its own (docs/protocol.md, "Nodes"). A node that
  // says its interval is held to it — never to more than it was told —
  // until this answer reaches it: to the longer of the two. An older node
  // keeps the interval of its `registered` (it ignores the one here).
  const Millis told = nodes.interval();
  if (m.heartbeat_ms > 0) {
    node.says_interval = true;
    const Millis said = std::min(static_cast<Millis>(m.heartbeat_ms), node.heartbeat_ms);
    nodes.hold_to(node, std::max(told, said));
  }
  reply_node(c.rid, proto::encode_heartbeat(ctx.instance, static_cast<std::uint64_t>(told)));
  if (!m.has_capacity) return Status::OK();
  if (m.capacity != node.capacity) {
    // Adaptive prefetch, or workers stuck in timed-out calls: the node
    // asks for the credit it can use. A smaller credit only stops new
    // work until the node's in-flight count is below it.
    ZG_LOG(kDebug, kLog,
           "node " + node.id + " capacity " + std::to_string(node.capacity) + " -> " +
               std::to_string(m.capacity) + " (stuck workers " + std::to_string(m.stuck) + ")");
    if (m.capacity > node.capacity) tasks.activate_all();
    node.capacity = m.capacity;
    nodes.touch(node);
  }
  node.stuck = m.stuck;
  return Status::OK();
}

// ---- the round --------------------------------------------------------------------

void HeadRooms::finish_round() {
  lifecycle.flush_answers();
  dispatch();
  send_deferred_replies();
  flush_clients();
  wake_fetches();
}

void HeadRooms::send_deferred_replies() {
  defer_replies_ = false;
  for (Deferred& r : deferred_) {
    // An interactive batch's ack waits for the client's next message.
    if (r.ack)
      acks_.hold(r.rid, std::move(r.body), ctx.now);
    else
      (void)to_client(r.rid, r.body);
  }
  deferred_.clear();
}

void HeadRooms::dispatch() {
  dist.begin();
  auto ask = [this](std::uint64_t ord) { return lifecycle.turn_of(ord); };
  while (auto a = dist.next(ask, nodes.all(), nodes.index())) {
    Session* s = sessions.by_ordinal(a->session);
    send_tasks(*nodes.find(a->node), *s, a->count);
    if (s->durable && s->queue().size() < ctx.o.durable_window / 2 && !s->unloaded().empty())
      lifecycle.load_ready(*s);
  }
  end_instances();
}

void HeadRooms::send_tasks(NodeState& n, Session& s, std::uint64_t k) {
  if (s.stateful) tasks.pin(n, s);
  Tasks::Prepared p = tasks.prepare(n, s, k);
  zmqu::SendStatus st = io_.to_node(n.rid, p.body);
  if (st == zmqu::SendStatus::kOk)
    tasks.sent(n, s, p);
  else if (st == zmqu::SendStatus::kWouldBlock) {
    n.blocked = true;  // until it speaks again
    nodes.touch(n);
    if (s.stateful) tasks.end_instance(s);  // a fresh one may go to another node
  } else
    tasks.lose_node(n.ordinal, NodeLoss::kUnreachable);
}

void HeadRooms::end_instances() {
  for (const auto& [ord, key] : ctx.instance_ends) {
    NodeState* n = nodes.find(ord);
    if (!n) continue;
    zmq::message_t m = proto::encode_end_session(key);
    (void)io_.to_node(n->rid, m);
  }
  ctx.instance_ends.clear();
}

// ---- timers -------------------------------------------------------------------------

Status HeadRooms::tick(Millis now) {
  ctx.now = now;
  Counters& c = ctx.counters;
  if (now - rate_mark_ms_ >= 1000) {
    c.rate = rate_mark_ms_ ? 1000.0 * static_cast<double>(c.done + c.faulted - rate_mark_count_) /
                                 static_cast<double>(now - rate_mark_ms_)
                           : 0.0;
    rate_mark_ms_ = now;
    rate_mark_count_ = c.done + c.faulted;
    ctx.observed.sample_throughput(wall_seconds(), c.rate);
    ctx.observed.prune_lost(now);
  }
  if (durable.enabled()) {
    bool healthy = durable.journal().healthy();
    if (healthy != journal_healthy_) {
      journal_healthy_ = healthy;
      if (healthy)
        ctx.event("journal_recovered", "journal", "the journal takes writes again");
      else
        ctx.event("journal_unhealthy", "journal",
                  "the journal refuses writes: " + durable.journal().health_reason());
    }
  }
  probe_suspects(now);
  if (now - last_hb_ms_ >= ctx.o.heartbeat_ms) {
    last_hb_ms_ = now;
    // The silent ones come from the liveness order (O(dead)). The head
    // sends no heartbeats on a timer: it answers the nodes' (on_heartbeat).
    std::vector<std::uint64_t> dead = nodes.silent_nodes(now);
    for (std::uint64_t d : dead) tasks.lose_node(d, NodeLoss::kSilent);
    tasks.recheck_quarantine();
    if (!dead.empty()) dispatch();
  }
  if (handlers.fetches_parked()) handlers.wake_fetches("");
  ZG_RETURN_IF_ERROR(lifecycle.tick());
  end_instances();
  wake_fetches();
  // What is kept incrementally, recomputed: every tick in debug builds and
  // in the test suite's heads (ZGRID_TEST_VERIFY), never in Release.
  const bool check = kDebugChecks || ctx.o.hooks.verify_tables;
  if (check && !nodes.verify()) {
    ZG_LOG(kError, kLog, "check failed: the node index or liveness order drifted");
    std::abort();
  }
  if (check && !sessions.verify()) {
    // A session's counters disagree with its clients', or the per-key
    // loads with their sessions (a bug in Session's methods). Fail loudly.
    ZG_LOG(kError, kLog, "check failed: session counters or per-key session loads drifted");
    std::abort();
  }
  return Status::OK();
}

void HeadRooms::probe_suspects(Millis now) {
  if (suspects_.empty()) return;
  std::vector<std::uint64_t> gone;
  for (const auto& [fd, until] : suspects_) {
    NodeState* n = nodes.find_fd(fd);
    if (!n) continue;
    // Its own interval: what it is held to, so a live node that adopts it
    // is never held to less.
    zmq::message_t m =
        proto::encode_heartbeat(ctx.instance, static_cast<std::uint64_t>(n->heartbeat_ms));
    if (io_.to_node(n->rid, m) == zmqu::SendStatus::kUnreachable) gone.push_back(n->ordinal);
  }
  std::erase_if(suspects_, [&](const auto& s) {
    NodeState* n = nodes.find_fd(s.first);
    return now >= s.second || !n || std::find(gone.begin(), gone.end(), n->ordinal) != gone.end();
  });
  for (std::uint64_t ord : gone) tasks.lose_node(ord, NodeLoss::kUnreachable);
  if (!gone.empty()) dispatch();
}

void HeadRooms::bye_nodes() {
  for (auto& kv : nodes.all()) {
    Writer w = proto::begin(proto::kBye, 0, 1);
    w.str(ctx.instance);
    zmq::message_t m = w.finish();
    (void)io_.to_node(kv.second.rid, m);
  }
}

}  // namespace zgrid::head
