// The client library's transport (client/transport.hpp): one DEALER socket to
// the active head, its round trips, and finding the active head among
// several (failover).
#include "client/transport.hpp"

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/status.hpp"
#include "common/util.hpp"
#include "common/zmq_util.hpp"

namespace zgrid::client {

namespace {

constexpr std::string_view kClientVersion = "zgrid-client 0.1";

// An endpoint a client can connect to: a head's frontend as named by a
// standby may be a wildcard bind ("tcp://*:5555"), which is not.
bool connectable(const std::string& ep) {
  return !ep.empty() && ep.find('*') == std::string::npos &&
         ep.find("//0.0.0.0:") == std::string::npos;
}

// One head asked by find_active or probe_heads, on a socket of its own.
struct Probe {
  Probe() = default;
  Probe(Probe&&) = default;
  Probe& operator=(Probe&&) = default;
  ~Probe() { zmqu::stop_monitor(sock); }  // before the socket, then the monitor, go
  std::string endpoint;
  std::unique_ptr<zmqu::HandshakeMonitor> monitor;
  zmq::socket_t sock;
  Millis last_ask = -1'000'000;
  bool sent = false;  // probe_heads: its one question went out
  std::string said = "does not answer";
  Status fatal;  // a refused key or a CURVE mismatch: asking again will not help
};

// Tries to send `m` without waiting (ZMQ_IMMEDIATE: fails until connected).
bool send_now(zmq::socket_t& s, zmq::message_t& m) {
  try {
    return s.send(m, zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

// Reads what has not been said yet about a probe that cannot send: a
// refused key (decisive) or a closed port.
void note_unsent(Probe& p) {
  Status hs = p.monitor->check();
  if (!hs.ok() && p.monitor->decisive()) {
    p.fatal = hs;
    p.said = "refuses this client: " + hs.message();
  } else if (p.monitor->refused()) {
    p.said = "refuses connections (is zgrid-head running there?)";
  }
}

// Polls the probes' sockets for input for up to `ms`; which are readable.
std::vector<bool> poll_probes(std::vector<Probe>& probes, Millis ms) {
  std::vector<zmq::pollitem_t> items;
  std::vector<std::size_t> index;
  for (std::size_t i = 0; i < probes.size(); ++i) {
    if (!probes[i].sock) continue;
    items.push_back({static_cast<void*>(probes[i].sock), 0, ZMQ_POLLIN, 0});
    index.push_back(i);
  }
  std::vector<bool> ready(probes.size(), false);
  try {
    if (items.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return ready;
    }
    if (zmq::poll(items.data(), items.size(), std::chrono::milliseconds(ms)) <= 0) return ready;
  } catch (const zmq::error_t&) {
    return ready;  // EINTR: the caller looks at `interrupted` and goes on
  }
  for (std::size_t k = 0; k < items.size(); ++k)
    if (items[k].revents & ZMQ_POLLIN) ready[index[k]] = true;
  return ready;
}

// One message from a probe's socket, decoded (false: none, or not one).
bool recv_probe(Probe& p, zmq::message_t* frame, Envelope* env) {
  std::vector<zmq::message_t> frames;
  while (true) {
    auto rs = zmqu::recv_message(p.sock, &frames, 2);
    if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) return false;
    if (rs != zmqu::RecvStatus::kOk || frames.size() != 1) continue;
    *frame = std::move(frames[0]);
    Status st = decode_envelope(frame->data(), frame->size(), env);
    if (st.ok()) st = proto::check_version(*env);
    if (!st.ok()) {
      p.said = "answered: " + st.message();
      continue;
    }
    return true;
  }
}

}  // namespace

Transport::Transport(const ClientOptions& o)
    : o_(o), ctx_(1), endpoints_(split_endpoints(o.head)) {}

zmqu::SocketOptions Transport::socket_options() const {
  zmqu::SocketOptions so;
  so.linger_ms = 0;
  so.curve_server_key = o_.head_key;
  so.curve_public = o_.public_key;
  so.curve_secret = o_.secret_key;
  return so;
}

Status Transport::start() {
  if (!o_.head_key.empty() && (o_.public_key.empty() || o_.secret_key.empty()))
    return Status::InvalidArgument("--head-key needs this client's own key pair too (--key)");
  if (endpoints_.empty()) return Status::InvalidArgument("no head endpoint given (--head)");
  if (several()) {
    const Millis now = SteadyClock::instance().now_ms();
    return find_active(now + o_.timeout_ms, now);
  }
  // One head: as it always was (a standby there is followed by call, on
  // its not_active answer, to the head it names).
  endpoint_ = endpoints_[0];
  monitor_ = std::make_unique<zmqu::HandshakeMonitor>();
  auto s = zmqu::connect_dealer(ctx_, endpoint_, socket_options(), monitor_.get());
  if (!s.ok()) return s.status();
  sock_ = std::move(s).value();
  auto r = call(proto::encode_hello(next_corr(), kClientVersion), proto::kHelloOk, o_.timeout_ms);
  if (!r.ok()) return r.status();
  proto::HelloOk h;
  ZG_RETURN_IF_ERROR(proto::decode_hello_ok((*r)->env, &h));
  instance_ = h.head_instance;
  epoch_ = std::max(epoch_, h.epoch);
  return Status::OK();
}

void Transport::note_not_active(const proto::Error& e) {
  epoch_ = std::max(epoch_, e.epoch);
  if (connectable(e.active_frontend)) hint_ = e.active_frontend;
  need_failover_ = true;
}

Status Transport::find_active(Millis deadline, Millis since) {
  const Clock& clock = SteadyClock::instance();
  const Millis began = since >= 0 ? since : clock.now_ms();
  deadline = std::max(deadline, began + kProbeAnswerMs);
  // At start, heads that all refuse connections are not running: say so at
  // once (as for one head). Later they may be restarting: wait for them.
  const bool at_start = endpoint_.empty();
  const Millis span = deadline - began;
  need_failover_ = false;
  std::vector<Probe> probes;
  auto add = [&](const std::string& ep) {
    if (!connectable(ep)) return;
    for (const Probe& p : probes)
      if (p.endpoint == ep) return;
    Probe p;
    p.endpoint = ep;
    p.monitor = std::make_unique<zmqu::HandshakeMonitor>();
    auto s = zmqu::connect_dealer(ctx_, ep, socket_options(), p.monitor.get());
    if (s.ok()) {
      p.sock = std::move(s).value();
    } else {
      p.fatal = s.status();
      p.said = "cannot be used: " + s.status().message();
    }
    probes.push_back(std::move(p));
  };
  // The head a standby named first, then the list in its order.
  if (!hint_.empty()) add(hint_);
  hint_.clear();
  for (const auto& ep : endpoints_) add(ep);
  while (true) {
    Millis now = clock.now_ms();
    if (o_.interrupted && o_.interrupted()) return Status(Code::kCancelled, "interrupted");
    bool all_fatal = true;
    for (Probe& p : probes) {
      if (p.fatal.ok()) all_fatal = false;
      if (!p.sock || !p.fatal.ok() || now - p.last_ask < kProbeRetryMs) continue;
      zmq::message_t hello = proto::encode_hello(next_corr(), kClientVersion);
      if (send_now(p.sock, hello))
        p.last_ask = now;
      else
        note_unsent(p);
    }
    // Every head refused this client's key: waiting will not change that.
    if (all_fatal && !probes.empty()) return probes.front().fatal;
    bool all_refused = at_start && !probes.empty();
    for (const Probe& p : probes) all_refused = all_refused && p.monitor && p.monitor->refused();
    if (all_refused) {
      deadline = began;  // no "within": they said no at once
      break;
    }
    if (now >= deadline) break;
    std::vector<bool> ready = poll_probes(probes, std::min<Millis>(deadline - now, 20));
    for (std::size_t i = 0; i < probes.size(); ++i) {
      if (!ready[i]) continue;
      zmq::message_t frame;
      Envelope env;
      while (recv_probe(probes[i], &frame, &env)) {
        Probe& p = probes[i];
        if (env.type == proto::kHelloOk) {
          proto::HelloOk h;
          if (!proto::decode_hello_ok(env, &h).ok()) continue;
          if (h.epoch < epoch_) {
            p.said = "is a stale head (epoch " + std::to_string(h.epoch) + ", the grid is at " +
                     std::to_string(epoch_) + ")";
            continue;
          }
          // The active head. The one in use, same instance: keep its socket
          // (replies to what was sent on it may still come).
          const Millis at = clock.now_ms();
          epoch_ = h.epoch;
          if (!(sock_ && p.endpoint == endpoint_ && h.head_instance == instance_)) {
            if (!endpoint_.empty() && p.endpoint != endpoint_) {
              ++failovers_;
              failed_over_to_ = p.endpoint;
              failed_over_epoch_ = h.epoch;
            }
            zmqu::stop_monitor(sock_);
            sock_ = std::move(p.sock);
            monitor_ = std::move(p.monitor);
            endpoint_ = p.endpoint;
            instance_ = h.head_instance;
            reply_.reset();
          }
          last_heard_ = at;
          last_ping_ = at;
          waiting_since_ = 0;
          return Status::OK();
        }
        if (env.type == proto::kError) {
          proto::Error e;
          if (!proto::decode_error(env, &e).ok()) continue;
          if (e.code != Code::kNotActive) {
            p.said = "answered: " + e.message;
            continue;
          }
          epoch_ = std::max(epoch_, e.epoch);
          p.said = "is a standby (" +
                   (e.active_frontend.empty() ? std::string("no active head yet")
                                              : "the active head is " + e.active_frontend) +
                   ")";
          std::string named = e.active_frontend;
          add(named);  // may move probes: `p` is not used after this
        }
      }
    }
  }
  std::string line = "no active head";
  if (deadline > began) line += " within " + format_duration(span);
  for (std::size_t i = 0; i < probes.size(); ++i)
    line += (i == 0 ? ": " : ", ") + probes[i].endpoint + " " + probes[i].said;
  return Status::Unavailable(line);
}

Status Transport::follow_standby(std::uint64_t epoch, const std::string& active_frontend) {
  proto::Error e;
  e.code = Code::kNotActive;
  e.epoch = epoch;
  e.active_frontend = active_frontend;
  note_not_active(e);
  const Millis now = SteadyClock::instance().now_ms();
  return find_active(now + o_.timeout_ms, now);
}

Status Transport::explain(Status st) const {
  if (st.code() != Code::kNotFound || failovers_ == 0) return st;
  return Status::NotFound(st.message() + ": the head failed over to " + failed_over_to_ +
                          " (epoch " + std::to_string(failed_over_epoch_) +
                          "); interactive sessions do not survive a failover");
}

std::vector<Transport::HeadReport> Transport::probe_heads(Millis wait) {
  const Clock& clock = SteadyClock::instance();
  const Millis deadline = clock.now_ms() + wait;
  std::vector<Probe> probes;
  std::vector<HeadReport> out;
  for (const auto& ep : endpoints_) {
    Probe p;
    p.endpoint = ep;
    p.monitor = std::make_unique<zmqu::HandshakeMonitor>();
    auto s = zmqu::connect_dealer(ctx_, ep, socket_options(), p.monitor.get());
    if (s.ok()) p.sock = std::move(s).value();
    HeadReport r;
    r.endpoint = ep;
    if (!s.ok()) r.error = s.status().message();
    probes.push_back(std::move(p));
    out.push_back(std::move(r));
  }
  while (true) {
    bool waiting = false;
    for (std::size_t i = 0; i < probes.size(); ++i) {
      Probe& p = probes[i];
      if (!p.sock || out[i].answered || !out[i].error.empty()) continue;
      waiting = true;
      if (p.sent) continue;
      zmq::message_t q = proto::encode_query(proto::kStatus, next_corr(), "");
      if (send_now(p.sock, q)) {
        p.sent = true;
        continue;
      }
      note_unsent(p);
      if (!p.fatal.ok() || p.monitor->refused()) out[i].error = p.said;
    }
    Millis now = clock.now_ms();
    if (!waiting || now >= deadline) break;
    std::vector<bool> ready = poll_probes(probes, std::min<Millis>(deadline - now, 20));
    for (std::size_t i = 0; i < probes.size(); ++i) {
      if (!ready[i]) continue;
      zmq::message_t frame;
      Envelope env;
      while (recv_probe(probes[i], &frame, &env)) {
        if (env.type == proto::kStatusReply) {
          out[i].answered = proto::decode_grid_status(env, &out[i].status).ok();
          if (!out[i].answered) out[i].error = "answered with a malformed status";
        } else if (env.type == proto::kError) {
          proto::Error e;
          out[i].error = proto::decode_error(env, &e).ok() ? e.message : "a malformed error";
        }
      }
    }
  }
  return out;
}

void Transport::add_client(const std::string& session_id, const std::string& client_id,
                           BrokerClient* bc) {
  clients_[{session_id, client_id}] = bc;
}

void Transport::remove_client(const std::string& session_id, const std::string& client_id) {
  clients_.erase({session_id, client_id});
}

Status Transport::send_raw(zmq::message_t& m, Millis within, bool may_fail_over) {
  // With ZMQ_IMMEDIATE a send waits for a connection: bound that wait, and
  // stop early when the handshake is refused (a refused key never connects).
  const Clock& clock = SteadyClock::instance();
  Millis began = clock.now_ms();
  Millis deadline = began + (within >= 0 ? std::min(within, o_.timeout_ms) : o_.timeout_ms);
  try {
    while (true) {
      if (sock_.send(m, zmq::send_flags::dontwait)) return Status::OK();
      Status hs = monitor_->check();
      if (!hs.ok() && monitor_->decisive()) return hs;
      Millis now = clock.now_ms();
      // Several heads: the one in use has been unreachable a while (or
      // refuses connections): the active head is elsewhere now.
      if (several() && may_fail_over &&
          (monitor_->refused() || need_failover_ || now - began >= kFailoverSilenceMs)) {
        ZG_RETURN_IF_ERROR(find_active(began + o_.timeout_ms, began));
        began = clock.now_ms();
        continue;
      }
      // Nothing listens there: say so now rather than after the timeout (a
      // head that accepts and does not answer still gets the whole timeout).
      if (monitor_->refused())
        return Status::Unavailable("cannot reach the head at " + endpoint_ +
                                   ": connection refused (is zgrid-head running there?)");
      Millis left = deadline - now;
      if (left <= 0) {
        if (!hs.ok()) return hs;
        return Status::Unavailable("cannot reach the head at " + endpoint_ + " (no answer within " +
                                   format_duration(o_.timeout_ms) + ")");
      }
      if (o_.interrupted && o_.interrupted()) return Status(Code::kCancelled, "interrupted");
      zmq::pollitem_t item{static_cast<void*>(sock_), 0, ZMQ_POLLOUT, 0};
      try {
        zmq::poll(&item, 1, std::chrono::milliseconds(std::min<Millis>(left, 20)));
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;  // a signal: look at `interrupted` and go on
      }
    }
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("send failed: ") + e.what());
  }
}

void Transport::note_waiting(Millis now) {
  if (waiting_since_ == 0 || now - last_wait_ > 1000) waiting_since_ = now;
  last_wait_ = now;
}

bool Transport::ping(const std::string& session_id, const std::string& client_id) {
  zmq::message_t m = session_id.empty() ? proto::begin(proto::kPing, next_corr(), 0).finish()
                                        : proto::encode_client_ref(proto::kPing, next_corr(),
                                                                   {session_id, client_id, 0});
  try {
    if (!sock_.send(m, zmq::send_flags::dontwait)) return false;
  } catch (const zmq::error_t&) {
    return false;
  }
  last_ping_ = SteadyClock::instance().now_ms();
  return true;
}

Status Transport::keep_alive() {
  const Millis now = SteadyClock::instance().now_ms();
  note_waiting(now);
  // A standby answered (the head in use lost its lease, or came back as a
  // standby): find the active one.
  if (need_failover_) return find_active(now + o_.timeout_ms, now);
  const Millis ping_after = std::clamp<Millis>(o_.timeout_ms / 2, 1, 1000);
  if (now - last_heard_ < ping_after) return Status::OK();
  Status hs = monitor_->check();
  if (!hs.ok() && monitor_->decisive()) return hs;
  const Millis silent_since = std::max(last_heard_, waiting_since_);
  if (several() && now - silent_since >= kFailoverSilenceMs)
    return find_active(silent_since + o_.timeout_ms, silent_since);
  if (now - silent_since >= o_.timeout_ms) {
    if (!hs.ok()) return hs;
    return Status::Unavailable("the head at " + endpoint_ + " did not answer within " +
                               format_duration(o_.timeout_ms));
  }
  // Not sent (no connection: the head is down or restarting): tried again on
  // the next call, without waiting for a connection here.
  if (now - last_ping_ >= ping_after) (void)ping();
  return Status::OK();
}

Result<bool> Transport::pump(Millis timeout) {
  note_waiting(SteadyClock::instance().now_ms());
  if (o_.interrupted) {  // every wait is a loop over pump: asked each slice
    if (o_.interrupted()) return Status(Code::kCancelled, "interrupted");
    timeout = std::min<Millis>(timeout, 100);
  }
  zmq::pollitem_t item{static_cast<void*>(sock_), 0, ZMQ_POLLIN, 0};
  try {
    int n = zmq::poll(&item, 1, std::chrono::milliseconds(timeout));
    if (n == 0) return false;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return false;
    return Status::Unavailable(std::string("poll failed: ") + e.what());
  }
  bool any = false;
  for (int i = 0; i < 64; ++i) {
    std::vector<zmq::message_t> frames;
    auto rs = zmqu::recv_message(sock_, &frames, 2);
    if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) break;
    if (rs != zmqu::RecvStatus::kOk || frames.size() != 1) continue;
    auto r = std::make_unique<Reply>();
    r->frame = std::move(frames[0]);
    Status st = decode_envelope(r->frame.data(), r->frame.size(), &r->env);
    if (st.ok()) st = proto::check_version(r->env);
    if (!st.ok()) {
      if (r->env.corr != 0 && r->env.corr == waiting_corr_) {
        // Surface a version error to the waiting call as an error reply.
        reply_.reset();
        auto e = std::make_unique<Reply>();
        e->frame = proto::encode_error(r->env.corr, st);
        (void)decode_envelope(e->frame.data(), e->frame.size(), &e->env);
        reply_ = std::move(e);
      }
      continue;
    }
    last_heard_ = SteadyClock::instance().now_ms();  // any message: the head is alive
    route(std::move(r));
    any = true;
    // The reply ends the read: what follows it may be for a BrokerClient the
    // caller makes from this reply (submit), so it stays queued until then.
    if (reply_) break;
  }
  return any;
}

void Transport::route(std::unique_ptr<Reply> r) {
  Envelope& env = r->env;
  if (env.type == proto::kError && env.corr != waiting_corr_) {
    // A standby's answer to a batch or a ping: no BrokerClient's business;
    // the active head is elsewhere.
    Reader peek = env.fields;
    if (code_from_int(peek.u64()) == Code::kNotActive) {
      proto::Error e;
      if (proto::decode_error(env, &e).ok()) note_not_active(e);
      return;
    }
  }
  if (env.type == proto::kAck || env.type == proto::kResponses ||
      (env.type == proto::kError && env.corr != waiting_corr_)) {
    // Messages for a BrokerClient: find it by the ids in the body, or, for
    // an error, by the batch it answers.
    if (env.type == proto::kError) {
      for (auto& kv : clients_)
        if (has_batch(kv.second, env.corr)) {
          deliver(kv.second, r);
          return;
        }
      return;
    }
    Reader peek = env.fields;
    std::string sid(peek.bytes(proto::kMaxNameLength));
    std::string cid(peek.bytes(proto::kMaxNameLength));
    auto it = clients_.find({sid, cid});
    if (it != clients_.end()) deliver(it->second, r);
    return;
  }
  if (env.corr != 0 && env.corr == waiting_corr_) {
    reply_ = std::move(r);
  } else if (env.type == proto::kHelloOk) {
    // The answer to keep_alive's ping: it names the head instance (a new one
    // after a restart: the waiting BrokerClient resumes). A head with an
    // epoch below the highest seen lost its lease: look for the active one.
    proto::HelloOk h;
    if (!proto::decode_hello_ok(env, &h).ok() || h.head_instance.empty()) return;
    if (h.epoch < epoch_) {
      need_failover_ = true;
      return;
    }
    epoch_ = h.epoch;
    instance_ = std::move(h.head_instance);
  }
}

Result<std::string> Transport::probe_instance() {
  auto r =
      call(proto::begin(proto::kPing, next_corr(), 0).finish(), proto::kHelloOk, o_.timeout_ms);
  if (!r.ok()) return r.status();
  proto::HelloOk h;
  ZG_RETURN_IF_ERROR(proto::decode_hello_ok((*r)->env, &h));
  return h.head_instance;
}

Result<std::unique_ptr<Transport::Reply>> Transport::call(zmq::message_t request,
                                                          std::uint32_t expect_type, Millis timeout,
                                                          Millis resend_after) {
  Envelope peek;
  if (!decode_envelope(request.data(), request.size(), &peek).ok())
    return Status::Internal("bad request encoding");
  // Kept for resending: an idempotent request after a silence, and any
  // request a standby refused (not_active: it did nothing with it).
  zmq::message_t copy;
  copy.copy(request);
  waiting_corr_ = peek.corr;
  reply_.reset();
  ZG_RETURN_IF_ERROR(send_raw(request));
  const Clock& clock = SteadyClock::instance();
  Millis start = clock.now_ms();
  Millis deadline = start + timeout;
  Millis sent_at = start;
  Millis next_resend = resend_after > 0 ? start + resend_after : deadline + 1;
  auto resend = [&](Millis within) {
    zmq::message_t again;
    again.copy(copy);
    return send_raw(again, within);
  };
  while (true) {
    while (!reply_) {
      Millis now = clock.now_ms();
      Millis left = deadline - now;
      if (left <= 0) {
        waiting_corr_ = 0;
        ZG_RETURN_IF_ERROR(monitor_->check());
        return Status::Unavailable("the head at " + endpoint_ + " did not answer within " +
                                   format_duration(timeout));
      }
      // Several heads: the one in use fell silent (its pings unanswered) or
      // a standby answered through pump. An idempotent request goes to the
      // active head; another is not sent twice (it may have been done).
      const Millis silent_since = std::max(last_heard_, sent_at);
      if (need_failover_ ||
          (several() && resend_after > 0 && now - silent_since >= kFailoverSilenceMs)) {
        const std::string was = endpoint_ + "/" + instance_;
        ZG_RETURN_IF_ERROR(find_active(deadline));
        waiting_corr_ = peek.corr;
        if (endpoint_ + "/" + instance_ != was) {
          if (resend_after <= 0) {
            waiting_corr_ = 0;
            return Status::Unavailable("the head at " + was.substr(0, was.find('/')) +
                                       " stopped answering before it replied, and the request "
                                       "cannot be sent twice; the active head is now " +
                                       endpoint_);
          }
          ZG_RETURN_IF_ERROR(resend(deadline - clock.now_ms()));
        }
        sent_at = clock.now_ms();
        next_resend = resend_after > 0 ? sent_at + resend_after : deadline + 1;
        continue;
      }
      if (several() && now - silent_since >= 1000 && now - last_ping_ >= 1000) (void)ping();
      if (now >= next_resend) {
        // The head may have restarted and lost the request: it is idempotent.
        // The resend waits for a connection only as long as the call has left.
        ZG_RETURN_IF_ERROR(resend(left));
        next_resend = now + resend_after;
      }
      auto p = pump(std::min<Millis>({left, 100, std::max<Millis>(1, next_resend - now)}));
      if (!p.ok()) return p.status();
    }
    std::unique_ptr<Reply> r = std::move(reply_);
    if (r->env.type == proto::kError) {
      proto::Error e;
      if (!proto::decode_error(r->env, &e).ok()) {
        waiting_corr_ = 0;
        return Status::Protocol("malformed error reply");
      }
      if (e.code == Code::kNotActive) {
        // A standby did nothing with it: ask the active head.
        note_not_active(e);
        ZG_RETURN_IF_ERROR(find_active(deadline));
        waiting_corr_ = peek.corr;
        ZG_RETURN_IF_ERROR(resend(deadline - clock.now_ms()));
        sent_at = clock.now_ms();
        next_resend = resend_after > 0 ? sent_at + resend_after : deadline + 1;
        continue;
      }
      waiting_corr_ = 0;
      return explain(Status(e.code, e.message));
    }
    waiting_corr_ = 0;
    if (r->env.type != expect_type)
      return Status::Protocol(std::string("unexpected reply ") + proto::type_name(r->env.type));
    return r;
  }
}

}  // namespace zgrid::client
