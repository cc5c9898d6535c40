// The progress line of the CLI's long commands: `status --watch`, `submit`
// and `fetch` draw the same bar, rate and ETA. On a terminal it is redrawn in
// place (at most four times a second); `submit` and `fetch` draw nothing
// when stderr is not a terminal or with --quiet. Not thread-safe: one per
// command.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "common/clock.hpp"

namespace zgrid::cli {

struct Progress {
  std::uint64_t total = 0;  // requests of the session (sent so far while sending)
  std::uint64_t done = 0, faulted = 0, removed = 0;
  std::uint64_t running = 0;
  bool running_known = true;
  std::uint64_t answered() const { return done + faulted + removed; }
};

// The bar line, e.g. "[########............]  40.0%  400/1000  done 390
// faulted 10  removed 0  running 8  1234 req/s  ETA 0s".
std::string format_progress(const Progress& p, double rate);

class ProgressLine {
 public:
  // `enabled`: draw at all (a terminal, and not --quiet).
  ProgressLine(std::FILE* out, bool enabled, const Clock& clock = SteadyClock::instance());
  ~ProgressLine();
  bool enabled() const { return enabled_; }
  // Redraws when a quarter second has passed since the last draw (or `force`).
  void update(const Progress& p, bool force = false);
  // A free-form line in the same place (e.g. while sending).
  void text(const std::string& line, bool force = false);
  // Clears the line so that what follows starts clean.
  void finish();
  // Draws `p` one last time and keeps it (ends the line).
  void keep(const Progress& p);
  // The answers-per-second rate smoothed over the updates so far.
  double rate() const { return rate_; }
  // Feeds a sample to the rate without drawing (status --watch draws itself).
  void sample(std::uint64_t answered);

 private:
  std::FILE* out_;
  bool enabled_;
  const Clock& clock_;
  Millis last_draw_ = -1'000'000, last_sample_t_ = 0;
  std::uint64_t last_answered_ = 0;
  bool sampled_ = false, drawn_ = false;
  double rate_ = 0;
};

// Whether the file descriptor is a terminal.
bool is_terminal(int fd);
// Whether a command draws its progress line: stderr is a terminal, not
// --quiet, and — for commands that print results on stdout — stdout is not
// that terminal too (the results themselves then show the progress).
bool show_progress(bool quiet, bool prints_results);
// Clears the line a live ProgressLine drew, before an error line.
void clear_progress_line();

}  // namespace zgrid::cli
