// zgrid: the command-line client (README.md: commands and their exit status).
//
// Exit status, the same for every command:
//   0 all succeeded; 1 some request faulted or was removed;
//   2 usage, connection, unknown session or permission error;
//   3 incomplete (--no-wait, or a timeout).
#include <sys/wait.h>
#include <unistd.h>
#include <zgrid/client.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client/cli_app.hpp"
#include "client/progress.hpp"
#include "common/cli.hpp"
#include "common/curve.hpp"
#include "common/service_spec.hpp"
#include "common/util.hpp"

namespace zgrid::cli_app {

int fail(const Status& st) {
  zgrid::cli::clear_progress_line();
  // Security refusals name their code, so scripts and people can tell them apart.
  bool named = st.code() == zgrid::Code::kPermissionDenied ||
               st.code() == zgrid::Code::kUnauthenticated ||
               st.code() == zgrid::Code::kResourceExhausted;
  std::fprintf(stderr, "zgrid: error: %s\n", named ? st.ToString().c_str() : st.message().c_str());
  return st.code() == zgrid::Code::kTimedOut ? kExitIncomplete : kExitError;
}

int fail(const std::string& msg) {
  zgrid::cli::clear_progress_line();
  std::fprintf(stderr, "zgrid: error: %s\n", msg.c_str());
  return kExitError;
}

void note_paused(const std::string& sid, const Fields& st, std::string* said) {
  std::string why = st.str("paused");
  if (why == *said) return;
  *said = why;
  if (why.empty()) return;
  zgrid::cli::clear_progress_line();
  std::fflush(stdout);
  std::fprintf(stderr, "zgrid: session %s is paused: %s\n", sid.c_str(), why.c_str());
}

zgrid::Result<zgrid::client::ClientOptions> client_options(const Global& g) {
  zgrid::client::ClientOptions o;
  o.head = g.head;
  o.timeout_ms = g.timeout_ms;
  if (!g.head_key_file.empty() || !g.key_file.empty()) {
    if (g.head_key_file.empty() || g.key_file.empty())
      return Status::InvalidArgument("CURVE needs both --head-key and --key");
    auto hk = zgrid::curve::read_public(g.head_key_file);
    if (!hk.ok()) return hk.status();
    auto kp = zgrid::curve::read_secret(g.key_file);
    if (!kp.ok()) return kp.status();
    o.head_key = *hk;
    o.public_key = kp->public_z85;
    o.secret_key = kp->secret_z85;
  }
  return o;
}

zgrid::Result<std::unique_ptr<Connection>> connect(const Global& g) {
  auto o = client_options(g);
  if (!o.ok()) return o.status();
  return Connection::open(*o);
}

}  // namespace zgrid::cli_app

namespace {

using namespace zgrid::cli_app;  // NOLINT: the CLI's shared parts

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

// ---- submit -------------------------------------------------------------------

// ---- fetch ----------------------------------------------------------------------

zgrid::cli::Progress session_progress(const Fields& st) {
  zgrid::cli::Progress p;
  p.total = st.u64("total");
  p.done = st.u64("done");
  p.faulted = st.u64("faulted");
  p.removed = st.u64("removed");
  p.running = st.u64("running");
  return p;
}

// Why a session lost requests, in one line on stderr: which clients were
// removed, when, after what idle time, with how many requests, and how to
// avoid it. Nothing when none was removed.
void explain_removals(const std::string& sid, const Fields& st) {
  bool abandoned = st.str("state") == "abandoned";
  if (st.u64("removed") == 0 && !abandoned) return;
  std::fflush(stdout);
  std::fprintf(
      stderr,
      "zgrid: session %s %s: %s; to avoid this, commit what you send (zgrid submit "
      "commits at its end unless --no-end) or attach again within the client idle "
      "timeout (%s) to resume\n",
      sid.c_str(),
      abandoned ? "was abandoned, nothing of it will run" : "lost the requests of removed clients",
      st.str("removals").c_str(),
      zgrid::format_duration(static_cast<Millis>(st.u64("client_idle_timeout_ms"))).c_str());
}

// On a terminal, while a fetch or wait waits on a client that has not
// committed: say who, and when it would be removed (once per client).
void note_uncommitted(const Fields& st, zgrid::cli::ProgressLine& progress, std::string* said) {
  std::string who = st.str("waiting_for");
  if (!progress.enabled() || who.empty() || who == *said) return;
  *said = who;
  std::time_t at =
      std::time(nullptr) + static_cast<std::time_t>((st.u64("removal_in_ms") + 999) / 1000);
  std::tm tm{};
  localtime_r(&at, &tm);
  char hms[16];
  std::strftime(hms, sizeof hms, "%H:%M:%S", &tm);
  zgrid::cli::clear_progress_line();
  std::fprintf(stderr, "zgrid: waiting for client %s to commit; it will be removed at %s if idle\n",
               who.c_str(), hms);
}

struct FetchArgs {
  std::string session_id;
  bool no_wait = false, json = false, quiet = false;
  std::uint64_t from = 0;
  Millis wait_timeout_ms = 0;  // 0: wait as long as the session makes progress
};

int cmd_fetch(const Global& g, const FetchArgs& a) {
  auto conn = connect(g);
  if (!conn.ok()) return fail(conn.status());
  auto info = (*conn)->attach(a.session_id);
  if (!info.ok()) return fail(info.status());
  if (auto st = (*conn)->session_status(a.session_id); st.ok() && st->str("state") == "abandoned") {
    explain_removals(a.session_id, *st);  // nothing will come: say so at once
    return kExitFaulted;
  }
  Printer printer(a.json, is_factorize(info->service));
  std::string said_waiting;
  std::uint64_t cursor = a.from;
  const zgrid::Clock& clock = zgrid::SteadyClock::instance();
  Millis start = clock.now_ms();
  // On a terminal, while waiting: the session's progress, as status --watch draws it.
  zgrid::cli::ProgressLine progress(stderr, !a.no_wait && zgrid::cli::show_progress(a.quiet, true));
  Millis last_status = -1'000'000;
  std::string said_paused;
  while (true) {
    auto page = (*conn)->fetch(a.session_id, cursor, 16384,
                               a.no_wait            ? 0
                               : progress.enabled() ? 250
                                                    : 1000);
    if (!page.ok()) return fail(page.status());
    for (const auto& r : page->responses) printer.print(r);
    cursor = page->next_cursor;
    // While it waits: the session's progress on a terminal, and (always)
    // why its work cannot run, if it cannot.
    if (!page->complete && !a.no_wait &&
        clock.now_ms() - last_status >= (progress.enabled() ? 250 : 1000)) {
      last_status = clock.now_ms();
      if (auto st = (*conn)->session_status(a.session_id); st.ok()) {
        note_uncommitted(*st, progress, &said_waiting);
        note_paused(a.session_id, *st, &said_paused);
        progress.update(session_progress(*st));
      }
    }
    if (page->complete && page->responses.empty()) break;
    if (page->responses.empty() && a.no_wait) {
      std::fflush(stdout);
      std::fprintf(stderr, "zgrid: session %s is not complete yet; resume with --from %llu\n",
                   a.session_id.c_str(), static_cast<unsigned long long>(cursor));
      return kExitIncomplete;
    }
    if (a.wait_timeout_ms > 0 && clock.now_ms() - start > a.wait_timeout_ms) {
      progress.finish();
      std::fflush(stdout);
      std::fprintf(stderr, "zgrid: session %s not complete after %s\n", a.session_id.c_str(),
                   zgrid::format_duration(a.wait_timeout_ms).c_str());
      return kExitIncomplete;
    }
  }
  auto st = (*conn)->session_status(a.session_id);
  if (st.ok() && last_status >= 0) progress.keep(session_progress(*st));
  progress.finish();
  bool removed = st.ok() && st->u64("removed") > 0;
  if (removed) explain_removals(a.session_id, *st);
  return printer.faulted() > 0 || removed ? kExitFaulted : kExitOk;
}

// ---- status, nodes, sessions, close ---------------------------------------------

void print_fields(const Fields& f) {
  for (const auto& [k, v] : f.items) std::printf("%-22s %s\n", (k + ":").c_str(), f.str(k).c_str());
}

void print_table(const std::vector<Fields>& rows, const std::vector<std::string>& cols);

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

void print_table(const std::vector<Fields>& rows, const std::vector<std::string>& cols) {
  std::vector<std::size_t> width;
  for (const auto& c : cols) width.push_back(c.size());
  for (const auto& r : rows)
    for (std::size_t i = 0; i < cols.size(); ++i)
      width[i] = std::max(width[i], r.str(cols[i]).size());
  for (std::size_t i = 0; i < cols.size(); ++i)
    std::printf("%-*s%s", static_cast<int>(width[i]), cols[i].c_str(),
                i + 1 < cols.size() ? "  " : "\n");
  for (const auto& r : rows)
    for (std::size_t i = 0; i < cols.size(); ++i)
      std::printf("%-*s%s", static_cast<int>(width[i]), r.str(cols[i]).c_str(),
                  i + 1 < cols.size() ? "  " : "\n");
}

int cmd_nodes(const Global& g, bool json) {
  auto conn = connect(g);
  if (!conn.ok()) return fail(conn.status());
  auto rows = (*conn)->nodes();
  if (!rows.ok()) return fail(rows.status());
  if (json) {
    for (const auto& r : *rows) std::printf("%s\n", r.to_json().c_str());
  } else {
    print_table(*rows, {"node_id", "state", "host", "pid", "workers", "stuck", "capacity",
                        "inflight", "done", "faulted", "last_heartbeat_ms", "services"});
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

int cmd_close(const Global& g, const std::string& sid, zgrid::proto::CloseMode mode) {
  auto conn = connect(g);
  if (!conn.ok()) return fail(conn.status());
  Status st = (*conn)->close_session(sid, mode);
  if (!st.ok()) return fail(st);
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

// zgrid wait ID: until the session is complete; exit 0 all done, 1 some
// faulted or removed, 3 not complete within --timeout. --on-complete runs a
// command (sh -c) once, with the session's id and counts in its environment.
int cmd_wait(const Global& g, const std::string& sid, Millis timeout_ms,
             const std::string& on_complete, bool quiet) {
  auto conn = connect(g);
  if (!conn.ok()) return fail(conn.status());
  zgrid::cli::ProgressLine progress(stderr, zgrid::cli::show_progress(quiet, false));
  std::string said_waiting;
  std::string said_paused;
  auto st = (*conn)->wait_complete(sid, timeout_ms, [&](const Fields& f) {
    note_uncommitted(f, progress, &said_waiting);
    note_paused(sid, f, &said_paused);
    progress.update(session_progress(f));
  });
  if (!st.ok()) {
    if (st.status().code() != zgrid::Code::kTimedOut) return fail(st.status());
    progress.finish();
    std::fprintf(stderr, "zgrid: %s\n", st.status().message().c_str());
    return kExitIncomplete;
  }
  progress.keep(session_progress(*st));
  std::uint64_t faulted = st->u64("faulted"), removed = st->u64("removed");
  int rc = faulted + removed > 0 ? kExitFaulted : kExitOk;
  std::fprintf(stderr, "zgrid: session %s complete: %llu done, %llu faulted, %llu removed\n",
               sid.c_str(), (unsigned long long)st->u64("done"), (unsigned long long)faulted,
               (unsigned long long)removed);
  explain_removals(sid, *st);
  if (!on_complete.empty()) {
    std::fflush(stdout);
    for (auto [name, value] : {std::pair<const char*, std::string>{"ZGRID_SESSION", sid},
                               {"ZGRID_TOTAL", std::to_string(st->u64("total"))},
                               {"ZGRID_DONE", std::to_string(st->u64("done"))},
                               {"ZGRID_FAULTED", std::to_string(faulted)},
                               {"ZGRID_REMOVED", std::to_string(removed)},
                               {"ZGRID_EXIT", std::to_string(rc)}})
      ::setenv(name, value.c_str(), 1);
    int status = std::system(on_complete.c_str());
    if (status != 0)
      std::fprintf(stderr, "zgrid: --on-complete command %s\n",
                   status == -1        ? "could not be run"
                   : WIFEXITED(status) ? ("exited " + std::to_string(WEXITSTATUS(status))).c_str()
                                       : "was killed by a signal");
  }
  return rc;
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

// ---- the command table ---------------------------------------------------------

// One subcommand: its name and help, and how it declares its flags on its
// CLI11 subcommand, returning what runs it once the command line is parsed.
// A new command is one entry here and its cmd_ function.
using Run = std::function<int(const Global&)>;
struct Command {
  const char* name;
  const char* help;
  std::function<Run(CLI::App& sub)> declare;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> table{
      {"keygen", "Write a CURVE key pair: NAME.pub (share it) and NAME.key (mode 0600)",
       [](CLI::App& sub) -> Run {
         struct A {
           std::string dir = ".", name;
           bool force = false;
         };
         auto a = std::make_shared<A>();
         if (const char* u = std::getenv("USER"); u && *u) a->name = u;
         if (a->name.empty()) a->name = "zgrid";
         sub.add_option("--out", a->dir, "Directory to write to")->capture_default_str();
         sub.add_option("--name", a->name, "File name of the pair (default $USER)");
         sub.add_flag("--force", a->force, "Replace existing files");
         return [a](const Global&) { return cmd_keygen(a->dir, a->name, a->force); };
       }},
      {"submit", "Send a batch of requests to a new session",
       [](CLI::App& sub) -> Run {
         auto sa = std::make_shared<SubmitArgs>();
         sub.add_option("--service", sa->service,
                        "Service to run: name[@version][/operation] (e.g. factorize, "
                        "montecarlo@1/pi)")
             ->required();
         sub.add_option("--operation", sa->operation,
                        "Operation of the service (default: its first)");
         sub.add_option("--input-format", sa->input_format,
                        "lines: each line is a request; json: each line is a JSON document, sent "
                        "as msgpack; msgpack: a stream of msgpack values")
             ->capture_default_str();
         sub.add_flag("--durable", sa->durable,
                      "Journal requests and results (fetch them later by id)");
         sub.add_flag("--interactive", sa->interactive, "Stream results back now (the default)");
         sub.add_flag("--stateful", sa->stateful,
                      "Run the requests one at a time, in order, on one service instance kept "
                      "for this session (the service must support sessions)");
         sub.add_option("--file", sa->file, "One request per line; - for standard input");
         sub.add_option("--random", sa->random, "Send N random numbers instead of a file");
         sub.add_option("--seed", sa->seed, "Seed for --random")->each([sa](const std::string&) {
           sa->seed_given = true;
         });
         sub.add_option("--bits", sa->bits, "Random numbers are below 2^BITS")
             ->capture_default_str();
         sub.add_option("--client-id", sa->client_id, "Name of this sender (default: random)");
         sub.add_flag("--no-end", sa->no_end,
                      "Send and get acknowledgements, but neither flush nor end");
         sub.add_flag("--json", sa->json, "Interactive results as JSON lines");
         sub.add_flag("--quiet,-q", sa->quiet, "No progress line on the terminal");
         sub.add_flag("--wait-for-nodes", sa->wait_for_nodes,
                      "Interactive: keep waiting while no node offers the service (default: "
                      "give up after 3s, exit 2)");
         zgrid::cli::add_duration(sub, "--client-idle-timeout", &sa->client_idle_timeout_ms,
                                  "Idle timeout for clients of this session (default: the head's)");
         zgrid::cli::add_duration(
             sub, "--task-timeout", &sa->task_timeout_ms,
             "A request running longer than this is lost and retried (default: the head's)");
         zgrid::cli::add_duration(sub, "--deadline", &sa->deadline_ms,
                                  "What has not run this long after submission faults as timeout");
         sub.add_option("--batch", sa->batch, "Requests per batch")
             ->capture_default_str()
             ->check(CLI::Range(1, 65536));
         return [sa](const Global& g) { return cmd_submit(g, *sa); };
       }},
      {"fetch", "Print the responses of a durable session",
       [](CLI::App& sub) -> Run {
         auto fa = std::make_shared<FetchArgs>();
         sub.add_option("session", fa->session_id, "Session id")->required();
         sub.add_flag("--no-wait", fa->no_wait, "Print what is ready and exit (3 if incomplete)");
         sub.add_option("--from", fa->from,
                        "Start at this response number (1-based; an incomplete fetch prints "
                        "where to resume)");
         sub.add_flag("--json", fa->json, "JSON lines with request id, input and result");
         sub.add_flag("--quiet,-q", fa->quiet, "No progress line on the terminal");
         zgrid::cli::add_duration(sub, "--wait-timeout", &fa->wait_timeout_ms,
                                  "Give up waiting for completion after this long (exit 3)");
         return [fa](const Global& g) { return cmd_fetch(g, *fa); };
       }},
      {"status",
       "Counters of a session, or of the grid (with several heads: first each head's role, "
       "epoch and instance)",
       [](CLI::App& sub) -> Run {
         struct A {
           std::string id;
           bool json = false, watch = false;
           Millis interval_ms = 1000;
         };
         auto a = std::make_shared<A>();
         sub.add_option("session", a->id, "Session id (omit for the grid)");
         sub.add_flag("--json", a->json, "One JSON object");
         sub.add_flag("--watch", a->watch,
                      "Keep watching: a progress bar on a terminal, lines otherwise");
         zgrid::cli::add_duration(sub, "--interval", &a->interval_ms, "How often --watch looks");
         return [a](const Global& g) {
           if (a->watch) return cmd_watch(g, a->id, std::max<Millis>(50, a->interval_ms));
           return cmd_status(g, a->id, a->json);
         };
       }},
      {"resubmit", "Run the faulted requests of a complete durable session again, in a new session",
       [](CLI::App& sub) -> Run {
         auto a = std::make_shared<ResubmitArgs>();
         sub.add_option("session", a->session_id, "The complete durable session")->required();
         sub.add_flag("--faulted", a->faulted, "Every faulted request (the default)");
         sub.add_option("--codes", a->codes,
                        "Only requests faulted with these codes (comma-separated, e.g. "
                        "invalid_argument,service_error)");
         sub.add_option("--service", a->service,
                        "Send them to this service (NAME[@VERSION][/OP]; default: the original's)");
         sub.add_flag("--durable", a->durable,
                      "Make the new session durable (fetch its results later by id)");
         sub.add_flag("--json", a->json, "Interactive results as JSON lines");
         sub.add_flag("--quiet,-q", a->quiet, "No progress line on the terminal");
         sub.add_flag("--wait-for-nodes", a->wait_for_nodes,
                      "Interactive: keep waiting while no node offers the service (default: "
                      "give up after 3s, exit 2)");
         return [a](const Global& g) { return cmd_resubmit(g, *a); };
       }},
      {"wait", "Wait until a session is complete (exit 0 all done, 1 some faulted, 3 timeout)",
       [](CLI::App& sub) -> Run {
         struct A {
           std::string id, on_complete;
           Millis timeout_ms = 0;
           bool quiet = false;
         };
         auto a = std::make_shared<A>();
         sub.add_option("session", a->id, "Session id")->required();
         zgrid::cli::add_duration(sub, "--timeout", &a->timeout_ms,
                                  "Give up after this long (exit 3; default: no limit)");
         sub.add_option("--on-complete", a->on_complete,
                        "Run this command (sh -c) once complete, with ZGRID_SESSION, ZGRID_TOTAL, "
                        "ZGRID_DONE, ZGRID_FAULTED, ZGRID_REMOVED and ZGRID_EXIT set");
         sub.add_flag("--quiet,-q", a->quiet, "No progress line on the terminal");
         return [a](const Global& g) {
           return cmd_wait(g, a->id, a->timeout_ms, a->on_complete, a->quiet);
         };
       }},
      {"drain", "Stop new work to a node and wait until it is empty",
       [](CLI::App& sub) -> Run {
         struct A {
           std::string node;
           bool undo = false, no_wait = false;
           Millis timeout_ms = 0;
         };
         auto a = std::make_shared<A>();
         sub.add_option("node", a->node, "Node id (see zgrid nodes)")->required();
         sub.add_flag("--undo", a->undo, "Let the node take work again");
         sub.add_flag("--no-wait", a->no_wait, "Do not wait for its in-flight work");
         zgrid::cli::add_duration(sub, "--wait-timeout", &a->timeout_ms,
                                  "Give up waiting after this long (exit 3)");
         return [a](const Global& g) {
           return cmd_drain(g, a->node, a->undo, a->no_wait, a->timeout_ms);
         };
       }},
      {"nodes", "Compute nodes and their load",
       [](CLI::App& sub) -> Run {
         auto json = std::make_shared<bool>(false);
         sub.add_flag("--json", *json, "JSON lines");
         return [json](const Global& g) { return cmd_nodes(g, *json); };
       }},
      {"sessions", "Sessions and their counters",
       [](CLI::App& sub) -> Run {
         auto json = std::make_shared<bool>(false);
         sub.add_flag("--json", *json, "JSON lines");
         return [json](const Global& g) { return cmd_sessions(g, *json); };
       }},
      {"close", "Seal a session (--purge: delete all its data)",
       [](CLI::App& sub) -> Run {
         struct A {
           std::string id;
           bool purge = false;
         };
         auto a = std::make_shared<A>();
         sub.add_option("session", a->id, "Session id (the full id)")->required();
         sub.add_flag("--purge", a->purge, "Delete every request and response of it");
         return [a](const Global& g) {
           return cmd_close(
               g, a->id,
               a->purge ? zgrid::proto::CloseMode::kPurge : zgrid::proto::CloseMode::kSeal);
         };
       }},
      {"cancel", "Stop a session: what has not run faults as cancelled",
       [](CLI::App& sub) -> Run {
         auto id = std::make_shared<std::string>();
         sub.add_option("session", *id, "Session id")->required();
         return
             [id](const Global& g) { return cmd_close(g, *id, zgrid::proto::CloseMode::kCancel); };
       }},
  };
  return table;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  Global g;
  if (const char* h = std::getenv("ZGRID_HEAD"); h && *h) g.head = h;
  if (const char* k = std::getenv("ZGRID_HEAD_KEY"); k && *k) g.head_key_file = k;
  if (const char* k = std::getenv("ZGRID_KEY"); k && *k) g.key_file = k;
  CLI::App app("zgrid: submit work to a zgrid grid and fetch the results", "zgrid");
  app.require_subcommand(1);
  app.fallthrough();
  std::vector<std::string> heads;  // --head a --head b, a list in the config file
  app.add_option("--head", heads,
                 "Head frontend endpoint, or several heads' separated by commas (failover: the "
                 "active one is used and followed; default $ZGRID_HEAD, then "
                 "tcp://127.0.0.1:5555)")
      ->allow_extra_args(false);
  zgrid::cli::add_duration(app, "--timeout", &g.timeout_ms, "How long the head may take to answer");
  app.add_option("--head-key", g.head_key_file,
                 "The head's public key file: talk CURVE (default $ZGRID_HEAD_KEY)");
  app.add_option("--key", g.key_file, "This user's secret key file (default $ZGRID_KEY)");
  app.set_config("--config", "", "Read these options from an INI/TOML file");

  std::vector<std::pair<CLI::App*, Run>> runs;
  for (const Command& c : commands()) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    runs.emplace_back(sub, c.declare(*sub));
  }

  if (int rc = zgrid::cli::parse(app, argc, argv, ""); rc >= 0) return rc;
  if (g.timeout_ms <= 0) return fail("--timeout must be positive");
  if (!heads.empty()) {
    g.head.clear();
    for (const auto& h : heads) g.head += (g.head.empty() ? "" : ",") + h;
  }
  if (zgrid::split_endpoints(g.head).empty()) return fail("--head names no endpoint");
  try {
    for (auto& [sub, run] : runs)
      if (*sub) return run(g);
  } catch (const std::exception& e) {
    return fail(std::string(e.what()));
  }
  return kExitError;
}
