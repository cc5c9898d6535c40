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

namespace {
// The length of the well-formed UTF-8 sequence at the start of `v`
// (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view v) {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(v[i]); };
  unsigned char c = b(0);
  if (c < 0x80) return 1;
  std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (n == 0 || c > 0xF4 || v.size() < n) return 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c == 0xE0) lo = 0xA0;
  if (c == 0xED) hi = 0x9F;
  if (c == 0xF0) lo = 0x90;
  if (c == 0xF4) hi = 0x8F;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i)
    if (b(i) < 0x80 || b(i) > 0xBF) return 0;
  return n;
}

// Escapes \\, \n and (in label values) \"; each byte that is not part of
// well-formed UTF-8 becomes U+FFFD, so the exposition is always valid
// whatever bytes a client or node chose.
std::string escape(std::string_view v, bool quote) {
  std::string r;
  r.reserve(v.size());
  while (!v.empty()) {
    std::size_t n = utf8_sequence(v);
    char c = v[0];
    if (n == 0) {
      r += "\xEF\xBF\xBD";
      n = 1;
    } else if (c == '\\') {
      r += "\\\\";
    } else if (c == '"' && quote) {
      r += "\\\"";
    } else if (c == '\n') {
      r += "\\n";
    } else {
      r.append(v.substr(0, n));
    }
    v.remove_prefix(n);
  }
  return r;
}
}  // namespace

std::string Writer::escape_label(std::string_view v) {
  return escape(v, true);
}

std::string Writer::escape_help(std::string_view v) {
  return escape(v, false);
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
