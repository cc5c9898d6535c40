#include "head/status_rows.hpp"

#include <algorithm>
#include <ctime>

#include "common/util.hpp"
#include "head/lifecycle.hpp"

namespace zgrid::head {

namespace {

// Every client was removed before committing: nothing of it will run.
bool abandoned(const Session& s) {
  if (s.clients().empty()) return false;
  for (const auto& c : s.clients())
    if (!c.removed() || c.ended()) return false;
  return true;
}

std::string utc(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

namespace {

std::string seconds(Millis ms) {
  return std::to_string(std::max<Millis>(0, ms) / 1000) + "s";
}

// Why no node takes the session's work, when none does; empty when one
// may. `unoffered`: the head knows no node offers it (the verdict a client
// may give up on; docs/protocol.md, "A service no node offers").
std::string node_reason(const StatusSources& src, const Session& s, bool* unoffered) {
  NodeIndex& index = src.nodes.index();
  NodeIndex::Offer o = index.offer(s.service, s.stateful);
  std::string service = "service " + s.service + (s.stateful ? " with stateful sessions" : "");
  if (o.nodes > 0) {
    if (o.quarantined + o.draining < o.nodes) return "";
    if (o.draining == 0)
      return "every node that offers " + service +
             " is quarantined (its requests fault far more often than its peers'): its work "
             "waits until another registers";
    return "every node that offers " + service +
           (o.quarantined == 0 ? " is draining" : " is draining or quarantined") +
           ": its work waits until one takes work again (zgrid drain NODE --undo) or another "
           "registers";
  }
  // None offers it now. Say so only when the head can know it: nodes that
  // offered it since the session was made (gone mid-run) or within the node
  // reconnect window (restarting) are waited for, and so are the nodes of a
  // head that started less than the window ago.
  const Millis now = src.ctx.now;
  const Millis window = NodeReconnectWindow(src.ctx.o);
  const Millis since = std::max(s.created_at, src.ctx.serving_since);
  std::string offered = " (the nodes offer " + index.offered_list() + ")";
  if (o.vacated_at != NodeIndex::kNever && (o.vacated_at >= since || now - o.vacated_at < window))
    return "the nodes that offered " + service + " went away " + seconds(now - o.vacated_at) +
           " ago: waiting for one to register again" + offered;
  if (now - src.ctx.serving_since < window)
    return "waiting for nodes to register: none offers " + service + " yet (the head started " +
           seconds(now - src.ctx.serving_since) + " ago; nodes register within " +
           format_duration(window) + " of its start)" + offered;
  if (unoffered) *unoffered = true;
  return "no node offers " + service + offered;
}

}  // namespace

std::string paused_reason(const StatusSources& src, const Session& s, bool* unoffered) {
  if (unoffered) *unoffered = false;
  if (SessionTable::complete(s)) return "";
  std::string out;
  if (s.durable && src.durable.enabled() && !src.durable.journal().healthy()) {
    const JournalStore& j = src.durable.journal();
    out = j.space_short()
              ? "the head's journal disk is full (" + j.health_reason() +
                    "): work on durable sessions is paused until space is freed (zgrid close ID "
                    "--purge gives a finished session's space back)"
              : "the head's journal refuses writes (" + j.health_reason() +
                    "): work on durable sessions is paused until it recovers";
  }
  if (std::string nodes = node_reason(src, s, unoffered); !nodes.empty())
    out += (out.empty() ? "" : "; ") + nodes;
  return out;
}

std::string display_state(const Session& s) {
  bool live = s.state() == proto::SessionState::kOpen || s.state() == proto::SessionState::kSealed;
  if (live && abandoned(s)) return "abandoned";
  if (s.state() == proto::SessionState::kOpen && SessionTable::complete(s)) return "complete";
  return proto::state_name(s.state());
}

std::string removals_of(const Session& s) {
  constexpr std::size_t kNamed = 3;
  std::string out;
  std::size_t n = 0;
  for (const auto& c : s.clients()) {
    if (!c.removed()) continue;
    if (++n > kNamed) continue;
    if (!out.empty()) out += "; ";
    out += "client " + c.id + " removed";
    if (c.removed_wall > 0) out += " at " + utc(c.removed_wall);
    out += " after " +
           format_duration(c.removed_idle_ms > 0 ? c.removed_idle_ms : s.client_idle_timeout_ms) +
           " idle, before committing, with " + std::to_string(c.sent()) +
           (c.sent() == 1 ? " request" : " requests");
  }
  if (n > kNamed) out += "; and " + std::to_string(n - kNamed) + " more clients";
  return out;
}

proto::SessionStatus session_row(const StatusSources& src, const Session& s) {
  proto::SessionStatus m;
  m.session_id = s.id;
  m.service = s.service;
  m.durable = s.durable;
  m.owner = src.security.name_of(s.owner);  // the key's file name; empty without CURVE
  m.state = display_state(s);
  m.total = s.total();
  m.committed = s.committed();
  m.queued = Lifecycle::queued_count(s);
  m.running = s.running() + s.committing();
  m.done = s.done();
  m.faulted = s.faulted();
  m.removed = s.requests_removed();
  m.clients = s.clients().size();
  for (const auto& c : s.clients())
    if (!c.ended() && !c.removed()) ++m.clients_open;
  m.clients_removed = s.clients_removed();
  m.created = s.created_wall;
  m.complete = SessionTable::complete(s);
  m.responses_queued = s.out_pending();
  m.idle_ms = src.ctx.now - s.last_activity;
  m.client_idle_timeout_ms = s.client_idle_timeout_ms;
  m.stateful = s.stateful;
  m.removals = removals_of(s);
  for (const auto& c : s.clients()) {
    if (c.ended() || c.removed()) continue;
    Millis in = std::max<Millis>(0, c.last_activity + s.client_idle_timeout_ms - src.ctx.now);
    if (m.waiting_for.empty() || in < m.removal_in_ms) {
      m.waiting_for = c.id;
      m.removal_in_ms = in;
    }
  }
  m.paused = paused_reason(src, s, &m.unoffered);
  return m;
}

proto::GridStatus grid_row(const StatusSources& src, const GridSums* sums) {
  proto::GridStatus m;
  if (sums) {
    m.queued = sums->queued;
    m.running = sums->running;
  } else {
    for (const auto& kv : src.sessions.all()) {
      m.queued += Lifecycle::queued_count(*kv.second);
      m.running += kv.second->running();
    }
  }
  m.nodes = src.nodes.size();
  m.workers = src.nodes.workers();
  m.sessions = src.sessions.size();
  const Counters& n = src.ctx.counters;
  m.done = n.done;
  m.faulted = n.faulted;
  m.bad_messages = n.bad_messages;
  m.rate = n.rate;
  m.instance = src.ctx.instance;
  m.journal = "none";
  if (src.durable.enabled()) {
    const JournalStore& j = src.durable.journal();
    m.journal = j.healthy() ? "ok" : j.health_reason();
    JournalStats js = j.stats();
    m.journal_syncs = js.syncs;
    m.journal_ops = js.ops;
    m.journal_bytes = js.bytes;
  }
  m.journal_read_errors = n.journal_read_errors;
  m.journal_corrupt_records = n.journal_corrupt_records;
  m.data_loss = n.data_loss;
  m.dashboard = src.ctx.dashboard_url;
  m.role = src.ctx.role;
  m.epoch = src.ctx.epoch;
  m.active = src.ctx.active_frontend;
  m.takeovers = src.ctx.takeovers;
  m.heartbeat_ms = static_cast<std::uint64_t>(src.nodes.interval());
  return m;
}

proto::NodeStatus node_row(const StatusSources& src, const NodeState& n) {
  proto::NodeStatus m;
  m.state = n.quarantined ? "quarantined" : n.draining ? "draining" : "ok";
  m.node_id = n.id;
  m.host = n.host;
  m.pid = n.pid;
  m.workers = n.workers;
  m.stuck = n.stuck;
  m.capacity = n.capacity;
  m.inflight = n.inflight;
  m.done = n.done;
  m.faulted = n.faulted;
  m.last_heartbeat_ms = src.ctx.now - n.last_seen;
  m.uptime_ms = src.ctx.now - n.joined;
  m.heartbeat_ms = static_cast<std::uint64_t>(n.heartbeat_ms);
  for (const auto& svc : n.services) m.services.append(m.services.empty() ? "" : ",").append(svc);
  return m;
}

}  // namespace zgrid::head
