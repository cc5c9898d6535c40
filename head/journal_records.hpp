// The journal's key layout and its typed records: what the head writes to
// the journal and reads back at recovery, reconcile, batch loading and fetch.
// The lowest room of head/: it knows msgpack and the key bytes, nothing of
// sessions, sockets or storage. docs/architecture.md's record table lists
// these fields in this order (tests/journal_records_test.cpp checks it).
//
// Decoders never throw: a value that does not parse, or lacks a required
// field, decodes to false. string_views in decoded records point into the
// value passed in and live as long as it does.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/protocol.hpp"

namespace zgrid::head {

inline constexpr std::size_t kSessionIdLength = 32;

// One kind byte, the 32-character session id, then a big-endian 64-bit
// number or a client id: each session's records of one kind are a
// contiguous, ordered range.
namespace jkey {
inline constexpr char kMeta = '\0', kSession = 'S', kClient = 'C', kIndex = 'I', kRequests = 'R',
                      kAnswers = 'A', kTombstone = 'T', kOneMessage = 'M';
// The kinds of a session's records (what a purge deletes); 'T' is not one.
inline constexpr std::array<char, 6> kSessionKinds{kAnswers,    kClient,   kIndex,
                                                   kOneMessage, kRequests, kSession};
std::string meta(std::string_view name);
std::string session(char kind, std::string_view sid);  // prefix of a session's range of `kind`
std::string numbered(char kind, std::string_view sid, std::uint64_t n);  // kind + sid + be64
std::string client(std::string_view sid, std::string_view cid);
std::uint64_t number_of(std::string_view key);  // the trailing be64 of a numbered key
// The session id of any session key ("" when the key is too short).
std::string_view sid_of(std::string_view key);
// The client id of a 'C' key.
std::string_view client_of(std::string_view key);
// Request batches and responses: their values go to segment files.
bool is_bulk(std::string_view key);
// "A of session SID #N": how logs name a record.
std::string describe(std::string_view key);
}  // namespace jkey

// 'S' + sid. Older records stop after `state`, or lack `stateful` or
// `token`; a head that predates a field ignores it.
struct SessionRecord {
  static constexpr std::array<const char*, 9> kFields{
      "service", "created",         "client_idle_timeout_ms",
      "state",   "task_timeout_ms", "deadline",
      "owner",   "stateful",        "token"};
  std::string service;
  std::int64_t created = 0;  // Unix seconds
  std::int64_t client_idle_timeout_ms = 0;
  proto::SessionState state = proto::SessionState::kOpen;
  std::int64_t task_timeout_ms = 0;
  std::int64_t deadline = 0;  // Unix seconds, 0: none
  std::string owner;          // CURVE public key (Z85), empty without CURVE
  bool stateful = false;
  std::string token;  // its create_session token (empty: none)

  std::string encode() const;
  [[nodiscard]] static bool decode(std::string_view v, SessionRecord* out);
};

// 'C' + sid + client id.
struct ClientRecord {
  static constexpr std::array<const char*, 8> kFields{
      "acked_seq", "sent", "flushed_id", "ended", "removed", "max_id", "removed_at", "idle_ms"};
  std::uint64_t acked_seq = 0, sent = 0, flushed_id = 0;
  bool ended = false, removed = false;
  std::uint64_t max_id = 0;
  std::int64_t removed_at = 0;  // Unix seconds of the removal (0: not removed, or an older record)
  std::int64_t idle_ms = 0;     // how long it had been idle when removed

  std::string encode() const;
  [[nodiscard]] static bool decode(std::string_view v, ClientRecord* out);
};

// 'I' + sid + be64(first request id): one per request batch. Older records
// lack `record_bytes`.
struct IndexRecord {
  static constexpr std::array<const char*, 3> kFields{"n", "client_id", "record_bytes"};
  std::uint64_t n = 0;
  std::string client_id;
  std::uint64_t record_bytes = 0;  // the size of its 'R' value (quota accounting)

  std::string encode() const;
  [[nodiscard]] static bool decode(std::string_view v, IndexRecord* out);
};

// 'R' + sid + be64(first request id): the received `send` frame as is (or
// the `submit` frame of a one-message session: its items have the same
// layout), and
// which of its items were accepted (empty: all); accepted items take ids
// from first_request_id on, in order.
struct RequestRecord {
  static constexpr std::array<const char*, 3> kFields{"statuses", "first_request_id", "send_frame"};
  std::string_view statuses;  // one byte per item, 0: accepted; empty: all accepted
  std::uint64_t first_request_id = 0;
  std::string_view send_frame;

  std::string encode() const;
  [[nodiscard]] static bool decode(std::string_view v, RequestRecord* out);
};

// 'M' + sid (journal format v3): a whole one-message session (`submit`)
// whose frame is small, in one record instead of four: its session record
// (sealed), its one client (ended, flushed up to max_id, never removed: an
// ended client is not), its one request batch and that batch's index. A
// later change of state (cancel) is an 'S' record, which then stands for
// the session's fields; nothing else of it is ever written again but its
// answers ('A') and its purge.
struct OneMessageRecord {
  static constexpr std::array<const char*, 9> kFields{"session",  "client_id",        "acked_seq",
                                                      "sent",     "max_id",           "n",
                                                      "statuses", "first_request_id", "send_frame"};
  SessionRecord session;
  std::string client_id;
  std::uint64_t acked_seq = 0, sent = 0, max_id = 0;
  std::uint64_t n = 0;        // the batch's requests (its index); 0: no batch
  std::string_view statuses;  // as in RequestRecord
  std::uint64_t first_request_id = 0;
  std::string_view send_frame;  // the `submit` frame as received

  std::string encode() const;
  [[nodiscard]] static bool decode(std::string_view v, OneMessageRecord* out);
};

// 'A' + sid + be64(first response sequence): an array of responses in the
// wire's response item format (proto::write_response_item), item i with
// response sequence first + i.
struct AnswerItem {
  static constexpr std::array<const char*, 4> kFields{"request_id", "user_data", "fault", "data"};
  std::uint64_t request_id = 0;
  std::string_view user_data, fault, data;
  bool ok = true;      // `fault` is nil
  bool intact = true;  // false: this item is corrupt (its fields are empty)
};
// Visits every item in order until `fn` returns false; a corrupt item is
// visited with intact=false, so that each keeps its response sequence.
// Returns false when the value or an item is corrupt. *count gets the
// array's length (0 when it does not parse).
[[nodiscard]] bool for_each_answer(std::string_view v, std::uint64_t* count,
                                   const std::function<bool(const AnswerItem&)>& fn);
// The length and header size of the msgpack array `v` starts with (fetch
// copies whole records by their items).
[[nodiscard]] bool array_header(std::string_view v, std::uint32_t* n, std::size_t* header);

// 'T' + sid: a purged session's tombstone, Unix seconds as decimal text.
std::string encode_tombstone(std::int64_t unix_seconds);

}  // namespace zgrid::head
