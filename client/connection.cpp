// Connection (<zgrid/client.hpp>): the calls a program makes of the head —
// sessions (create, attach, status, wait, close), the grid's tables, fetch
// of stored responses, drain — each one request/reply round trip over the
// connection's Transport (client/transport.hpp); ResponseStream, a reader of
// stored responses over fetch. A durable session's stored requests and
// resubmit: client/resubmit.cpp.
//
// Ownership: a Connection owns its Transport (and so the socket); the
// BrokerClients and ResponseStreams made from it refer to it and must not
// outlive it. Threading: one thread, the one using the Connection: the
// Transport's socket is not thread-safe, and nothing here locks.
// A new client call: a method here (declared in <zgrid/client.hpp>) that
// encodes its message, calls t_->call with the reply type it expects and
// decodes the reply; nothing else in the library changes.
#include <zgrid/client.hpp>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "client/transport.hpp"
#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/status.hpp"
#include "common/util.hpp"

namespace zgrid::client {

namespace {

// A typed status table as the ordered fields the CLI prints (text or JSON).
template <class T>
Fields to_fields(const T& t) {
  Fields f;
  proto::for_each_field(t, [&f](std::string_view name, const auto& v) {
    f.items.emplace_back(std::string(name), Value(v));
  });
  return f;
}

template <class T>
Result<std::vector<Fields>> to_fields_list(const std::vector<T>& list) {
  std::vector<Fields> out;
  out.reserve(list.size());
  for (const T& t : list) out.push_back(to_fields(t));
  return out;
}

}  // namespace

Connection::Connection(std::unique_ptr<Transport> t) : t_(std::move(t)) {}

Connection::~Connection() = default;

Result<std::unique_ptr<Connection>> Connection::open(const ClientOptions& options) {
  try {
    auto t = std::make_unique<Transport>(options);
    ZG_RETURN_IF_ERROR(t->start());
    return std::unique_ptr<Connection>(new Connection(std::move(t)));
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("ZeroMQ: ") + e.what());
  }
}

const ClientOptions& Connection::options() const {
  return t_->options();
}

const std::string& Connection::head_instance() const {
  return t_->head_instance();
}

const std::string& Connection::head_endpoint() const {
  return t_->endpoint();
}

std::uint64_t Connection::epoch() const {
  return t_->epoch();
}

std::vector<Fields> Connection::heads(const ClientOptions& options) {
  std::vector<Fields> rows;
  try {
    Transport t(options);
    for (const auto& h : t.probe_heads(std::min<Millis>(options.timeout_ms, 1000))) {
      Fields f;
      f.items.emplace_back("endpoint", h.endpoint);
      if (h.answered) {
        f.items.emplace_back("role", h.status.role.empty() ? "single" : h.status.role);
        f.items.emplace_back("epoch", h.status.epoch);
        f.items.emplace_back("instance", h.status.instance);
        f.items.emplace_back("active", h.status.active);
        f.items.emplace_back("error", std::string());
      } else {
        f.items.emplace_back("role", std::string("no answer"));
        f.items.emplace_back("epoch", std::string());
        f.items.emplace_back("instance", std::string());
        f.items.emplace_back("active", std::string());
        f.items.emplace_back("error", h.error);
      }
      rows.push_back(std::move(f));
    }
  } catch (const zmq::error_t&) {
  }
  return rows;
}

Result<proto::SessionInfo> Connection::create_session(const proto::CreateSession& request) {
  // Resent while unanswered: the token makes every copy the one session.
  proto::CreateSession m = request;
  if (m.token.empty()) m.token = random_id128();
  auto r = t_->call(proto::encode_create_session(t_->next_corr(), m), proto::kSessionInfo,
                    options().timeout_ms);
  if (!r.ok()) return r.status();
  proto::SessionInfo info;
  ZG_RETURN_IF_ERROR(proto::decode_session_info((*r)->env, &info));
  return info;
}

Result<proto::SessionInfo> Connection::attach(const std::string& session_id) {
  auto r = t_->call(proto::encode_attach(t_->next_corr(), session_id), proto::kSessionInfo,
                    options().timeout_ms);
  if (!r.ok()) return r.status();
  proto::SessionInfo info;
  ZG_RETURN_IF_ERROR(proto::decode_session_info((*r)->env, &info));
  return info;
}

Result<Fields> Connection::wait_complete(const std::string& session_id, Millis timeout_ms,
                                         const std::function<void(const Fields&)>& on_progress,
                                         Millis poll_ms) {
  const Clock& clock = SteadyClock::instance();
  Millis start = clock.now_ms();
  while (true) {
    auto st = session_status(session_id);
    if (!st.ok()) return st.status();
    if (st->boolean("complete")) return st;
    if (on_progress) on_progress(*st);
    Millis now = clock.now_ms();
    if (timeout_ms > 0 && now - start >= timeout_ms)
      return Status(Code::kTimedOut,
                    "session " + session_id + " not complete after " + format_duration(timeout_ms));
    Millis nap = std::max<Millis>(1, poll_ms);
    if (timeout_ms > 0) nap = std::min(nap, start + timeout_ms - now);
    // Asked in slices, so that an interrupt is seen within 100 ms.
    for (Millis slept = 0; slept < nap; slept += 100) {
      if (options().interrupted && options().interrupted())
        return Status(Code::kCancelled, "interrupted");
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<Millis>(100, nap - slept)));
    }
  }
}

Result<Fields> Connection::session_status(const std::string& session_id) {
  if (session_id.empty()) return Status::InvalidArgument("empty session id");
  auto r = t_->call(proto::encode_query(proto::kStatus, t_->next_corr(), session_id),
                    proto::kStatusReply, options().timeout_ms);
  if (!r.ok()) return r.status();
  proto::SessionStatus st;
  ZG_RETURN_IF_ERROR(proto::decode_session_status((*r)->env, &st));
  return to_fields(st);
}

Result<Fields> Connection::grid_status() {
  for (int hop = 0;; ++hop) {
    auto r = t_->call(proto::encode_query(proto::kStatus, t_->next_corr(), ""), proto::kStatusReply,
                      options().timeout_ms);
    if (!r.ok()) return r.status();
    proto::GridStatus st;
    ZG_RETURN_IF_ERROR(proto::decode_grid_status((*r)->env, &st));
    // A standby answers status itself (the head in use became one): the
    // grid's status is the active head's.
    if (st.role != "standby" || hop >= 3) return to_fields(st);
    ZG_RETURN_IF_ERROR(t_->follow_standby(st.epoch, st.active));
  }
}

Result<std::vector<Fields>> Connection::nodes() {
  auto r = t_->call(proto::begin(proto::kNodes, t_->next_corr(), 0).finish(), proto::kNodesReply,
                    options().timeout_ms);
  if (!r.ok()) return r.status();
  std::vector<proto::NodeStatus> list;
  ZG_RETURN_IF_ERROR(proto::decode_nodes_reply((*r)->env, &list));
  return to_fields_list(list);
}

Result<std::vector<Fields>> Connection::sessions() {
  auto r = t_->call(proto::begin(proto::kSessions, t_->next_corr(), 0).finish(),
                    proto::kSessionsReply, options().timeout_ms);
  if (!r.ok()) return r.status();
  std::vector<proto::SessionStatus> list;
  ZG_RETURN_IF_ERROR(proto::decode_sessions_reply((*r)->env, &list));
  return to_fields_list(list);
}

Status Connection::close_session(const std::string& session_id, proto::CloseMode mode) {
  auto r = t_->call(proto::encode_close(t_->next_corr(), {session_id, mode}), proto::kOk,
                    options().timeout_ms);
  return r.ok() ? Status::OK() : r.status();
}

Status Connection::drain_node(const std::string& node_id, bool undo) {
  auto r = t_->call(proto::encode_drain(t_->next_corr(), {node_id, undo}), proto::kOk,
                    options().timeout_ms);
  return r.ok() ? Status::OK() : r.status();
}

Status Connection::request_ok(std::string_view message, const std::string& arg) {
  const proto::MessageInfo* m = proto::message_named(message);
  if (m == nullptr || m->role != proto::Role::kClientRequest || m->reply != "ok")
    return Status::InvalidArgument("no client message " + std::string(message) +
                                   " answered by ok in the protocol table");
  auto r = t_->call(proto::encode_query(m->type, t_->next_corr(), arg), proto::kOk,
                    options().timeout_ms);
  return r.ok() ? Status::OK() : r.status();
}

Result<Connection::FetchPage> Connection::fetch(const std::string& session_id, std::uint64_t cursor,
                                                std::uint64_t max, Millis wait_ms) {
  FetchPage page;
  auto got = fetch_each(session_id, cursor, max, wait_ms, [&](const proto::ResponseView& v) {
    v.copy_to(&page.responses.emplace_back());
  });
  if (!got.ok()) return got.status();
  page.next_cursor = got->next_cursor;
  page.complete = got->complete;
  return page;
}

Result<Connection::FetchSummary> Connection::fetch_each(
    const std::string& session_id, std::uint64_t cursor, std::uint64_t max, Millis wait_ms,
    const std::function<void(const proto::ResponseView&)>& each) {
  proto::Fetch f{session_id, cursor, max, static_cast<std::uint64_t>(wait_ms)};
  auto r = t_->call(proto::encode_fetch(t_->next_corr(), f), proto::kFetchReply,
                    options().timeout_ms + wait_ms, wait_ms + 1000);
  if (!r.ok()) return r.status();
  FetchSummary page;
  Reader& fr = (*r)->env.fields;
  Reader items = fr.array(proto::kMaxBatchItems);
  auto n = proto::check_response_items(items);
  if (!n.ok()) return n.status();
  page.next_cursor = fr.u64();
  page.complete = fr.boolean();
  if (!fr.ok()) return Status::Protocol("malformed fetch reply");
  page.count = *n;
  proto::ResponseView v;
  while (proto::read_response_item(items, &v)) each(v);
  return page;
}

// ---- ResponseStream -----------------------------------------------------------

Result<bool> ResponseStream::next(proto::Response* out, Millis wait_ms) {
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + wait_ms;
  while (buffer_.empty()) {
    if (complete_) return false;
    Millis left = deadline - clock.now_ms();
    if (left <= 0)
      return Status::TimedOut("no response from session " + session_id_ + " within " +
                              format_duration(wait_ms));
    auto page = conn_.fetch(session_id_, cursor_, 16384, std::min<Millis>(left, 1000));
    if (!page.ok()) return page.status();
    cursor_ = page->next_cursor;
    if (page->complete && page->responses.empty()) complete_ = true;
    for (auto& r : page->responses) buffer_.push_back(std::move(r));
  }
  *out = std::move(buffer_.front());
  buffer_.pop_front();
  return true;
}

}  // namespace zgrid::client
