#include "common/prometheus.hpp"

#include <charconv>
#include <cmath>

namespace zgrid::prom {

void Histogram::observe(double v) {
  std::size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  ++counts[i];
  sum += v;
  ++count;
}

void Histogram::merge(const Histogram& o) {
  if (counts.empty()) *this = Histogram(o.bounds);
  for (std::size_t i = 0; i < counts.size() && i < o.counts.size(); ++i) counts[i] += o.counts[i];
  sum += o.sum;
  count += o.count;
}

std::vector<double> latency_buckets() {
  return {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,    1,     2.5,    5,     10,   30,    60,   300};
}
std::vector<double> sync_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 10};
}

std::string Writer::escape_label(std::string_view v) {
  std::string r;
  r.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      r += "\\\\";
    else if (c == '"')
      r += "\\\"";
    else if (c == '\n')
      r += "\\n";
    else
      r += c;
  }
  return r;
}

std::string Writer::escape_help(std::string_view v) {
  std::string r;
  r.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      r += "\\\\";
    else if (c == '\n')
      r += "\\n";
    else
      r += c;
  }
  return r;
}

std::string Writer::format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

void Writer::family(std::string_view name, std::string_view type, std::string_view help) {
  name_ = name;
  out_.append("# HELP ").append(name).append(" ").append(escape_help(help)).append("\n");
  out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Writer::write_labels(const Labels& labels, std::string_view extra_name,
                          std::string_view extra_value) {
  if (labels.empty() && extra_name.empty()) return;
  out_ += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out_ += ',';
    first = false;
    out_.append(k).append("=\"").append(escape_label(v)).append("\"");
  }
  if (!extra_name.empty()) {
    if (!first) out_ += ',';
    out_.append(extra_name).append("=\"").append(extra_value).append("\"");
  }
  out_ += '}';
}

void Writer::sample(const Labels& labels, double value, std::string_view suffix) {
  out_.append(name_).append(suffix);
  write_labels(labels);
  out_.append(" ").append(format_value(value)).append("\n");
}

void Writer::histogram(const Labels& labels, const Histogram& h) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    std::string le = i < h.bounds.size() ? format_value(h.bounds[i]) : "+Inf";
    out_.append(name_).append("_bucket");
    write_labels(labels, "le", le);
    out_.append(" ").append(std::to_string(cumulative)).append("\n");
  }
  out_.append(name_).append("_sum");
  write_labels(labels);
  out_.append(" ").append(format_value(h.sum)).append("\n");
  out_.append(name_).append("_count");
  write_labels(labels);
  out_.append(" ").append(std::to_string(h.count)).append("\n");
}

}  // namespace zgrid::prom
