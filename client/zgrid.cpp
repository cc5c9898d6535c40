// zgrid: the command-line client (README.md: commands and their exit status).
// This file is main (the global flags) and the command table: each
// command's flags, declared on its CLI11 subcommand by a declare_ function.
// What a command does is its cmd_ function (declared in client/cli_app.hpp):
// client/cli_submit.cpp (submit, resubmit), client/cli_session.cpp (fetch,
// wait, close, cancel), client/cli_grid.cpp (status, nodes, sessions, drain,
// keygen); what they share is client/cli_app.{hpp,cpp}.
//
// Exit status, the same for every command:
//   0 all succeeded; 1 some request faulted or was removed;
//   2 usage, connection, unknown session or permission error;
//   3 incomplete (--no-wait, or a timeout).
#include <malloc.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/cli_app.hpp"
#include "common/cli.hpp"
#include "common/util.hpp"

namespace {

using namespace zgrid::cli_app;  // NOLINT: the CLI's shared parts and its commands

// One subcommand: its name and help, and how it declares its flags on its
// CLI11 subcommand, returning what runs it once the command line is parsed.
// A new command is one entry here, its declare_ function and its cmd_
// function.
using Run = std::function<int(const Global&)>;
struct Command {
  const char* name;
  const char* help;
  std::function<Run(CLI::App& sub)> declare;
};

Run declare_keygen(CLI::App& sub) {
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
}

Run declare_submit(CLI::App& sub) {
  auto sa = std::make_shared<SubmitArgs>();
  sub.add_option("--service", sa->service,
                 "Service to run: name[@version][/operation] (e.g. factorize, "
                 "montecarlo@1/pi)")
      ->required();
  sub.add_option("--operation", sa->operation, "Operation of the service (default: its first)");
  sub.add_option("--input-format", sa->input_format,
                 "lines: each line is a request; json: each line is a JSON document, sent "
                 "as msgpack; msgpack: a stream of msgpack values")
      ->capture_default_str();
  sub.add_flag("--durable", sa->durable, "Journal requests and results (fetch them later by id)");
  sub.add_flag("--interactive", sa->interactive, "Stream results back now (the default)");
  sub.add_flag("--stateful", sa->stateful,
               "Run the requests one at a time, in order, on one service instance kept "
               "for this session (the service must support sessions)");
  sub.add_option("--file", sa->file, "One request per line; - for standard input");
  sub.add_option("--random", sa->random, "Send N random numbers instead of a file");
  sub.add_option("--seed", sa->seed, "Seed for --random")->each([sa](const std::string&) {
    sa->seed_given = true;
  });
  sub.add_option("--bits", sa->bits, "Random numbers are below 2^BITS")->capture_default_str();
  sub.add_option("--client-id", sa->client_id, "Name of this sender (default: random)");
  sub.add_flag("--no-end", sa->no_end, "Send and get acknowledgements, but neither flush nor end");
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
}

Run declare_fetch(CLI::App& sub) {
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
}

Run declare_status(CLI::App& sub) {
  struct A {
    std::string id;
    bool json = false, watch = false;
    Millis interval_ms = 1000;
  };
  auto a = std::make_shared<A>();
  sub.add_option("session", a->id, "Session id (omit for the grid)");
  sub.add_flag("--json", a->json, "One JSON object");
  sub.add_flag("--watch", a->watch, "Keep watching: a progress bar on a terminal, lines otherwise");
  zgrid::cli::add_duration(sub, "--interval", &a->interval_ms, "How often --watch looks");
  return [a](const Global& g) {
    if (a->watch) return cmd_watch(g, a->id, std::max<Millis>(50, a->interval_ms));
    return cmd_status(g, a->id, a->json);
  };
}

Run declare_resubmit(CLI::App& sub) {
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
}

Run declare_wait(CLI::App& sub) {
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
  return
      [a](const Global& g) { return cmd_wait(g, a->id, a->timeout_ms, a->on_complete, a->quiet); };
}

Run declare_drain(CLI::App& sub) {
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
  return [a](const Global& g) { return cmd_drain(g, a->node, a->undo, a->no_wait, a->timeout_ms); };
}

Run declare_nodes(CLI::App& sub) {
  auto json = std::make_shared<bool>(false);
  sub.add_flag("--json", *json, "JSON lines");
  return [json](const Global& g) { return cmd_nodes(g, *json); };
}

Run declare_sessions(CLI::App& sub) {
  auto json = std::make_shared<bool>(false);
  sub.add_flag("--json", *json, "JSON lines");
  return [json](const Global& g) { return cmd_sessions(g, *json); };
}

Run declare_close(CLI::App& sub) {
  struct A {
    std::string id;
    bool purge = false;
  };
  auto a = std::make_shared<A>();
  sub.add_option("session", a->id, "Session id (the full id)")->required();
  sub.add_flag("--purge", a->purge, "Delete every request and response of it");
  return [a](const Global& g) {
    return cmd_close(g, a->id,
                     a->purge ? zgrid::proto::CloseMode::kPurge : zgrid::proto::CloseMode::kSeal);
  };
}

Run declare_cancel(CLI::App& sub) {
  auto id = std::make_shared<std::string>();
  sub.add_option("session", *id, "Session id")->required();
  return [id](const Global& g) { return cmd_close(g, *id, zgrid::proto::CloseMode::kCancel); };
}

const std::vector<Command>& commands() {
  static const std::vector<Command> table{
      {"keygen", "Write a CURVE key pair: NAME.pub (share it) and NAME.key (mode 0600)",
       declare_keygen},
      {"submit", "Send a batch of requests to a new session", declare_submit},
      {"fetch", "Print the responses of a durable session", declare_fetch},
      {"status",
       "Counters of a session, or of the grid (with several heads: first each head's role, "
       "epoch and instance)",
       declare_status},
      {"resubmit", "Run the faulted requests of a complete durable session again, in a new session",
       declare_resubmit},
      {"wait", "Wait until a session is complete (exit 0 all done, 1 some faulted, 3 timeout)",
       declare_wait},
      {"drain", "Stop new work to a node and wait until it is empty", declare_drain},
      {"nodes", "Compute nodes and their load", declare_nodes},
      {"sessions", "Sessions and their counters", declare_sessions},
      {"close", "Seal a session (--purge: delete all its data)", declare_close},
      {"cancel", "Stop a session: what has not run faults as cancelled", declare_cancel},
  };
  return table;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  // Messages of thousands of requests come and go, each decoded into blocks
  // of tens of KiB: keep freed memory in the process rather than hand it back
  // and fault it in again for the next message (glibc's defaults trim above
  // 128 KiB; page faults were a third of a streaming submit's CPU).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
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
