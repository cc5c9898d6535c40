// What the zgrid CLI's commands share (client/cli_app.hpp): error lines and
// exit statuses, the connection the global flags describe, the notes on
// stderr about a session that waits (paused, uncommitted, removals), and
// the text tables. Single-threaded, like the CLI.
#include "client/cli_app.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "client/progress.hpp"
#include "common/curve.hpp"
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

void print_fields(const Fields& f) {
  for (const auto& [k, v] : f.items) std::printf("%-22s %s\n", (k + ":").c_str(), f.str(k).c_str());
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

}  // namespace zgrid::cli_app
