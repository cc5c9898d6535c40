// Fields and describe() (<zgrid/client.hpp>): the ordered named values the
// status, node and session tables come back as, printed as text or JSON.
// Plain values: no state, no socket, any thread.
#include <zgrid/client.hpp>

#include <cstdio>

#include "common/util.hpp"

namespace zgrid::client {

const Value* Fields::find(std::string_view key) const {
  for (const auto& kv : items)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

std::uint64_t Fields::u64(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return 0;
  if (auto p = std::get_if<std::uint64_t>(v)) return *p;
  if (auto p = std::get_if<std::int64_t>(v)) return *p < 0 ? 0 : static_cast<std::uint64_t>(*p);
  if (auto p = std::get_if<double>(v)) return static_cast<std::uint64_t>(*p);
  return 0;
}

std::string Fields::str(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return {};
  if (auto p = std::get_if<std::string>(v)) return *p;
  if (auto p = std::get_if<std::uint64_t>(v)) return std::to_string(*p);
  if (auto p = std::get_if<std::int64_t>(v)) return std::to_string(*p);
  if (auto p = std::get_if<bool>(v)) return *p ? "true" : "false";
  if (auto p = std::get_if<double>(v)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", *p);
    return buf;
  }
  return {};
}

bool Fields::boolean(std::string_view key) const {
  const Value* v = find(key);
  auto p = v ? std::get_if<bool>(v) : nullptr;
  return p && *p;
}

std::string Fields::to_json() const {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : items) {
    if (!first) out += ", ";
    first = false;
    json_escape(out, k);
    out += ": ";
    if (auto p = std::get_if<std::string>(&v))
      json_escape(out, *p);
    else if (auto p = std::get_if<bool>(&v))
      out += *p ? "true" : "false";
    else if (auto p = std::get_if<double>(&v)) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3f", *p);
      out += buf;
    } else
      out += str(k);
  }
  return out + "}";
}

std::string describe(const Status& st) {
  return st.message();
}

}  // namespace zgrid::client
