#include "common/status.hpp"

namespace zgrid {

namespace {
constexpr std::string_view kNames[] = {
    "ok",
    "invalid_argument",
    "not_found",
    "already_exists",
    "unavailable",
    "timeout",
    "permission_denied",
    "unauthenticated",
    "resource_exhausted",
    "failed_precondition",
    "protocol_error",
    "version_mismatch",
    "internal",
    "cancelled",
    "out_of_sequence",
    "data_loss",
    "not_active",
};
}  // namespace

std::string_view code_name(Code code) {
  auto i = static_cast<std::size_t>(code);
  return i < std::size(kNames) ? kNames[i] : "internal";
}

Code code_from_int(std::uint64_t v) {
  return v < std::size(kNames) ? static_cast<Code>(v) : Code::kInternal;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string s(code_name(code_));
  s += ": ";
  s += message_;
  return s;
}

}  // namespace zgrid
