// zgrid status (and --watch), nodes, sessions, drain and keygen: the
// commands about the grid as a whole. Each a cmd_ function
// (client/cli_app.hpp); their flags are in the command table
// (client/zgrid.cpp).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "client/cli_app.hpp"
#include "client/progress.hpp"
#include "common/clock.hpp"
#include "common/curve.hpp"
#include "common/util.hpp"

namespace zgrid::cli_app {

// zgrid keygen: a CURVE key pair for a client, a node or a head.
int cmd_keygen(const std::string& dir, const std::string& name, bool force) {
  if (!zgrid::valid_name(name) || name.find('/') != std::string::npos)
    return fail("--name must be a file name (1..64 printable characters, no '/')");
  auto kp = zgrid::curve::generate();
  if (!kp.ok()) return fail(kp.status());
  auto paths = zgrid::curve::write_pair(dir, name, *kp, force);
  if (!paths.ok()) return fail(paths.status());
  std::printf("public key: %s\nsecret key: %s (mode 0600, keep it private)\n", paths->first.c_str(),
              paths->second.c_str());
  return kExitOk;
}

int cmd_status(const Global& g, const std::string& sid, bool json) {
  // Several heads (failover): first what each says of itself, asked
  // directly, so that a grid without an active head still shows its heads.
  std::vector<Fields> heads;
  if (sid.empty() && zgrid::split_endpoints(g.head).size() > 1) {
    zgrid::client::ClientOptions o;
    o.head = g.head;
    o.timeout_ms = g.timeout_ms;
    if (auto c = client_options(g); c.ok()) o = *c;
    heads = Connection::heads(o);
    if (!json) {
      print_table(heads, {"endpoint", "role", "epoch", "instance", "error"});
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  auto conn = connect(g);
  if (!conn.ok()) {
    if (json && !heads.empty()) {  // what the heads said, then why there is no more
      std::string list = "{\"heads\": [";
      for (std::size_t i = 0; i < heads.size(); ++i) list += (i ? ", " : "") + heads[i].to_json();
      std::printf("%s]}\n", list.c_str());
      std::fflush(stdout);
    }
    return fail(conn.status());
  }
  auto st = sid.empty() ? (*conn)->grid_status() : (*conn)->session_status(sid);
  if (!st.ok()) return fail(st.status());
  if (json) {
    std::string out = st->to_json();
    if (!heads.empty()) {
      std::string list = "{\"heads\": [";
      for (std::size_t i = 0; i < heads.size(); ++i) list += (i ? ", " : "") + heads[i].to_json();
      list += "]";
      out = list + (out.size() > 2 ? ", " + out.substr(1) : std::string("}"));
    }
    std::printf("%s\n", out.c_str());
    return kExitOk;
  }
  print_fields(*st);
  if (sid.empty()) {  // the grid: its nodes too
    auto rows = (*conn)->nodes();
    if (!rows.ok()) return fail(rows.status());
    std::printf("\n");
    print_table(*rows, {"node_id", "state", "host", "workers", "stuck", "inflight", "done",
                        "faulted", "last_heartbeat_ms"});
  }
  return kExitOk;
}

int cmd_nodes(const Global& g, bool json) {
  auto conn = connect(g);
  if (!conn.ok()) return fail(conn.status());
  auto rows = (*conn)->nodes();
  if (!rows.ok()) return fail(rows.status());
  if (json) {
    for (const auto& r : *rows) std::printf("%s\n", r.to_json().c_str());
  } else {
    print_table(*rows,
                {"node_id", "state", "host", "pid", "workers", "stuck", "capacity", "inflight",
                 "done", "faulted", "last_heartbeat_ms", "heartbeat_ms", "services"});
  }
  return kExitOk;
}

int cmd_sessions(const Global& g, bool json) {
  auto conn = connect(g);
  if (!conn.ok()) return fail(conn.status());
  auto rows = (*conn)->sessions();
  if (!rows.ok()) return fail(rows.status());
  if (json) {
    for (const auto& r : *rows) std::printf("%s\n", r.to_json().c_str());
  } else {
    std::int64_t now = zgrid::wall_seconds();
    for (auto& r : *rows) {
      std::int64_t created = static_cast<std::int64_t>(r.u64("created"));
      r.items.emplace_back("age",
                           zgrid::format_duration(std::max<std::int64_t>(0, now - created) * 1000));
    }
    std::vector<std::string> cols{"session_id", "service", "durable",   "state",
                                  "age",        "total",   "committed", "queued",
                                  "running",    "done",    "faulted",   "removed"};
    // With CURVE an admin sees every key's sessions: say whose they are.
    if (std::any_of(rows->begin(), rows->end(),
                    [](const Fields& r) { return !r.str("owner").empty(); }))
      cols.insert(cols.begin() + 2, "owner");
    print_table(*rows, cols);
  }
  return kExitOk;
}

// zgrid status [ID] --watch: a live progress bar on a terminal, plain
// periodic lines otherwise; for a session, it ends when the session is complete.
int cmd_watch(const Global& g, const std::string& sid, Millis interval_ms) {
  auto conn = connect(g);
  if (!conn.ok()) return fail(conn.status());
  bool tty = isatty(STDOUT_FILENO) != 0;
  zgrid::cli::ProgressLine meter(stdout, false);  // its rate only: this draws on stdout itself
  while (true) {
    auto st = sid.empty() ? (*conn)->grid_status() : (*conn)->session_status(sid);
    if (!st.ok()) {
      if (tty) std::printf("\n");
      return fail(st.status());
    }
    std::uint64_t done = st->u64("done"), faulted = st->u64("faulted");
    std::uint64_t removed = sid.empty() ? 0 : st->u64("removed");
    meter.sample(done + faulted + removed);
    double rate = meter.rate();
    char line[512];
    if (sid.empty()) {
      std::snprintf(line, sizeof line,
                    "nodes %llu  workers %llu  sessions %llu  queued %llu  running %llu  done %llu "
                    " faulted %llu  %.0f req/s",
                    (unsigned long long)st->u64("nodes"), (unsigned long long)st->u64("workers"),
                    (unsigned long long)st->u64("sessions"), (unsigned long long)st->u64("queued"),
                    (unsigned long long)st->u64("running"), (unsigned long long)done,
                    (unsigned long long)faulted, rate);
    } else {
      std::snprintf(line, sizeof line, "%s",
                    zgrid::cli::format_progress(session_progress(*st), rate).c_str());
    }
    if (tty)
      std::printf("\r%s\033[K", line);  // redraw in place
    else
      std::printf("%s\n", line);
    std::fflush(stdout);
    if (!sid.empty() && st->boolean("complete")) {
      if (tty) std::printf("\n");
      return faulted + removed > 0 ? kExitFaulted : kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
}

int cmd_drain(const Global& g, const std::string& node, bool undo, bool no_wait,
              Millis wait_timeout_ms) {
  auto conn = connect(g);
  if (!conn.ok()) return fail(conn.status());
  Status st = (*conn)->drain_node(node, undo);
  if (!st.ok()) return fail(st);
  if (undo) {
    std::printf("node %s takes work again\n", node.c_str());
    return kExitOk;
  }
  if (no_wait) {
    std::printf("node %s draining: no new work\n", node.c_str());
    return kExitOk;
  }
  const zgrid::Clock& clock = zgrid::SteadyClock::instance();
  Millis start = clock.now_ms();
  while (true) {
    auto nodes = (*conn)->nodes();
    if (!nodes.ok()) return fail(nodes.status());
    const Fields* me = nullptr;
    for (const auto& n : *nodes)
      if (n.str("node_id") == node) me = &n;
    if (me == nullptr || me->u64("inflight") == 0) {
      std::printf("node %s drained: nothing in flight; it can be stopped\n", node.c_str());
      return kExitOk;
    }
    if (wait_timeout_ms > 0 && clock.now_ms() - start > wait_timeout_ms) {
      std::fprintf(stderr, "zgrid: node %s still has %llu requests in flight\n", node.c_str(),
                   (unsigned long long)me->u64("inflight"));
      return kExitIncomplete;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace zgrid::cli_app
