// Value types of the client API that are also fields of wire protocol v1
// (docs/protocol.md): what a session is created with, what the head says
// about it, how it is closed, and one response.
//
// Public and installed (<zgrid/types.hpp>, included by <zgrid/client.hpp>);
// needs nothing but the standard library. state_name() is defined in the
// zgrid library (zgrid::client links it). zgrid's own protocol code
// (common/protocol.hpp) uses these same types.
//
// Thread safety: plain values; safe to copy and move between threads.
#ifndef ZGRID_TYPES_HPP_
#define ZGRID_TYPES_HPP_

#include <cstdint>
#include <string>
#include <string_view>

namespace zgrid {

using Millis = std::int64_t;  // milliseconds (on a monotonic clock, where a time point)

}  // namespace zgrid

namespace zgrid::proto {

enum class CloseMode : std::uint8_t { kSeal = 0, kCancel = 1, kPurge = 2 };

enum class SessionState : std::uint8_t { kOpen = 0, kSealed = 1, kCancelled = 2, kClosed = 3 };
// "open", "sealed", "cancelled", "closed".
const char* state_name(SessionState s);

struct CreateSession {
  std::string service;
  bool durable = false;
  std::uint64_t client_idle_timeout_ms = 0;  // 0: the head's default
  std::uint64_t task_timeout_ms = 0;         // a run longer than this is a lost run; 0: the head's
  std::uint64_t deadline_ms = 0;  // what has not run this long after creation faults `timeout`
  // Requests run one at a time, in request-id order, on one service instance
  // kept for this session (docs/services.md, "Stateful sessions").
  bool stateful = false;
  // Makes a resent create_session idempotent (docs/protocol.md, "Resent
  // requests"): the head answers every create_session of this owner with
  // this token with the one session it made. 1..64 printable characters;
  // empty: Connection::create_session draws a random one for each call.
  std::string token;
};

struct SessionInfo {
  std::string session_id;
  std::string service;
  bool durable = false;
  SessionState state = SessionState::kOpen;
  bool stateful = false;
};

struct Response {
  std::uint64_t request_id = 0;
  std::string user_data;
  std::string fault_code;  // empty: ok, `data` is the result; else `data` is the message
  std::string data;
  bool ok() const { return fault_code.empty(); }
};

// A response as views into the message it came in (valid while that message
// lives: see its producer). What the CLI prints from without building a
// Response per item.
struct ResponseView {
  std::uint64_t request_id = 0;
  std::string_view user_data;
  std::string_view fault_code;
  std::string_view data;
  bool ok() const { return fault_code.empty(); }
  void copy_to(Response* out) const {  // reuses out's buffers
    out->request_id = request_id;
    out->user_data.assign(user_data);
    out->fault_code.assign(fault_code);
    out->data.assign(data);
  }
};

}  // namespace zgrid::proto

#endif  // ZGRID_TYPES_HPP_
