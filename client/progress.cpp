#include "client/progress.hpp"

#include <unistd.h>

#include <algorithm>

#include "common/util.hpp"

namespace zgrid::cli {

std::string format_progress(const Progress& p, double rate) {
  std::uint64_t answered = p.answered();
  double frac =
      p.total ? std::min(1.0, static_cast<double>(answered) / static_cast<double>(p.total)) : 0;
  std::string eta = "-";
  if (rate > 0 && p.total > answered)
    eta = format_duration(  // whole seconds, rounded up
        (static_cast<Millis>(static_cast<double>(p.total - answered) / rate) + 1) * 1000);
  char bar[32];
  int filled = static_cast<int>(frac * 20);
  for (int i = 0; i < 20; ++i) bar[i] = i < filled ? '#' : '.';
  bar[20] = 0;
  char running[48] = "";
  if (p.running_known)
    std::snprintf(running, sizeof running, "  running %llu", (unsigned long long)p.running);
  char line[512];
  std::snprintf(line, sizeof line,
                "[%s] %5.1f%%  %llu/%llu  done %llu  faulted %llu  removed %llu%s  %.0f req/s  "
                "ETA %s",
                bar, 100 * frac, (unsigned long long)answered, (unsigned long long)p.total,
                (unsigned long long)p.done, (unsigned long long)p.faulted,
                (unsigned long long)p.removed, running, rate, eta.c_str());
  return line;
}

bool is_terminal(int fd) {
  return isatty(fd) != 0;
}

bool show_progress(bool quiet, bool prints_results) {
  return !quiet && is_terminal(STDERR_FILENO) && !(prints_results && is_terminal(STDOUT_FILENO));
}

namespace {
ProgressLine* g_live = nullptr;  // the line drawn now, if any (the CLI is single-threaded)
}  // namespace

void clear_progress_line() {
  if (g_live) g_live->finish();
}

ProgressLine::ProgressLine(std::FILE* out, bool enabled, const Clock& clock)
    : out_(out), enabled_(enabled), clock_(clock) {}

ProgressLine::~ProgressLine() {
  finish();
  if (g_live == this) g_live = nullptr;
}

void ProgressLine::sample(std::uint64_t answered) {
  Millis now = clock_.now_ms();
  if (sampled_ && now > last_sample_t_) {
    if (now - last_sample_t_ < 200) return;  // too short to say anything
    double r = 1000.0 * static_cast<double>(answered - std::min(answered, last_answered_)) /
               static_cast<double>(now - last_sample_t_);
    rate_ = rate_ == 0 ? r : 0.5 * rate_ + 0.5 * r;  // smoothed
  }
  sampled_ = true;
  last_sample_t_ = now;
  last_answered_ = answered;
}

void ProgressLine::update(const Progress& p, bool force) {
  if (!enabled_) return;
  Millis now = clock_.now_ms();
  if (!force && now - last_draw_ < 250) return;
  sample(p.answered());
  text(format_progress(p, rate_), true);
}

void ProgressLine::text(const std::string& line, bool force) {
  if (!enabled_) return;
  Millis now = clock_.now_ms();
  if (!force && now - last_draw_ < 250) return;
  last_draw_ = now;
  std::fprintf(out_, "\r%s\033[K", line.c_str());  // redraw in place
  std::fflush(out_);
  drawn_ = true;
  g_live = this;
}

void ProgressLine::keep(const Progress& p) {
  if (!enabled_) return;
  update(p, true);
  std::fprintf(out_, "\n");
  std::fflush(out_);
  drawn_ = false;
  if (g_live == this) g_live = nullptr;
}

void ProgressLine::finish() {
  if (!drawn_) return;
  std::fprintf(out_, "\r\033[K");
  std::fflush(out_);
  drawn_ = false;
  if (g_live == this) g_live = nullptr;
}

}  // namespace zgrid::cli
