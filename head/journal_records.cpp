#include "head/journal_records.hpp"

#include <msgpack.hpp>

#include <algorithm>

#include "common/codec.hpp"

namespace zgrid::head {

namespace {

void put_be64(std::string& s, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Parses a value that is one msgpack array; str and bin objects point into
// `v` (nothing is copied), so views taken from them live as long as `v`.
Reader parse(std::string_view v, msgpack::object_handle* /*unused: views point into v*/) {
  Reader r;
  if (!decode_array(v.data(), v.size(), &r, DecodeLimits::unbounded()).ok())
    r.fail("corrupt record");
  return r;
}

}  // namespace

// ---- keys --------------------------------------------------------------------------

namespace jkey {
std::string meta(std::string_view name) {
  std::string k(1, kMeta);
  k += name;
  return k;
}
std::string session(char kind, std::string_view sid) {
  std::string k(1, kind);
  k += sid;
  return k;
}
std::string numbered(char kind, std::string_view sid, std::uint64_t n) {
  std::string k = session(kind, sid);
  put_be64(k, n);
  return k;
}
std::string client(std::string_view sid, std::string_view cid) {
  std::string k = session(kClient, sid);
  k += cid;
  return k;
}
std::uint64_t number_of(std::string_view key) {
  if (key.size() < 8) return 0;
  std::uint64_t v = 0;
  for (std::size_t i = key.size() - 8; i < key.size(); ++i)
    v = (v << 8) | static_cast<unsigned char>(key[i]);
  return v;
}
std::string_view sid_of(std::string_view key) {
  if (key.size() < 1 + kSessionIdLength) return {};
  return key.substr(1, kSessionIdLength);
}
std::string_view client_of(std::string_view key) {
  if (key.size() < 1 + kSessionIdLength) return {};
  return key.substr(1 + kSessionIdLength);
}
bool is_bulk(std::string_view key) {
  return key.size() >= 1 + kSessionIdLength + 8 && (key[0] == kRequests || key[0] == kAnswers);
}
std::string describe(std::string_view key) {
  std::string kind(1, key.empty() ? '?' : key[0]);
  std::string sid(key.substr(1, std::min<std::size_t>(kSessionIdLength, key.size() - 1)));
  std::string what = kind + " of session " + sid;
  if (key.size() >= 1 + kSessionIdLength + 8 &&
      (key[0] == kRequests || key[0] == kAnswers || key[0] == kIndex))
    what += " #" + std::to_string(number_of(key));
  return what;
}
}  // namespace jkey

// ---- records -----------------------------------------------------------------------

std::string SessionRecord::encode() const {
  Writer w;
  w.array(kFields.size()).str(service).i64(created).i64(client_idle_timeout_ms);
  w.u64(static_cast<std::uint64_t>(state)).i64(task_timeout_ms).i64(deadline).str(owner);
  w.boolean(stateful).str(token);
  return w.finish_string();
}

bool SessionRecord::decode(std::string_view v, SessionRecord* out) {
  msgpack::object_handle oh;
  Reader r = parse(v, &oh);
  out->service = std::string(r.bytes(proto::kMaxNameLength));
  out->created = r.i64();
  out->client_idle_timeout_ms = r.i64();
  out->state = static_cast<proto::SessionState>(std::min<std::uint64_t>(r.u64(), 3));
  if (!r.at_end()) out->task_timeout_ms = r.i64();
  if (!r.at_end()) out->deadline = r.i64();
  if (!r.at_end()) out->owner = std::string(r.bytes(proto::kMaxNameLength));
  if (!r.at_end()) out->stateful = r.boolean();
  if (!r.at_end()) out->token = std::string(r.bytes(proto::kMaxNameLength));
  return r.ok();
}

std::string ClientRecord::encode() const {
  Writer w;
  w.array(kFields.size()).u64(acked_seq).u64(sent).u64(flushed_id);
  w.boolean(ended).boolean(removed).u64(max_id).i64(removed_at).i64(idle_ms);
  return w.finish_string();
}

bool ClientRecord::decode(std::string_view v, ClientRecord* out) {
  msgpack::object_handle oh;
  Reader r = parse(v, &oh);
  out->acked_seq = r.u64();
  out->sent = r.u64();
  out->flushed_id = r.u64();
  out->ended = r.boolean();
  out->removed = r.boolean();
  out->max_id = r.u64();
  if (!r.at_end()) out->removed_at = r.i64();  // since removals are explained
  if (!r.at_end()) out->idle_ms = r.i64();
  return r.ok();
}

std::string IndexRecord::encode() const {
  Writer w;
  w.array(kFields.size()).u64(n).str(client_id).u64(record_bytes);
  return w.finish_string();
}

bool IndexRecord::decode(std::string_view v, IndexRecord* out) {
  msgpack::object_handle oh;
  Reader r = parse(v, &oh);
  out->n = r.u64();
  out->client_id = std::string(r.bytes(proto::kMaxNameLength));
  out->record_bytes = r.at_end() ? 0 : r.u64();
  return r.ok() && !out->client_id.empty();
}

namespace {
// A request batch's fields as RequestRecord and OneMessageRecord end:
// statuses (nil when all accepted), first request id, the send frame.
void write_batch(Writer& w, std::string_view statuses, std::uint64_t first_request_id,
                 std::string_view send_frame) {
  if (statuses.empty())
    w.nil();
  else
    w.bin(statuses);
  w.u64(first_request_id).bin(send_frame);
}
}  // namespace

std::string RequestRecord::encode() const {
  Writer w(send_frame.size() + statuses.size() + 32);
  w.array(kFields.size());
  write_batch(w, statuses, first_request_id, send_frame);
  return w.finish_string();
}

bool RequestRecord::decode(std::string_view v, RequestRecord* out) {
  msgpack::object_handle oh;
  Reader r = parse(v, &oh);
  bool nil = false;
  out->statuses = r.bytes_or_nil(&nil);
  out->first_request_id = r.u64();
  out->send_frame = r.bytes();
  return r.ok();
}

std::string OneMessageRecord::encode() const {
  std::string srec = session.encode();
  Writer w(send_frame.size() + statuses.size() + srec.size() + 64);
  w.array(kFields.size()).bin(srec).str(client_id).u64(acked_seq).u64(sent).u64(max_id).u64(n);
  write_batch(w, statuses, first_request_id, send_frame);
  return w.finish_string();
}

bool OneMessageRecord::decode(std::string_view v, OneMessageRecord* out) {
  msgpack::object_handle oh;
  Reader r = parse(v, &oh);
  std::string_view srec = r.bytes();
  out->client_id = std::string(r.bytes(proto::kMaxNameLength));
  out->acked_seq = r.u64();
  out->sent = r.u64();
  out->max_id = r.u64();
  out->n = r.u64();
  bool nil = false;
  out->statuses = r.bytes_or_nil(&nil);
  out->first_request_id = r.u64();
  out->send_frame = r.bytes();
  return r.ok() && !out->client_id.empty() && SessionRecord::decode(srec, &out->session);
}

bool for_each_answer(std::string_view v, std::uint64_t* count,
                     const std::function<bool(const AnswerItem&)>& fn) {
  msgpack::object_handle oh;
  Reader items = parse(v, &oh);
  *count = items.ok() ? items.remaining() : 0;
  bool intact = items.ok();
  while (items.ok() && !items.at_end()) {
    Reader x = items.array(AnswerItem::kFields.size());
    AnswerItem a;
    a.request_id = x.u64();
    a.user_data = x.bytes();
    bool nil = false;
    a.fault = x.bytes_or_nil(&nil);
    a.data = x.bytes();
    a.ok = nil;
    if (!x.ok()) {
      intact = false;
      a = AnswerItem{};
      a.intact = false;
    }
    if (!fn(a)) break;
  }
  return intact && items.ok();
}

bool array_header(std::string_view v, std::uint32_t* n, std::size_t* header) {
  if (v.empty()) return false;
  auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(v[i]); };
  std::uint8_t b = byte(0);
  if ((b & 0xf0) == 0x90) {
    *n = b & 0x0f;
    *header = 1;
  } else if (b == 0xdc && v.size() >= 3) {
    *n = (std::uint32_t{byte(1)} << 8) | byte(2);
    *header = 3;
  } else if (b == 0xdd && v.size() >= 5) {
    *n = (std::uint32_t{byte(1)} << 24) | (std::uint32_t{byte(2)} << 16) |
         (std::uint32_t{byte(3)} << 8) | byte(4);
    *header = 5;
  } else {
    return false;
  }
  return true;
}

std::string encode_tombstone(std::int64_t unix_seconds) {
  return std::to_string(unix_seconds);
}

}  // namespace zgrid::head
