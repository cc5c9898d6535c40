#include "head/status_rows.hpp"

#include "head/lifecycle.hpp"

namespace zgrid::head {

proto::SessionStatus session_row(const StatusSources& src, const Session& s) {
  proto::SessionStatus m;
  m.session_id = s.id;
  m.service = s.service;
  m.durable = s.durable;
  m.owner = src.security.name_of(s.owner);  // the key's file name; empty without CURVE
  m.state = proto::state_name(s.state);
  m.total = s.total;
  m.committed = s.committed;
  m.queued = Lifecycle::queued_count(s);
  m.running = s.running + s.committing;
  m.done = s.done;
  m.faulted = s.faulted;
  m.removed = s.requests_removed;
  m.clients = s.clients.size();
  for (const auto& c : s.clients)
    if (!c.ended && !c.removed) ++m.clients_open;
  m.clients_removed = s.clients_removed;
  m.created = s.created_wall;
  m.complete = SessionTable::complete(s);
  m.responses_queued = s.out_pending;
  m.idle_ms = src.ctx.now - s.last_activity;
  m.client_idle_timeout_ms = s.client_idle_timeout_ms;
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
      m.running += kv.second->running;
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
  for (const auto& svc : n.services) m.services.append(m.services.empty() ? "" : ",").append(svc);
  return m;
}

}  // namespace zgrid::head
