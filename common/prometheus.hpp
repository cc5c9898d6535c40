// The Prometheus text exposition format (version 0.0.4): a writer that
// escapes label values and help text (always valid UTF-8 out), writes each family's HELP and TYPE
// once, and histograms as cumulative `_bucket{le=…}`, `_sum` and `_count`.
//
// Not thread-safe: one writer per rendering. Histogram is a plain value the
// owner updates on its own thread and copies to share.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zgrid::prom {

// Counts of observations per bucket (not cumulative; the last bucket is +Inf).
struct Histogram {
  Histogram() = default;
  explicit Histogram(std::vector<double> upper_bounds)
      : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}
  void observe(double v);
  void merge(const Histogram& other);  // same bounds; used to sum per-port or per-service
  std::vector<double> bounds;          // ascending upper bounds, +Inf implied
  std::vector<std::uint64_t> counts;
  double sum = 0;
  std::uint64_t count = 0;
};

// Bucket bounds in seconds, from 100 µs to 5 minutes: task latencies range
// from microsecond kernels to long simulations.
std::vector<double> latency_buckets();
// From 100 µs to 10 s: journal syncs.
std::vector<double> sync_buckets();

using Labels = std::vector<std::pair<std::string_view, std::string>>;

class Writer {
 public:
  // Starts a family; its samples must follow before the next family.
  // `type` is counter, gauge, histogram or untyped.
  void family(std::string_view name, std::string_view type, std::string_view help);
  // One sample of the current family; `suffix` is appended to its name
  // (e.g. "_total" is part of the name for counters, so usually empty).
  void sample(const Labels& labels, double value, std::string_view suffix = {});
  void histogram(const Labels& labels, const Histogram& h);
  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

  // \\, \" and \n; a byte that is not well-formed UTF-8 becomes U+FFFD.
  static std::string escape_label(std::string_view v);
  static std::string escape_help(std::string_view v);  // \\ and \n; UTF-8 as labels
  static std::string format_value(double v);           // +Inf, -Inf, NaN, shortest exact

 private:
  void write_labels(const Labels& labels, std::string_view extra_name = {},
                    std::string_view extra_value = {});
  std::string out_;
  std::string name_;
};

}  // namespace zgrid::prom
