#include "common/util.hpp"

#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

namespace zgrid {

namespace {
void fill_random(void* buf, std::size_t len) {
  auto* p = static_cast<unsigned char*>(buf);
  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // No getrandom: fall back to random_device, which reads /dev/urandom.
      std::random_device rd;
      for (std::size_t i = 0; i < len; ++i) p[i] = static_cast<unsigned char>(rd());
      return;
    }
    p += n;
    len -= static_cast<std::size_t>(n);
  }
}

std::string to_hex(const unsigned char* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    s[2 * i] = kHex[p[i] >> 4];
    s[2 * i + 1] = kHex[p[i] & 15];
  }
  return s;
}
}  // namespace

std::string random_id128() {
  unsigned char b[16];
  fill_random(b, sizeof b);
  return to_hex(b, sizeof b);
}

std::string random_id64() {
  unsigned char b[8];
  fill_random(b, sizeof b);
  return to_hex(b, sizeof b);
}

std::uint64_t random_u64() {
  std::uint64_t v;
  fill_random(&v, sizeof v);
  return v;
}

std::vector<std::string> split_endpoints(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

bool valid_name(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (c <= ' ' || c > '~') return false;
  return true;
}

Result<Millis> parse_duration(std::string_view text) {
  std::string s(text);
  if (s.empty()) return Status::InvalidArgument("empty duration");
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || errno != 0 || !std::isfinite(v) || v < 0)
    return Status::InvalidArgument("bad duration '" + s + "' (use e.g. 300s, 5m, 1500ms)");
  std::string_view unit(end);
  double scale;
  if (unit.empty() || unit == "s")
    scale = 1000;
  else if (unit == "ms")
    scale = 1;
  else if (unit == "m" || unit == "min")
    scale = 60'000;
  else if (unit == "h")
    scale = 3'600'000;
  else if (unit == "d")
    scale = 86'400'000;
  else
    return Status::InvalidArgument("bad duration unit in '" + s + "' (ms, s, m, h, d)");
  double ms = v * scale;
  if (ms > 1e15) return Status::InvalidArgument("duration '" + s + "' too large");
  return static_cast<Millis>(std::llround(ms));
}

std::string format_duration(Millis ms) {
  char buf[64];
  if (ms < 1000 || ms % 1000 != 0) {
    std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  } else if (ms < 60'000 || ms % 60'000 != 0) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(ms / 1000));
  } else {
    std::snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(ms / 60'000));
  }
  return buf;
}

Result<std::uint64_t> parse_size(std::string_view text) {
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  std::string unit = end ? end : "";
  double scale = unit.empty() || unit == "B" ? 1
                 : unit == "K"               ? 1024.0
                 : unit == "M"               ? 1048576.0
                 : unit == "G"               ? 1073741824.0
                                             : -1;
  if (s.empty() || end == s.c_str() || errno != 0 || !(v >= 0) || scale < 0 || v * scale > 1e19)
    return Status::InvalidArgument("expected a size like 64M (B, K, M, G), got '" + s + "'");
  return static_cast<std::uint64_t>(v * scale);
}

std::string hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

namespace {
// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629), or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  std::size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if (c == 0xE0 && b(i + 1) < 0xA0) return 0;  // overlong
  if (c == 0xED && b(i + 1) > 0x9F) return 0;  // surrogates
  if (c == 0xF0 && b(i + 1) < 0x90) return 0;  // overlong
  if (c == 0xF4 && b(i + 1) > 0x8F) return 0;  // past U+10FFFF
  return n;
}
}  // namespace

void append_json_string(std::string& out, std::string_view s, bool valid_utf8) {
  out += '"';
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (valid_utf8 && c >= 0x80) {
      std::size_t n = utf8_length(s, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD
      } else {
        out.append(s.substr(i, n));
        i += n - 1;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace zgrid
