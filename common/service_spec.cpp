#include "common/service_spec.hpp"

#include <cctype>

namespace zgrid::spec {

bool valid_part(std::string_view part) {
  if (part.empty() || part.size() > 64) return false;
  for (char c : part) {
    bool ok =
        std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '+' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {
constexpr const char* kExpected = "' (expected name[@version][/operation])";

// Moves what follows the first `sep` of *rest into *part (if there is one);
// false when that part is not valid.
bool split_off(std::string_view* rest, char sep, std::string_view* part) {
  auto at = rest->find(sep);
  if (at == std::string_view::npos) return true;
  *part = rest->substr(at + 1);
  *rest = rest->substr(0, at);
  return valid_part(*part);
}
}  // namespace

Result<ServiceSpec> parse(std::string_view text) {
  ServiceSpec s;
  std::string_view rest = text;
  if (!split_off(&rest, '/', &s.operation))
    return Status::InvalidArgument("bad operation in service '" + std::string(text) + kExpected);
  if (!split_off(&rest, '@', &s.version))
    return Status::InvalidArgument("bad version in service '" + std::string(text) + kExpected);
  s.name = rest;
  if (!valid_part(s.name))
    return Status::InvalidArgument("bad service name '" + std::string(text) + kExpected);
  return s;
}

ServiceSpec parse_advertised(std::string_view adv) {
  ServiceSpec s;
  auto at = adv.find('@');
  s.name = adv.substr(0, at);
  if (at != std::string_view::npos) s.version = adv.substr(at + 1);
  return s;
}

std::string advertised(std::string_view name, std::string_view version) {
  std::string out(name);
  out += '@';
  out += version;
  return out;
}

bool matches(const ServiceSpec& wanted, std::string_view adv) {
  ServiceSpec a = parse_advertised(adv);
  if (a.name != wanted.name) return false;
  return wanted.version.empty() || a.version == wanted.version;
}

namespace {
bool all_dotted_digits(std::string_view v) {
  if (v.empty()) return false;
  for (char c : v)
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.') return false;
  return true;
}
}  // namespace

int compare_versions(std::string_view a, std::string_view b) {
  if (!all_dotted_digits(a) || !all_dotted_digits(b)) return a.compare(b);
  while (!a.empty() || !b.empty()) {
    auto take = [](std::string_view& v) {
      auto dot = v.find('.');
      std::string_view part = v.substr(0, dot);
      v = dot == std::string_view::npos ? std::string_view() : v.substr(dot + 1);
      while (part.size() > 1 && part.front() == '0') part.remove_prefix(1);
      return part;
    };
    std::string_view pa = take(a), pb = take(b);
    if (pa.size() != pb.size()) return pa.size() < pb.size() ? -1 : 1;
    if (int c = pa.compare(pb); c != 0) return c;
  }
  return 0;
}

}  // namespace zgrid::spec
