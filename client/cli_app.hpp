// The zgrid CLI's shared parts and its commands. client/zgrid.cpp is main
// and the command table (each command's flags); each command is a cmd_
// function declared here: client/cli_submit.cpp (submit, resubmit),
// client/cli_session.cpp (fetch, wait, close, cancel), client/cli_grid.cpp
// (status, nodes, sessions, drain, keygen). Shared (client/cli_app.cpp): the
// exit statuses, global flags, error lines, the connection, the notes about
// a waiting session, the tables and the response printer.
// Single-threaded, like the CLI: each command owns its Connection, and
// everything made from it, on main's thread.
#pragma once

#include <zgrid/client.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "client/progress.hpp"
#include "common/service_spec.hpp"

namespace zgrid::cli_app {

using zgrid::Millis;
using zgrid::Status;
using zgrid::client::BrokerClient;
using zgrid::client::Connection;
using zgrid::client::Fields;

// Exit status, the same for every command (README.md).
constexpr int kExitOk = 0, kExitFaulted = 1, kExitError = 2, kExitIncomplete = 3;

struct Global {
  std::string head = "tcp://127.0.0.1:5555";
  Millis timeout_ms = 10'000;
  std::string head_key_file, key_file;  // CURVE (docs/security.md)
};

// One line on stderr; the exit status for it.
int fail(const Status& st);
int fail(const std::string& msg);
zgrid::Result<std::unique_ptr<Connection>> connect(const Global& g);
// The connection options the global flags say (CURVE keys read).
zgrid::Result<zgrid::client::ClientOptions> client_options(const Global& g);

// Says on stderr, in one line, why a session's work cannot run (its status
// field `paused`: no node offers its service, or the head's journal disk is
// full), each time the reason changes; nothing while it can run.
void note_paused(const std::string& sid, const Fields& st, std::string* said);

// A session's status as the progress line draws it.
zgrid::cli::Progress session_progress(const Fields& st);
// Why a session lost requests, in one line on stderr: which clients were
// removed, when, after what idle time, with how many requests, and how to
// avoid it. Nothing when none was removed.
void explain_removals(const std::string& sid, const Fields& st);
// On a terminal, while a fetch or wait waits on a client that has not
// committed: say who, and when it would be removed (once per client).
void note_uncommitted(const Fields& st, zgrid::cli::ProgressLine& progress, std::string* said);
// A status as "key: value" lines; rows as a table of the columns `cols`.
void print_fields(const Fields& f);
void print_table(const std::vector<Fields>& rows, const std::vector<std::string>& cols);

// How long after creating an interactive session submit lets nodes starting
// with it register before it gives up on a service the head says no node
// offers (status field `unoffered`; docs/operations.md).
constexpr Millis kNodesGraceMs = 3'000;

inline bool is_factorize(const std::string& service) {
  auto sp = zgrid::spec::parse(service);
  return sp.ok() && sp->name == "factorize";
}

// Output of one response, the same for submit (interactive) and fetch.
class Printer {
 public:
  Printer(bool json, bool factorize) : json_(json), factorize_(factorize) {
    std::setvbuf(stdout, nullptr, _IOFBF, 1 << 16);
  }
  ~Printer() { std::fflush(stdout); }

  void print(const zgrid::proto::Response& r) {
    print(zgrid::proto::ResponseView{r.request_id, r.user_data, r.fault_code, r.data});
  }
  // One thread prints (stdout's lock is not taken per piece).
  void print(const zgrid::proto::ResponseView& r) {
    if (!r.ok()) ++faulted_;
    ++count_;
    if (json_) {
      std::string line = "{\"request_id\": " + std::to_string(r.request_id) + ", \"input\": ";
      escape(line, r.user_data);
      if (r.ok()) {
        line += ", \"result\": ";
        if (factorize_) {
          line += "[";
          std::string_view d = r.data;
          bool first = true;
          while (!d.empty()) {
            auto pos = d.find(" * ");
            std::string_view f = d.substr(0, pos);
            if (!first) line += ", ";
            first = false;
            line += f;
            if (pos == std::string_view::npos) break;
            d.remove_prefix(pos + 3);
          }
          line += "]";
        } else {
          line += zgrid::client::result_to_json(r.data);
        }
      } else {
        line += ", \"error\": {\"code\": ";
        escape(line, r.fault_code);
        line += ", \"message\": ";
        escape(line, r.data);
        line += "}";
      }
      line += "}\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
      return;
    }
    if (r.ok()) {
      fwrite_unlocked(r.user_data.data(), 1, r.user_data.size(), stdout);
      fwrite_unlocked(" = ", 1, 3, stdout);
      // Text as it is (factorize, echo); anything else as JSON (docs/services.md).
      if (factorize_ || zgrid::client::is_text(r.data)) {
        fwrite_unlocked(r.data.data(), 1, r.data.size(), stdout);
      } else {
        std::string j = zgrid::client::result_to_json(r.data);
        fwrite_unlocked(j.data(), 1, j.size(), stdout);
      }
      fputc_unlocked('\n', stdout);
    } else {
      std::string input = shown_input(r.user_data);
      std::fprintf(stdout, "%s: error: %.*s: %.*s\n", input.c_str(),
                   static_cast<int>(r.fault_code.size()), r.fault_code.data(),
                   static_cast<int>(r.data.size()), r.data.data());
    }
  }
  std::uint64_t count() const { return count_; }
  std::uint64_t faulted() const { return faulted_; }

  // An offending input as an error line shows it: at most 64 characters
  // (never cutting a UTF-8 sequence), then how long it was.
  static std::string shown_input(std::string_view s) {
    constexpr std::size_t kMax = 64;
    if (s.size() <= kMax) return std::string(s);
    std::size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    return std::string(s.substr(0, cut)) + "\u2026(" + std::to_string(s.size()) + " chars)";
  }

 private:
  static void escape(std::string& out, std::string_view s) { zgrid::client::json_escape(out, s); }

  bool json_, factorize_;
  std::uint64_t count_ = 0, faulted_ = 0;
};

// ---- submit and resubmit (client/cli_submit.cpp) ----

struct SubmitArgs {
  std::string service;
  std::string operation;
  std::string input_format = "lines";
  bool durable = false, interactive = false;
  bool stateful = false;  // one at a time, in order, on one instance kept for the session
  std::string file;
  std::uint64_t random = 0;
  std::uint64_t seed = 0;
  bool seed_given = false;
  int bits = 31;
  std::string client_id;
  bool no_end = false;
  bool json = false;
  bool quiet = false;  // no progress line on the terminal
  Millis client_idle_timeout_ms = 0;
  Millis task_timeout_ms = 0;
  Millis deadline_ms = 0;
  std::size_t batch = 1024;
  bool wait_for_nodes = false;  // keep waiting while no node offers the service
  // resubmit: the requests to send instead of an input (user data: their
  // ids in the original session).
  const std::vector<zgrid::client::Connection::StoredRequest>* requests = nullptr;
};

struct ResubmitArgs {
  std::string session_id;
  bool faulted = false;  // the default: every faulted request
  std::string codes;     // comma-separated fault codes: only those
  std::string service;   // name[@version]: another service (default: the original's)
  bool durable = false, json = false, quiet = false;
  bool wait_for_nodes = false;
};

int cmd_submit(const Global& g, SubmitArgs a);
int cmd_resubmit(const Global& g, const ResubmitArgs& a);

// ---- one session by its id (client/cli_session.cpp) ----

struct FetchArgs {
  std::string session_id;
  bool no_wait = false, json = false, quiet = false;
  std::uint64_t from = 0;
  Millis wait_timeout_ms = 0;  // 0: wait as long as the session makes progress
};

int cmd_fetch(const Global& g, const FetchArgs& a);
// zgrid wait ID: until the session is complete; exit 0 all done, 1 some
// faulted or removed, 3 not complete within --timeout. --on-complete runs a
// command (sh -c) once, with the session's id and counts in its environment.
int cmd_wait(const Global& g, const std::string& sid, Millis timeout_ms,
             const std::string& on_complete, bool quiet);
int cmd_close(const Global& g, const std::string& sid, zgrid::proto::CloseMode mode);

// ---- the grid (client/cli_grid.cpp) ----

// zgrid keygen: a CURVE key pair for a client, a node or a head.
int cmd_keygen(const std::string& dir, const std::string& name, bool force);
int cmd_status(const Global& g, const std::string& sid, bool json);
// zgrid status [ID] --watch: a live progress bar on a terminal, plain
// periodic lines otherwise; for a session, it ends when the session is complete.
int cmd_watch(const Global& g, const std::string& sid, Millis interval_ms);
int cmd_nodes(const Global& g, bool json);
int cmd_sessions(const Global& g, bool json);
int cmd_drain(const Global& g, const std::string& node, bool undo, bool no_wait,
              Millis wait_timeout_ms);

}  // namespace zgrid::cli_app
