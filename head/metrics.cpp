#include "head/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/prometheus.hpp"

namespace zgrid::head {

ProcessFacts ProcessFacts::read() {
  ProcessFacts p;
  if (std::FILE* f = std::fopen("/proc/self/statm", "re")) {
    unsigned long long size = 0, resident = 0;
    if (std::fscanf(f, "%llu %llu", &size, &resident) == 2) {
      double page = static_cast<double>(sysconf(_SC_PAGESIZE));
      p.virtual_bytes = static_cast<double>(size) * page;
      p.resident_bytes = static_cast<double>(resident) * page;
    }
    std::fclose(f);
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    int n = 0;
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
    p.open_fds = n - 1;  // not the directory's own descriptor
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) p.max_fds = static_cast<double>(rl.rlim_cur);
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    p.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                    static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  return p;
}

namespace {

double d(std::uint64_t v) {
  return static_cast<double>(v);
}

std::string session_state(const proto::SessionStatus& s) {
  return s.complete ? "complete" : s.state;
}

}  // namespace

std::string render_metrics(const Snapshot& s, const ProcessFacts& p, const HttpFacts& h) {
  prom::Writer w;
  using L = prom::Labels;
  w.family("zgrid_requests_accepted_total", "counter", "Requests accepted from clients.");
  for (const auto& [svc, st] : s.services) w.sample(L{{"service", svc}}, d(st.accepted));
  w.family("zgrid_requests_total", "counter",
           "Requests settled, by outcome: done, faulted, or removed with their client by the "
           "idle timeout.");
  for (const auto& [svc, st] : s.services) {
    std::uint64_t faulted = 0;
    for (const auto& [code, n] : st.faulted) faulted += n;
    w.sample(L{{"service", svc}, {"outcome", "done"}}, d(st.done));
    w.sample(L{{"service", svc}, {"outcome", "faulted"}}, d(faulted));
    w.sample(L{{"service", svc}, {"outcome", "removed"}}, d(st.removed));
  }
  w.family("zgrid_request_faults_total", "counter", "Faulted requests by fault code.");
  for (const auto& [svc, st] : s.services)
    for (const auto& [code, n] : st.faulted) w.sample(L{{"service", svc}, {"code", code}}, d(n));
  w.family("zgrid_requests_retried_total", "counter",
           "Requests put back in the queue to run again (lost node, task timeout, retryable).");
  for (const auto& [svc, st] : s.services) w.sample(L{{"service", svc}}, d(st.retried));
  w.family("zgrid_request_duration_seconds", "histogram",
           "From dispatch to a node until its answer reached the head.");
  for (const auto& [svc, st] : s.services) w.histogram(L{{"service", svc}}, st.latency);
  w.family("zgrid_requests_queued", "gauge", "Requests accepted and not yet running.");
  w.sample({}, d(s.grid.queued));
  w.family("zgrid_requests_running", "gauge", "Requests on nodes now.");
  w.sample({}, d(s.grid.running));
  w.family("zgrid_answers_per_second", "gauge",
           "Requests answered per second over the last second.");
  w.sample({}, s.grid.rate);

  // Nodes by state, with their workers and credit (the tasks they asked for).
  struct ByState {
    std::uint64_t nodes = 0, workers = 0, credit = 0, inflight = 0;
  };
  std::map<std::string, ByState> by;
  for (const char* st : {"ok", "draining", "quarantined"}) by[st];
  for (const auto& n : s.nodes) {
    ByState& b = by[n.state];
    ++b.nodes;
    b.workers += n.workers;
    b.credit += n.capacity;
    b.inflight += n.inflight;
  }
  w.family("zgrid_nodes", "gauge", "Nodes by state; lost: lost and not registered again since.");
  for (const auto& [st, b] : by) w.sample(L{{"state", st}}, d(b.nodes));
  w.sample(L{{"state", "lost"}}, d(s.nodes_lost_now));
  w.family("zgrid_workers", "gauge", "Workers of the registered nodes, by node state.");
  for (const auto& [st, b] : by) w.sample(L{{"state", st}}, d(b.workers));
  w.family("zgrid_credit_tasks", "gauge",
           "Tasks the nodes asked for (their credit), by node state.");
  for (const auto& [st, b] : by) w.sample(L{{"state", st}}, d(b.credit));
  w.family("zgrid_inflight_tasks", "gauge", "Tasks on nodes, by node state.");
  for (const auto& [st, b] : by) w.sample(L{{"state", st}}, d(b.inflight));
  w.family("zgrid_nodes_lost_total", "counter", "Nodes lost or gone, by reason.");
  for (const char* r : {"left", "re-registered", "silent", "unreachable"}) {
    auto it = s.nodes_lost.find(r);
    w.sample(L{{"reason", r}}, it == s.nodes_lost.end() ? 0.0 : d(it->second));
  }

  std::map<std::pair<std::string, std::string>, std::uint64_t> sessions;
  for (const char* kind : {"durable", "interactive"})
    for (const char* st : {"open", "sealed", "cancelled", "closed", "complete"})
      sessions[{kind, st}];
  for (const auto& ss : s.sessions)
    ++sessions[{ss.durable ? "durable" : "interactive", session_state(ss)}];
  w.family("zgrid_sessions", "gauge",
           "Sessions the head holds, by kind and state (complete: every request settled).");
  for (const auto& [k, n] : sessions) w.sample(L{{"kind", k.first}, {"state", k.second}}, d(n));

  w.family("zgrid_journal_enabled", "gauge", "1 when the head journals durable sessions.");
  w.sample({}, s.journal_enabled ? 1 : 0);
  w.family("zgrid_journal_healthy", "gauge", "1 when the journal takes writes.");
  w.sample({}, s.grid.journal == "ok" ? 1 : 0);
  w.family("zgrid_journal_syncs_total", "counter", "Synced journal writes (group commits).");
  w.sample({}, d(s.journal.syncs));
  w.family("zgrid_journal_fsyncs_total", "counter",
           "Syncs the journal made: segment files (fdatasync) and LevelDB writes (sync).");
  w.sample(L{{"kind", "segment"}}, d(s.journal.file_syncs));
  w.sample(L{{"kind", "leveldb"}}, d(s.journal.db_syncs));
  w.family(
      "zgrid_journal_redo_groups_total", "counter",
      "Write groups made durable by one segment file's sync (a redo record; LevelDB unsynced).");
  w.sample({}, d(s.journal.redo_groups));
  w.family("zgrid_journal_ops_total", "counter", "Operations written in synced journal writes.");
  w.sample({}, d(s.journal.ops));
  w.family("zgrid_journal_written_bytes_total", "counter", "Bytes written to the journal.");
  w.sample({}, d(s.journal.bytes));
  w.family("zgrid_journal_failed_writes_total", "counter", "Journal writes that failed.");
  w.sample({}, d(s.journal.failures));
  w.family("zgrid_journal_ops_per_sync", "gauge", "Operations per synced write, on average.");
  w.sample({}, s.journal.syncs ? d(s.journal.ops) / d(s.journal.syncs) : 0.0);
  w.family("zgrid_journal_queued_bytes", "gauge", "Bytes waiting for the journal thread.");
  w.sample({}, d(s.journal_queued_bytes));
  w.family("zgrid_journal_sync_seconds", "histogram", "Time of each synced journal write.");
  w.histogram({}, s.journal.sync_seconds);
  w.family("zgrid_journal_read_errors_total", "counter", "Journal reads that failed.");
  w.sample({}, d(s.grid.journal_read_errors));
  w.family("zgrid_journal_corrupt_records_total", "counter", "Journal records found corrupt.");
  w.sample({}, d(s.grid.journal_corrupt_records));

  w.family("zgrid_bad_messages_total", "counter",
           "Undecodable or out-of-protocol messages, by port (client or node).");
  w.sample(L{{"port", "client"}}, d(s.bad_client_messages));
  w.sample(L{{"port", "node"}}, d(s.bad_node_messages));
  w.family("zgrid_refused_handshakes_total", "counter",
           "CURVE handshakes refused by the key lists, by port.");
  w.sample(L{{"port", "client"}}, d(s.refused_client_handshakes));
  w.sample(L{{"port", "node"}}, d(s.refused_node_handshakes));

  w.family("zgrid_snapshot_builds_total", "counter", "Snapshots the reactor built for readers.");
  w.sample({}, d(s.builds));
  w.family("zgrid_snapshot_build_seconds_total", "counter",
           "Time the reactor spent building snapshots.");
  w.sample({}, s.build_seconds_total);
  w.family("zgrid_snapshot_timestamp_seconds", "gauge", "When the snapshot served was built.");
  w.sample({}, static_cast<double>(s.wall_ms) / 1000.0);
  // Not "instance": Prometheus gives every target that label itself.
  w.family("zgrid_info", "gauge", "The head's instance id (random per start).");
  w.sample(L{{"head_instance", s.grid.instance}}, 1);
  w.family("zgrid_head_role", "gauge",
           "1 for this head's failover role: active, standby, or single (no --data-dir).");
  for (const char* role : {"active", "standby", "single"})
    w.sample(L{{"role", role}}, s.grid.role == role ? 1 : 0);
  w.family("zgrid_head_epoch", "gauge",
           "The lease epoch this head holds, or (a standby) the newest it has seen.");
  w.sample({}, d(s.grid.epoch));
  w.family("zgrid_head_takeovers_total", "counter",
           "Times this head became active by taking over another head's unreleased lease.");
  w.sample({}, d(s.grid.takeovers));
  w.family("zgrid_heartbeat_interval_seconds", "gauge",
           "The heartbeat interval the head tells its nodes (--heartbeat, longer on a big grid).");
  w.sample({}, static_cast<double>(s.grid.heartbeat_ms) / 1000.0);

  w.family("zgrid_http_connections_total", "counter",
           "Connections the HTTP listener accepted, by outcome: served (a request was read), "
           "timed_out (no complete request in 5 s), evicted (closed to make room, the oldest "
           "waiting), gone (closed by the client first).");
  w.sample(L{{"outcome", "served"}}, h.served);
  w.sample(L{{"outcome", "timed_out"}}, h.timed_out);
  w.sample(L{{"outcome", "evicted"}}, h.evicted);
  w.sample(L{{"outcome", "gone"}}, h.gone);

  w.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  w.sample({}, p.resident_bytes);
  w.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  w.sample({}, p.virtual_bytes);
  w.family("process_open_fds", "gauge", "Open file descriptors.");
  w.sample({}, p.open_fds);
  w.family("process_max_fds", "gauge", "The limit of open file descriptors.");
  w.sample({}, p.max_fds);
  w.family("process_cpu_seconds_total", "counter", "User and system CPU time.");
  w.sample({}, p.cpu_seconds);
  w.family("process_start_time_seconds", "gauge", "Start time of the process, Unix seconds.");
  w.sample({}, static_cast<double>(s.start_time));
  return w.take();
}

namespace {

template <class Row>
nlohmann::json row_json(const Row& r) {
  nlohmann::json j = nlohmann::json::object();
  proto::for_each_field(r, [&](const char* name, const auto& v) { j[name] = v; });
  return j;
}

std::string dump(const nlohmann::json& j) {
  // Session ids and service names come from users: never fail on bad UTF-8.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string render_status_json(const Snapshot& s, bool token_required, bool authorized) {
  nlohmann::json j;
  j["grid"] = row_json(s.grid);
  j["snapshot"] = {{"seq", s.seq}, {"wall_ms", s.wall_ms}};
  nlohmann::json nodes = {{"ok", 0}, {"draining", 0}, {"quarantined", 0}};
  for (const auto& n : s.nodes) nodes[n.state] = nodes.value(n.state, 0) + 1;
  nodes["lost"] = s.nodes_lost_now;
  j["nodes_by_state"] = nodes;
  nlohmann::json sessions = nlohmann::json::object();
  for (const auto& ss : s.sessions) {
    std::string st = session_state(ss);
    sessions[st] = sessions.value(st, 0) + 1;
  }
  j["sessions_by_state"] = sessions;
  nlohmann::json tp = nlohmann::json::array();
  for (const auto& [t, r] : s.throughput) tp.push_back({t, r});
  j["throughput"] = tp;
  j["start_time"] = s.start_time;
  j["auth"] = {{"token_required", token_required}, {"authorized", authorized}};
  return dump(j);
}

namespace {
template <class Row>
std::string page_json(const std::vector<Row>& rows, const char* key, std::size_t offset,
                      std::size_t limit,
                      const std::function<void(const Row&, nlohmann::json&)>& extra = {}) {
  nlohmann::json j;
  j["total"] = rows.size();
  j["offset"] = offset;
  j["limit"] = limit;
  nlohmann::json list = nlohmann::json::array();
  for (std::size_t i = offset; i < rows.size() && i < offset + limit; ++i) {
    nlohmann::json r = row_json(rows[i]);
    if (extra) extra(rows[i], r);
    list.push_back(std::move(r));
  }
  j[key] = std::move(list);
  return dump(j);
}
}  // namespace

std::string render_nodes_json(const Snapshot& s, std::size_t offset, std::size_t limit) {
  return page_json<proto::NodeStatus>(
      s.nodes, "nodes", offset, limit, [](const proto::NodeStatus& n, nlohmann::json& r) {
        r["free"] = n.capacity > n.inflight ? n.capacity - n.inflight : 0;
      });
}

std::string render_sessions_json(const Snapshot& s, std::size_t offset, std::size_t limit) {
  return page_json(s.sessions, "sessions", offset, limit);
}

std::string render_events_json(const Snapshot& s, std::uint64_t since) {
  nlohmann::json list = nlohmann::json::array();
  std::uint64_t next = since;
  if (s.events) {
    for (const Event& e : *s.events) {
      if (e.seq <= since) continue;
      list.push_back({{"seq", e.seq},
                      {"time_ms", e.time_ms},
                      {"kind", e.kind},
                      {"subject", e.subject},
                      {"message", e.message}});
      next = e.seq;
    }
  }
  return dump({{"next", next}, {"events", std::move(list)}});
}

}  // namespace zgrid::head
