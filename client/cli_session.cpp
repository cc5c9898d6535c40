// zgrid fetch, zgrid wait, zgrid close and cancel: the commands that follow
// or end one session by its id. Each a cmd_ function (client/cli_app.hpp);
// their flags are in the command table (client/zgrid.cpp).
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "client/cli_app.hpp"
#include "client/progress.hpp"
#include "common/clock.hpp"
#include "common/util.hpp"

namespace zgrid::cli_app {

namespace {

// What a fetch says while it waits: the session's progress on a terminal
// (as status --watch draws it) and, always, why its work cannot run if it
// cannot; the status is read at most every 250 ms on a terminal, else 1 s.
class FetchNotes {
 public:
  explicit FetchNotes(const FetchArgs& a)
      : progress_(stderr, !a.no_wait && zgrid::cli::show_progress(a.quiet, true)) {}

  zgrid::cli::ProgressLine& progress() { return progress_; }
  // How long one fetch call may wait for new responses.
  Millis page_wait_ms(bool no_wait) const { return no_wait ? 0 : progress_.enabled() ? 250 : 1000; }
  void note(Connection& conn, const std::string& sid) {
    const zgrid::Clock& clock = zgrid::SteadyClock::instance();
    if (clock.now_ms() - last_status_ < (progress_.enabled() ? 250 : 1000)) return;
    last_status_ = clock.now_ms();
    if (auto st = conn.session_status(sid); st.ok()) {
      note_uncommitted(*st, progress_, &said_waiting_);
      note_paused(sid, *st, &said_paused_);
      progress_.update(session_progress(*st));
    }
  }
  // Complete: the final counts, where a progress line was drawn.
  void finish(const zgrid::Result<Fields>& st) {
    if (st.ok() && last_status_ >= 0) progress_.keep(session_progress(*st));
    progress_.finish();
  }

 private:
  zgrid::cli::ProgressLine progress_;
  Millis last_status_ = -1'000'000;
  std::string said_waiting_, said_paused_;
};

}  // namespace

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
  std::uint64_t cursor = a.from;
  const zgrid::Clock& clock = zgrid::SteadyClock::instance();
  Millis start = clock.now_ms();
  FetchNotes notes(a);
  while (true) {
    auto page = (*conn)->fetch_each(a.session_id, cursor, 16384, notes.page_wait_ms(a.no_wait),
                                    [&](const zgrid::proto::ResponseView& r) { printer.print(r); });
    if (!page.ok()) return fail(page.status());
    cursor = page->next_cursor;
    if (!page->complete && !a.no_wait) notes.note(**conn, a.session_id);
    if (page->complete && page->count == 0) break;
    if (page->count == 0 && a.no_wait) {
      std::fflush(stdout);
      std::fprintf(stderr, "zgrid: session %s is not complete yet; resume with --from %llu\n",
                   a.session_id.c_str(), static_cast<unsigned long long>(cursor));
      return kExitIncomplete;
    }
    if (a.wait_timeout_ms > 0 && clock.now_ms() - start > a.wait_timeout_ms) {
      notes.progress().finish();
      std::fflush(stdout);
      std::fprintf(stderr, "zgrid: session %s not complete after %s\n", a.session_id.c_str(),
                   zgrid::format_duration(a.wait_timeout_ms).c_str());
      return kExitIncomplete;
    }
  }
  auto st = (*conn)->session_status(a.session_id);
  notes.finish(st);
  bool removed = st.ok() && st->u64("removed") > 0;
  if (removed) explain_removals(a.session_id, *st);
  return printer.faulted() > 0 || removed ? kExitFaulted : kExitOk;
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

int cmd_close(const Global& g, const std::string& sid, zgrid::proto::CloseMode mode) {
  auto conn = connect(g);
  if (!conn.ok()) return fail(conn.status());
  Status st = (*conn)->close_session(sid, mode);
  if (!st.ok()) return fail(st);
  return kExitOk;
}

}  // namespace zgrid::cli_app
