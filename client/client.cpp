// The client library (<zgrid/client.hpp>) over its transport (client/transport.hpp).
#include <zgrid/client.hpp>
#include <zgrid/client_msgpack.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "client/transport.hpp"
#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/status.hpp"
#include "common/util.hpp"
#include "common/zmq_util.hpp"

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

// ---- BrokerClient's state ------------------------------------------------------

// What a BrokerClient keeps: its queue, the batches in flight (kept for
// resending after a head restart) and the responses received. Its
// Transport routes acknowledgements, responses and batch errors to it.
class BrokerClient::State {
 public:
  State(Transport& t, std::string sid, std::string cid, const BrokerOptions& o)
      : t_(t), session_id_(std::move(sid)), client_id_(std::move(cid)), o_(o) {}

  Status send(std::string_view payload, std::string_view user_data);
  Status send_batch(bool flush);
  Status wait_window(std::size_t max_unacked);
  Status end_requests();
  Result<bool> next_response(proto::Response* out, Millis timeout_ms);
  bool poll_response(proto::Response* out);
  void on_message(Transport::Reply& r);
  // After a head restart: re-open this client (learning what the head has
  // acknowledged) and resend every batch past that.
  Status resume();
  // A call naming this client was refused by a head this client has not
  // spoken to yet (it restarted or took over during the call, and does not
  // have the client): re-open it (resume) and call again.
  // The reply may be the first word from a head that restarted so quickly
  // that no silence told (its instance id is new): ask it.
  bool reopen_after(const Status& st) {
    if (st.code() != Code::kNotFound) return false;
    if (t_.head_instance() != instance_) return true;
    auto inst = t_.probe_instance();
    return inst.ok() && *inst != instance_;
  }
  // While waiting: the connection's keep_alive, and resume() when the head
  // answering is a new instance; `activity`: also a ping naming this client.
  Status check_head(bool activity);

  struct SentBatch {
    std::uint64_t corr;
    std::uint64_t last_seq;
    zmq::message_t msg;  // a copy, for resending
  };

  Transport& t_;
  std::string session_id_, client_id_;
  BrokerOptions o_;
  std::uint64_t next_seq_ = 1;  // sequence number of the next request queued
  std::uint64_t acked_seq_ = 0;
  std::vector<std::string> pending_;  // [user_data, payload, user_data, payload, ...]
  std::size_t pending_bytes_ = 0;
  std::deque<SentBatch> unacked_;  // batches sent and not acknowledged, in order
  std::string instance_;           // the head instance this client last spoke to
  std::string endpoint_;           // and its endpoint (another one: a failover)
  std::string open_token_;         // sent with every open_client of this client (empty: submit)
  std::deque<proto::Response> responses_;
  std::uint64_t received_ = 0;
  std::uint64_t rejected_ = 0;
  Status error_;              // a batch was refused: every later call fails with it
  bool need_resume_ = false;  // the head saw a sequence gap (it restarted): resend
  bool committed_ = false;    // made by submit(): its one batch is committed
  Millis last_ping_ = SteadyClock::instance().now_ms();  // check_head's latest ping naming it
};

// ---- what the Transport hands a BrokerClient ------------------------------------

bool Transport::has_batch(BrokerClient* bc, std::uint64_t corr) {
  for (const auto& b : bc->s_->unacked_)
    if (b.corr == corr) return true;
  return false;
}

void Transport::deliver(BrokerClient* bc, Reply& r) {
  bc->s_->on_message(r);
}

// ---- Connection ---------------------------------------------------------------

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

Result<Connection::FetchPage> Connection::fetch(const std::string& session_id, std::uint64_t cursor,
                                                std::uint64_t max, Millis wait_ms) {
  proto::Fetch f{session_id, cursor, max, static_cast<std::uint64_t>(wait_ms)};
  auto r = t_->call(proto::encode_fetch(t_->next_corr(), f), proto::kFetchReply,
                    options().timeout_ms + wait_ms, wait_ms + 1000);
  if (!r.ok()) return r.status();
  FetchPage page;
  Reader& fr = (*r)->env.fields;
  Reader items = fr.array(proto::kMaxBatchItems);
  ZG_RETURN_IF_ERROR(proto::decode_response_items(items, &page.responses));
  page.next_cursor = fr.u64();
  page.complete = fr.boolean();
  if (!fr.ok()) return Status::Protocol("malformed fetch reply");
  return page;
}

// ---- BrokerClient -------------------------------------------------------------

BrokerClient::BrokerClient(std::unique_ptr<State> s) : s_(std::move(s)) {}

BrokerClient::~BrokerClient() {
  s_->t_.remove_client(s_->session_id_, s_->client_id_);
}

Result<std::unique_ptr<BrokerClient>> BrokerClient::open(Connection& conn,
                                                         const std::string& session_id,
                                                         const std::string& client_id,
                                                         const BrokerOptions& options) {
  Transport& t = conn.transport();
  // Resent while unanswered, and again by resume(): the token tells the
  // head each copy is this opener coming back, not a second one.
  std::string token = random_id128();
  auto r = t.call(proto::encode_open_client(t.next_corr(), {session_id, client_id, token}),
                  proto::kClientOpened, t.options().timeout_ms);
  if (!r.ok()) return r.status();
  proto::ClientOpened m;
  ZG_RETURN_IF_ERROR(proto::decode_client_opened((*r)->env, &m));
  auto s = std::make_unique<State>(t, session_id, client_id, options);
  s->open_token_ = std::move(token);
  s->acked_seq_ = m.acked_seq;
  s->next_seq_ = m.acked_seq + 1;
  s->instance_ = t.head_instance();
  s->endpoint_ = t.endpoint();
  std::unique_ptr<BrokerClient> bc(new BrokerClient(std::move(s)));
  t.add_client(session_id, client_id, bc.get());
  return bc;
}

Result<std::unique_ptr<BrokerClient>> BrokerClient::submit(Connection& conn,
                                                           const proto::CreateSession& request,
                                                           const std::string& client_id,
                                                           const std::vector<Item>& items,
                                                           const BrokerOptions& options) {
  std::size_t bytes = 0;
  for (const Item& it : items) bytes += it.payload.size() + it.user_data.size();
  if (items.size() > options.batch_items || bytes > options.batch_bytes)
    return Status::InvalidArgument("submit sends one message of at most " +
                                   std::to_string(options.batch_items) + " requests and " +
                                   std::to_string(options.batch_bytes) + " bytes (this is " +
                                   std::to_string(items.size()) + " and " + std::to_string(bytes) +
                                   "): create_session and BrokerClient::open for more");
  Transport& t = conn.transport();
  proto::Submit m;
  m.create = request;
  m.client_id = client_id;
  m.items.reserve(items.size());
  for (const Item& it : items) m.items.push_back({it.user_data, it.payload});
  // Not resent: a second copy would make a second session.
  auto r =
      t.call(proto::encode_submit(t.next_corr(), m), proto::kSubmitted, t.options().timeout_ms, 0);
  if (!r.ok()) return r.status();
  proto::Submitted a;
  ZG_RETURN_IF_ERROR(proto::decode_submitted((*r)->env, &a));
  auto s = std::make_unique<State>(t, a.info.session_id, client_id, options);
  s->acked_seq_ = items.size();
  s->next_seq_ = items.size() + 1;
  s->instance_ = t.head_instance();
  s->endpoint_ = t.endpoint();
  s->committed_ = true;
  for (char st : a.statuses) s->rejected_ += st == proto::kItemTooLarge ? 1 : 0;
  std::unique_ptr<BrokerClient> bc(new BrokerClient(std::move(s)));
  t.add_client(a.info.session_id, client_id, bc.get());
  return bc;
}

Status BrokerClient::send(std::string_view payload, std::string_view user_data) {
  if (s_->committed_)
    return Status::FailedPrecondition("client " + s_->client_id_ +
                                      " was submitted whole: its requests are committed");
  return s_->send(payload, user_data);
}
Status BrokerClient::flush() {
  return s_->send_batch(true);
}
Status BrokerClient::send_pending() {
  return s_->send_batch(false);
}
Status BrokerClient::wait_acked() {
  ZG_RETURN_IF_ERROR(s_->send_batch(false));
  return s_->wait_window(0);
}
Status BrokerClient::end_requests() {
  return s_->end_requests();
}
Result<bool> BrokerClient::next_response(proto::Response* out, Millis timeout_ms) {
  return s_->next_response(out, timeout_ms);
}
bool BrokerClient::poll_response(proto::Response* out) {
  return s_->poll_response(out);
}
std::uint64_t BrokerClient::sent() const {
  // pending_ holds two strings (user_data, payload) per queued request.
  return s_->next_seq_ - 1 - s_->pending_.size() / 2;
}
std::uint64_t BrokerClient::acked() const {
  return s_->acked_seq_;
}
std::uint64_t BrokerClient::received() const {
  return s_->received_;
}
std::uint64_t BrokerClient::rejected() const {
  return s_->rejected_;
}
const std::string& BrokerClient::session_id() const {
  return s_->session_id_;
}
const std::string& BrokerClient::client_id() const {
  return s_->client_id_;
}

void BrokerClient::State::on_message(Transport::Reply& r) {
  Envelope& env = r.env;
  if (env.type == proto::kAck) {
    proto::Ack a;
    if (!proto::decode_ack(env, &a).ok()) return;
    for (auto it = unacked_.begin(); it != unacked_.end(); ++it)
      if (it->corr == env.corr) {
        unacked_.erase(it);
        break;
      }
    std::uint64_t last = a.first_seq + a.count - 1;
    if (a.count > 0 && last > acked_seq_) acked_seq_ = last;
    for (char c : a.statuses)
      if (static_cast<std::uint8_t>(c) == proto::kItemTooLarge) ++rejected_;
    return;
  }
  if (env.type == proto::kResponses) {
    Reader& f = env.fields;
    f.skip();
    f.skip();
    Reader items = f.array(proto::kMaxBatchItems);
    std::size_t before = responses_.size();
    std::vector<proto::Response> batch;
    batch.reserve(items.remaining());
    if (!proto::decode_response_items(items, &batch).ok()) return;
    for (auto& x : batch) responses_.push_back(std::move(x));
    std::uint64_t n = responses_.size() - before;
    received_ += n;
    // Acknowledge at once: the library buffers, so the head can keep going.
    zmq::message_t ack = proto::encode_client_ref(proto::kRespAck, 0, {session_id_, client_id_, n});
    (void)t_.send_raw(ack, -1, /*may_fail_over=*/false);  // inside pump: same socket
    return;
  }
  if (env.type == proto::kError) {
    proto::Error e;
    if (!proto::decode_error(env, &e).ok()) return;
    if (e.code == Code::kOutOfSequence || e.code == Code::kNotFound) {
      // Sent to a head that restarted (or took over) before it had the
      // batches before this one, or before it had this client at all: keep
      // it, re-open the client and resend everything after what the head
      // holds. (Answers to copies sent before that re-open may still come:
      // another re-open is harmless, the head drops what it holds. A session
      // that is gone, e.g. interactive on a dead head: resume says so.)
      need_resume_ = true;
      return;
    }
    // Unknown to a head this client had not spoken to (a batch sent on
    // after a failover): the session was lost with the head.
    if (error_.ok()) error_ = t_.explain(Status(e.code, e.message));
    for (auto it = unacked_.begin(); it != unacked_.end(); ++it)
      if (it->corr == env.corr) {
        unacked_.erase(it);
        break;
      }
  }
}

Status BrokerClient::State::send(std::string_view payload, std::string_view user_data) {
  if (!error_.ok()) return error_;
  pending_.emplace_back(user_data);
  pending_.emplace_back(payload);
  pending_bytes_ += payload.size() + user_data.size();
  ++next_seq_;
  if (pending_.size() / 2 >= o_.batch_items || pending_bytes_ >= o_.batch_bytes)
    return send_batch(false);
  return Status::OK();
}

Status BrokerClient::State::wait_window(std::size_t max_unacked) {
  while (unacked_.size() > max_unacked && error_.ok()) {
    auto p = t_.pump(200);
    if (!p.ok()) return p.status();
    if (need_resume_) {
      need_resume_ = false;
      ZG_RETURN_IF_ERROR(resume());
      continue;
    }
    // No acknowledgement for a while: held back (back-pressure), or the head
    // restarted and lost what was in flight. The connection's pings tell (a
    // new instance id), or that no head answers.
    if (unacked_.size() > max_unacked && error_.ok()) ZG_RETURN_IF_ERROR(check_head(false));
  }
  return error_;
}

Status BrokerClient::State::check_head(bool activity) {
  // Waiting for responses is not idleness: a ping naming this client, once
  // a second, counts as its activity.
  Millis now = SteadyClock::instance().now_ms();
  if (activity && now - last_ping_ >= 1000 && t_.ping(session_id_, client_id_)) last_ping_ = now;
  ZG_RETURN_IF_ERROR(t_.keep_alive());
  if (t_.head_instance() == instance_) return Status::OK();
  const bool failed_over = t_.endpoint() != endpoint_;
  Status st = resume();
  // An interactive session lives in its head only (after a failover, the
  // transport's explain() has said so already).
  if (st.code() == Code::kNotFound && !failed_over)
    return Status::NotFound(st.message() + " (the head at " + t_.endpoint() +
                            " restarted, and interactive sessions do not survive a restart)");
  return st;
}

Status BrokerClient::State::send_batch(bool flush) {
  if (!error_.ok()) return error_;
  if (pending_.empty() && !flush) return Status::OK();
  ZG_RETURN_IF_ERROR(wait_window(o_.window - 1));
  proto::Send m;
  m.session_id = session_id_;
  m.client_id = client_id_;
  std::uint64_t n = pending_.size() / 2;
  m.first_seq = next_seq_ - n;
  m.flush = flush;
  m.items.reserve(n);
  for (std::size_t i = 0; i < pending_.size(); i += 2)
    m.items.push_back({pending_[i], pending_[i + 1]});
  if (n == 0) {
    // A bare flush: no items, but the flag.
    for (int attempt = 0;; ++attempt) {
      auto r = t_.call(
          proto::encode_client_ref(proto::kFlush, t_.next_corr(), {session_id_, client_id_, 0}),
          proto::kOk, t_.options().timeout_ms);
      if (r.ok()) return Status::OK();
      if (attempt > 0 || !reopen_after(r.status())) return r.status();
      ZG_RETURN_IF_ERROR(resume());
    }
  }
  std::uint64_t corr = t_.next_corr();
  zmq::message_t msg = proto::encode_send(corr, m);
  SentBatch sb{corr, next_seq_ - 1, zmq::message_t()};
  sb.msg.copy(msg);
  ZG_RETURN_IF_ERROR(t_.send_raw(msg));
  unacked_.push_back(std::move(sb));
  pending_.clear();
  pending_bytes_ = 0;
  return Status::OK();
}

Status BrokerClient::State::resume() {
  auto r =
      t_.call(proto::encode_open_client(t_.next_corr(), {session_id_, client_id_, open_token_}),
              proto::kClientOpened, t_.options().timeout_ms);
  if (!r.ok()) return r.status();
  proto::ClientOpened m;
  ZG_RETURN_IF_ERROR(proto::decode_client_opened((*r)->env, &m));
  auto inst = t_.probe_instance();
  if (!inst.ok()) return inst.status();
  instance_ = *inst;
  endpoint_ = t_.endpoint();
  t_.set_head_instance(*inst);
  if (m.acked_seq > acked_seq_) acked_seq_ = m.acked_seq;
  // Batches the head synced before it died are done; the rest go again with
  // their own corr: the head drops any item it already holds.
  while (!unacked_.empty() && unacked_.front().last_seq <= m.acked_seq) unacked_.pop_front();
  for (auto& b : unacked_) {
    zmq::message_t again;
    again.copy(b.msg);
    ZG_RETURN_IF_ERROR(t_.send_raw(again));
  }
  return Status::OK();
}

Status BrokerClient::State::end_requests() {
  if (committed_) return Status::OK();  // submit() committed it
  if (!pending_.empty()) ZG_RETURN_IF_ERROR(send_batch(true));
  for (int attempt = 0;; ++attempt) {
    ZG_RETURN_IF_ERROR(wait_window(0));
    auto r = t_.call(proto::encode_client_ref(proto::kEndRequests, t_.next_corr(),
                                              {session_id_, client_id_, acked_seq_}),
                     proto::kOk, t_.options().timeout_ms);
    if (r.ok()) return Status::OK();
    if (attempt > 0 || !reopen_after(r.status())) return r.status();
    ZG_RETURN_IF_ERROR(resume());  // then its batches again, and EndRequests
  }
}

bool BrokerClient::State::poll_response(proto::Response* out) {
  if (responses_.empty()) return false;
  *out = std::move(responses_.front());
  responses_.pop_front();
  return true;
}

Result<bool> BrokerClient::State::next_response(proto::Response* out, Millis timeout_ms) {
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + timeout_ms;
  bool pumped = false;  // a timeout of 0 still reads what has arrived
  while (responses_.empty()) {
    if (!error_.ok()) return error_;
    Millis now = clock.now_ms();
    if (now >= deadline && pumped) return false;
    auto p = t_.pump(std::clamp<Millis>(deadline - now, 0, 500));
    pumped = true;
    if (!p.ok()) return p.status();
    // Waiting is not idleness, and a dead head must not mean a hang: the
    // connection's liveness clock, not this call's (callers wait in slices).
    if (responses_.empty()) ZG_RETURN_IF_ERROR(check_head(true));
  }
  return poll_response(out);
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
