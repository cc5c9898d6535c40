// BrokerClient (<zgrid/client.hpp>): one client of a session — the
// requests it queues and sends in batches under a window of
// unacknowledged ones, the acknowledgements and responses the head pushes
// to it, and its resume after a head restart or a failover (re-open, resend
// every batch past what the head holds).
//
// Ownership: BrokerClient::State (below) is this client's alone: its queue,
// the batches in flight (copies kept for resending) and the responses
// received. Only its own methods change it; the Transport reaches it through
// deliver() and has_batch() (defined here), for messages that name this
// client. A BrokerClient registers itself with its Connection's Transport
// when made and unregisters when destroyed; it refers to the Connection,
// which must outlive it. Threading: the Connection's thread only (one
// socket); nothing here locks.
#include <zgrid/client.hpp>

#include <algorithm>
#include <deque>
#include <vector>

#include "client/transport.hpp"
#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/status.hpp"
#include "common/util.hpp"
#include "common/zmq_util.hpp"

namespace zgrid::client {

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
  void on_message(std::unique_ptr<Transport::Reply>& reply);
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
  // Responses received and not yet taken, as the messages they came in:
  // an item is decoded when it is taken, into the caller's Response (reusing
  // its buffers), instead of a Response built per item on arrival. `items`
  // reads into `reply`, which stays where it is on the heap.
  struct Inbox {
    std::unique_ptr<Transport::Reply> reply;
    Reader items;
  };
  std::deque<Inbox> inbox_;
  std::size_t buffered_ = 0;  // responses in inbox_ not yet taken
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

void Transport::deliver(BrokerClient* bc, std::unique_ptr<Reply>& r) {
  bc->s_->on_message(r);
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
  m.wait_ms = static_cast<std::uint64_t>(std::max<Millis>(0, options.submit_wait_ms));
  // Not resent: a second copy would make a second session.
  auto r = t.call(proto::encode_submit(t.next_corr(), m), proto::kSubmitted,
                  t.options().timeout_ms + static_cast<Millis>(m.wait_ms), 0);
  if (!r.ok()) return r.status();
  proto::Submitted a;
  ZG_RETURN_IF_ERROR(proto::decode_submitted((*r)->env, &a));
  auto s = std::make_unique<State>(t, a.info.session_id, client_id, options);
  if (a.has_answers) {
    // The answers came with the reply (delivered: no resp_ack for them).
    std::size_t n = a.answers.remaining();
    if (n > 0) {
      s->inbox_.push_back({std::move(*r), a.answers});
      s->buffered_ += n;
      s->received_ += n;
    }
  }
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

void BrokerClient::State::on_message(std::unique_ptr<Transport::Reply>& reply) {
  Transport::Reply& r = *reply;
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
    auto checked = proto::check_response_items(items);  // all or nothing, as before
    if (!checked.ok()) return;
    std::uint64_t n = *checked;
    if (n > 0) {
      inbox_.push_back({std::move(reply), items});
      buffered_ += n;
    }
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
    return send_batch(o_.flush_batches);
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
  if (buffered_ == 0) return false;
  Inbox& in = inbox_.front();
  proto::ResponseView v;
  (void)proto::read_response_item(in.items, &v);  // checked on arrival
  v.copy_to(out);
  --buffered_;
  if (in.items.at_end()) inbox_.pop_front();
  return true;
}

Result<bool> BrokerClient::State::next_response(proto::Response* out, Millis timeout_ms) {
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + timeout_ms;
  bool pumped = false;  // a timeout of 0 still reads what has arrived
  while (buffered_ == 0) {
    if (!error_.ok()) return error_;
    Millis now = clock.now_ms();
    if (now >= deadline && pumped) return false;
    auto p = t_.pump(std::clamp<Millis>(deadline - now, 0, 500));
    pumped = true;
    if (!p.ok()) return p.status();
    // Waiting is not idleness, and a dead head must not mean a hang: the
    // connection's liveness clock, not this call's (callers wait in slices).
    if (buffered_ == 0) ZG_RETURN_IF_ERROR(check_head(true));
  }
  return poll_response(out);
}

}  // namespace zgrid::client
