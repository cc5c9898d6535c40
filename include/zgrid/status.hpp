// Status and Result<T>: errors as values, in zgrid and in its client API.
//
// A Status is a code plus a one-line message meant for a person. Success is
// cheap (no allocation). Result<T> holds either a T or a non-OK Status. Both are
// [[nodiscard]]: an ignored error is a bug. Inside zgrid, exceptions are used
// only at the edges (ZeroMQ adapter, service host, main) and converted to
// Status there; no call of the client API throws one at its caller.
//
// Public and installed (<zgrid/status.hpp>); needs nothing but the standard
// library. code_name() and Status::ToString() are defined in the zgrid
// library (zgrid::client links it).
//
// Thread safety: plain values; safe to copy and move between threads.
#ifndef ZGRID_STATUS_HPP_
#define ZGRID_STATUS_HPP_

#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace zgrid {

// Error codes shared by the code and the wire protocol (docs/protocol.md).
// The numeric values are part of protocol v1: append, never renumber.
enum class Code : std::uint8_t {
  kOk = 0,
  kInvalidArgument = 1,     // the caller sent something malformed
  kNotFound = 2,            // unknown session, client or node
  kAlreadyExists = 3,       // e.g. a second live client with the same id
  kUnavailable = 4,         // head unreachable, journal refusing writes
  kTimedOut = 5,            // a bounded wait ran out
  kPermissionDenied = 6,    // not the owner of the session
  kUnauthenticated = 7,     // bad or unknown key
  kResourceExhausted = 8,   // a limit or quota was hit
  kFailedPrecondition = 9,  // wrong state (sealed session, ...)
  kProtocol = 10,           // malformed or unknown message
  kVersion = 11,            // peer speaks a newer protocol / journal version
  kInternal = 12,           // a bug or an unexpected system error
  kCancelled = 13,
  kOutOfSequence = 14,  // a request batch skipped sequence numbers: resend from the ack
  kDataLoss = 15,       // a journal record is corrupt (checksum mismatch, missing data)
  kNotActive = 16,      // a standby head: the active one is named in the error (failover)
};

// Stable lower-case name used on the wire and in one-line error messages.
std::string_view code_name(Code code);
// Reverse of code_name for codes received from peers; unknown names map to kInternal.
Code code_from_int(std::uint64_t v);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status TimedOut(std::string m) { return {Code::kTimedOut, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
  static Status ResourceExhausted(std::string m) {
    return {Code::kResourceExhausted, std::move(m)};
  }
  static Status FailedPrecondition(std::string m) {
    return {Code::kFailedPrecondition, std::move(m)};
  }
  static Status Protocol(std::string m) { return {Code::kProtocol, std::move(m)}; }
  static Status Version(std::string m) { return {Code::kVersion, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Status DataLoss(std::string m) { return {Code::kDataLoss, std::move(m)}; }
  static Status NotActive(std::string m) { return {Code::kNotActive, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "not_found: unknown session 7f3c…" — the form printed for people.
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "Result built from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // By value on a temporary, so `for (auto& x : *f())` never dangles.
  T operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace zgrid

#endif  // ZGRID_STATUS_HPP_
