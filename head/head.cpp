#include "head/head.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>

#include "common/codec.hpp"
#include "common/log.hpp"
#include "common/protocol.hpp"
#include "common/util.hpp"
#include "common/zmq_util.hpp"
#include "head/state.hpp"

namespace zgrid::head {

namespace {

constexpr const char* kLog = "head";
constexpr std::string_view kVersionString = "zgrid 0.1 (protocol v1)";

std::string rid_of(const zmq::message_t& m) {
  return std::string(m.data<char>(), m.size());
}

class Head {
 public:
  Head(const HeadOptions& o, const Clock& clock) : o_(o), clock_(clock), ctx_(1) {}

  Status start() {
    if (o_.heartbeat_ms <= 0) return Status::InvalidArgument("--heartbeat must be positive");
    if (o_.heartbeat_misses < 1)
      return Status::InvalidArgument("--heartbeat-misses must be at least 1");
    if (o_.max_retries < 0) return Status::InvalidArgument("--max-retries must be 0 or more");
    if (o_.queue_hwm == 0) return Status::InvalidArgument("--queue-hwm must be at least 1");
    instance_ = random_id64();
    auto f = zmqu::bind_router(ctx_, o_.frontend, &frontend_ep_);
    if (!f.ok()) return f.status();
    frontend_ = std::move(f).value();
    auto b = zmqu::bind_router(ctx_, o_.backend, &backend_ep_);
    if (!b.ok()) return b.status();
    backend_ = std::move(b).value();
    for (const auto* ep : {&o_.frontend, &o_.backend})
      if (zmqu::is_non_loopback(*ep))
        ZG_LOG(kWarn, kLog,
               "WARNING: listening on " + *ep +
                   " without CURVE: anyone who can reach this address can submit, "
                   "read results and register nodes");
    if (!o_.endpoints_file.empty()) {
      std::string tmp = o_.endpoints_file + ".tmp";
      {
        std::ofstream f(tmp);
        f << "frontend=" << frontend_ep_ << "\nbackend=" << backend_ep_ << "\npid=" << getpid()
          << "\n";
        if (!f) return Status::Unavailable("cannot write " + tmp);
      }
      if (std::rename(tmp.c_str(), o_.endpoints_file.c_str()) != 0)
        return Status::Unavailable("cannot write " + o_.endpoints_file);
    }
    ZG_LOG(kInfo, kLog,
           "serving clients on " + frontend_ep_ + " and nodes on " + backend_ep_ + " (instance " +
               instance_ + ")");
    return Status::OK();
  }

  Status run(const std::atomic<bool>& stop) {
    std::vector<zmq::message_t> frames;
    Millis next_tick = 0;
    while (!stop.load()) {
      Millis now = clock_.now_ms();
      if (now >= next_tick) {
        on_tick(now);
        next_tick = now + std::max<Millis>(10, o_.heartbeat_ms / 4);
      }
      Millis timeout = std::max<Millis>(0, next_tick - now);
      if (blocked_out_) timeout = std::min<Millis>(timeout, 2);
      zmq::pollitem_t items[] = {{static_cast<void*>(frontend_), 0, ZMQ_POLLIN, 0},
                                 {static_cast<void*>(backend_), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(std::min<Millis>(timeout, 250)));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        return Status::Internal(std::string("poll failed: ") + e.what());
      }
      now_ = clock_.now_ms();
      // Drain a bounded number of messages per socket per round, so neither
      // side can starve the other and dispatch decisions see whole bursts.
      if (items[1].revents & ZMQ_POLLIN) {
        for (int i = 0; i < 512; ++i) {
          auto rs = zmqu::recv_message(backend_, &frames, proto::kMaxFrames);
          if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) break;
          on_backend(frames, rs);
        }
      }
      if (items[0].revents & ZMQ_POLLIN) {
        for (int i = 0; i < 512; ++i) {
          auto rs = zmqu::recv_message(frontend_, &frames, proto::kMaxFrames);
          if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) break;
          on_frontend(frames, rs);
        }
      }
      dispatch();
      flush_clients();
    }
    ZG_LOG(kInfo, kLog, "stopping");
    return Status::OK();
  }

 private:
  // ---- replies ---------------------------------------------------------------

  void reply(zmq::socket_t& s, const std::string& rid, zmq::message_t body) {
    (void)zmqu::send_routed(s, rid, body);  // a client that left needs no reply
  }
  void reply_client(const std::string& rid, zmq::message_t body) {
    reply(frontend_, rid, std::move(body));
  }
  void reply_error(zmq::socket_t& s, const std::string& rid, std::uint64_t corr, const Status& st) {
    reply(s, rid, proto::encode_error(corr, st));
  }

  // ---- frontend (clients) ----------------------------------------------------

  void on_frontend(std::vector<zmq::message_t>& frames, zmqu::RecvStatus rs) {
    if (frames.empty()) return;
    std::string rid = rid_of(frames[0]);
    if (rs == zmqu::RecvStatus::kTooManyFrames || frames.size() != 2) {
      ++bad_messages_;
      reply_error(frontend_, rid, 0, Status::Protocol("expected exactly one body frame"));
      return;
    }
    Envelope env;
    Status st = decode_envelope(frames[1].data(), frames[1].size(), &env);
    if (st.ok()) st = proto::check_version(env);
    if (!st.ok()) {
      ++bad_messages_;
      reply_error(frontend_, rid, env.corr, st);
      return;
    }
    st = handle_client(rid, env);
    if (!st.ok()) {
      if (st.code() == Code::kProtocol) ++bad_messages_;
      reply_error(frontend_, rid, env.corr, st);
    }
  }

  Status handle_client(const std::string& rid, Envelope& env) {
    switch (env.type) {
      case proto::kHello: {
        Writer w = proto::begin(proto::kHelloOk, env.corr, 2);
        w.str(kVersionString).str(instance_);
        reply_client(rid, w.finish());
        return Status::OK();
      }
      case proto::kPing: {
        proto::ClientRef m;
        if (!env.fields.at_end()) {
          ZG_RETURN_IF_ERROR(proto::decode_client_ref(env, &m));
          touch_client(m.session_id, m.client_id, rid);
        }
        reply_client(rid, proto::encode_ok(env.corr));
        return Status::OK();
      }
      case proto::kCreateSession:
        return on_create_session(rid, env);
      case proto::kAttachSession:
        return on_attach(rid, env);
      case proto::kOpenClient:
        return on_open_client(rid, env);
      case proto::kSend:
        return on_send(rid, env);
      case proto::kFlush: {
        proto::ClientRef m;
        ZG_RETURN_IF_ERROR(proto::decode_client_ref(env, &m));
        Session* s;
        Client* c;
        ZG_RETURN_IF_ERROR(find_client(m.session_id, m.client_id, rid, &s, &c));
        // Interactive requests are eligible as soon as they are acknowledged.
        reply_client(rid, proto::encode_ok(env.corr));
        return Status::OK();
      }
      case proto::kEndRequests:
        return on_end_requests(rid, env);
      case proto::kRespAck: {
        proto::ClientRef m;
        ZG_RETURN_IF_ERROR(proto::decode_client_ref(env, &m));
        Session* s;
        Client* c;
        if (!find_client(m.session_id, m.client_id, rid, &s, &c).ok()) return Status::OK();
        c->unacked_out -= std::min(c->unacked_out, m.value);
        if (!c->out.empty()) blocked_out_ = true;
        return Status::OK();
      }
      case proto::kStatus:
        return on_status(rid, env);
      case proto::kNodes:
        return on_nodes(rid, env);
      case proto::kSessions:
        return on_sessions(rid, env);
      case proto::kClose:
        return on_close(rid, env);
      case proto::kFetch:
        return Status::FailedPrecondition("fetch needs a durable session");
      default:
        return Status::Protocol("unknown message type " + std::to_string(env.type));
    }
  }

  Session* find_session(const std::string& id) {
    auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : it->second.get();
  }

  Status find_client(const std::string& sid, const std::string& cid, const std::string& rid,
                     Session** s, Client** c) {
    *s = find_session(sid);
    if (*s == nullptr) return Status::NotFound("unknown session " + sid);
    auto it = (*s)->client_index.find(cid);
    if (it == (*s)->client_index.end())
      return Status::NotFound("unknown client " + cid + " in session " + sid);
    *c = &(*s)->clients[it->second];
    if ((*c)->removed) return Status::NotFound("client " + cid + " was removed (idle timeout)");
    (*c)->rid = rid;  // a reconnecting client arrives with a new routing id
    (*c)->last_activity = now_;
    (*s)->last_activity = now_;
    return Status::OK();
  }

  void touch_client(const std::string& sid, const std::string& cid, const std::string& rid) {
    Session* s;
    Client* c;
    (void)find_client(sid, cid, rid, &s, &c);
  }

  proto::SessionInfo info_of(const Session& s) {
    return proto::SessionInfo{s.id, s.service, s.durable, s.state};
  }

  Status on_create_session(const std::string& rid, Envelope& env) {
    proto::CreateSession m;
    ZG_RETURN_IF_ERROR(proto::decode_create_session(env, &m));
    if (!valid_name(m.service)) return Status::InvalidArgument("bad service name");
    if (m.durable && o_.data_dir.empty())
      return Status::FailedPrecondition(
          "this head keeps no journal: start it with --data-dir for durable sessions");
    auto s = std::make_unique<Session>();
    s->ordinal = ++next_session_ordinal_;
    s->id = random_id128();
    s->service = m.service;
    s->durable = m.durable;
    s->client_idle_timeout_ms = m.client_idle_timeout_ms
                                    ? static_cast<Millis>(m.client_idle_timeout_ms)
                                    : o_.client_idle_timeout_ms;
    s->created_wall = wall_seconds();
    s->last_activity = now_;
    reply_client(rid, proto::encode_session_info(env.corr, info_of(*s)));
    ZG_LOG(kInfo, kLog,
           "session created session=" + s->id + " service=" + s->service +
               (s->durable ? " durable" : " interactive"));
    by_ordinal_[s->ordinal] = s.get();
    sessions_[s->id] = std::move(s);
    return Status::OK();
  }

  Status on_attach(const std::string& rid, Envelope& env) {
    std::string sid;
    ZG_RETURN_IF_ERROR(proto::decode_query(env, &sid));
    Session* s = find_session(sid);
    if (!s) return Status::NotFound("unknown session " + sid);
    s->last_activity = now_;
    reply_client(rid, proto::encode_session_info(env.corr, info_of(*s)));
    return Status::OK();
  }

  Status on_open_client(const std::string& rid, Envelope& env) {
    proto::OpenClient m;
    ZG_RETURN_IF_ERROR(proto::decode_open_client(env, &m));
    if (!valid_name(m.client_id))
      return Status::InvalidArgument("client id must be 1..64 printable characters");
    Session* s = find_session(m.session_id);
    if (!s) return Status::NotFound("unknown session " + m.session_id);
    auto it = s->client_index.find(m.client_id);
    if (it == s->client_index.end()) {
      if (s->state != proto::SessionState::kOpen)
        return Status::FailedPrecondition("session " + s->id + " is " +
                                          proto::state_name(s->state) + ": no new clients");
      Client c;
      c.id = m.client_id;
      c.rid = rid;
      c.last_activity = now_;
      s->client_index[c.id] = static_cast<std::uint32_t>(s->clients.size());
      s->clients.push_back(std::move(c));
      it = s->client_index.find(m.client_id);
    } else {
      Client& c = s->clients[it->second];
      if (c.removed) return Status::NotFound("client " + c.id + " was removed (idle timeout)");
      // A second live client with the same id is refused; the same client
      // coming back (new connection after its old one went quiet) is not.
      bool live = !c.ended && c.rid != rid && now_ - c.last_activity < kLiveWindowMs;
      if (live)
        return Status::AlreadyExists("client id " + c.id + " is already in use in this session");
      c.rid = rid;
      c.last_activity = now_;
    }
    const Client& c = s->clients[it->second];
    reply_client(rid, proto::encode_client_opened(env.corr, {s->id, c.id, c.acked_seq}));
    return Status::OK();
  }

  Status on_send(const std::string& rid, Envelope& env) {
    proto::Send m;
    ZG_RETURN_IF_ERROR(proto::decode_send(env, &m));
    Session* s;
    Client* c;
    ZG_RETURN_IF_ERROR(
        find_client(std::string(m.session_id), std::string(m.client_id), rid, &s, &c));
    if (c->ended)
      return Status::FailedPrecondition("client " + c->id + " already called EndRequests");
    if (s->state != proto::SessionState::kOpen)
      return Status::FailedPrecondition(std::string("session is ") + proto::state_name(s->state));
    if (m.first_seq > c->acked_seq + 1)
      return Status::InvalidArgument("sequence gap: expected " + std::to_string(c->acked_seq + 1) +
                                     ", got " + std::to_string(m.first_seq));
    proto::Ack ack;
    ack.session_id = s->id;
    ack.client_id = c->id;
    ack.first_seq = m.first_seq;
    ack.count = m.items.size();
    ack.first_request_id = s->next_request_id;
    std::uint32_t cidx = s->client_index[c->id];
    for (std::size_t i = 0; i < m.items.size(); ++i) {
      std::uint64_t seq = m.first_seq + i;
      const proto::SendItem& it = m.items[i];
      std::uint8_t status = proto::kItemOk;
      if (seq <= c->acked_seq)
        status = proto::kItemDuplicate;
      else if (it.payload.size() > proto::kMaxPayload || it.user_data.size() > proto::kMaxUserData)
        status = proto::kItemTooLarge;
      if (status != proto::kItemOk) {
        if (ack.statuses.empty())
          ack.statuses.assign(m.items.size(), static_cast<char>(proto::kItemOk));
        ack.statuses[i] = static_cast<char>(status);
        if (seq > c->acked_seq) c->acked_seq = seq;
        continue;
      }
      Request r;
      r.id = s->next_request_id++;
      r.client = cidx;
      r.user_data.assign(it.user_data);
      r.payload.assign(it.payload);
      s->queue.push_back(std::move(r));
      c->acked_seq = seq;
      ++c->sent;
      ++s->total;
    }
    activate(s);
    // Back-pressure: above the high-water mark the acknowledgement waits, so
    // the client's send window closes and head memory stays bounded.
    if (s->queue.size() > o_.queue_hwm || !c->held_acks.empty()) {
      c->held_acks.push_back({std::move(ack), env.corr});
      held_ack_clients_ = true;
    } else {
      reply_client(rid, proto::encode_ack(env.corr, ack));
    }
    return Status::OK();
  }

  Status on_end_requests(const std::string& rid, Envelope& env) {
    proto::ClientRef m;
    ZG_RETURN_IF_ERROR(proto::decode_client_ref(env, &m));
    Session* s;
    Client* c;
    ZG_RETURN_IF_ERROR(find_client(m.session_id, m.client_id, rid, &s, &c));
    if (m.value != c->acked_seq)
      return Status::FailedPrecondition("EndRequests after sequence " + std::to_string(m.value) +
                                        " but " + std::to_string(c->acked_seq) + " acknowledged");
    if (!c->ended) {
      c->ended = true;
      s->committed += c->sent;
    }
    reply_client(rid, proto::encode_ok(env.corr));
    return Status::OK();
  }

  void write_session_status(Writer& w, const Session& s) {
    std::uint64_t open_clients = 0;
    for (const auto& c : s.clients)
      if (!c.ended && !c.removed) ++open_clients;
    w.map(19);
    w.kv("session_id", s.id).kv("service", s.service).kv_b("durable", s.durable);
    w.kv("state", proto::state_name(s.state));
    w.kv("total", s.total).kv("committed", s.committed).kv("queued", s.queued());
    w.kv("running", s.running).kv("done", s.done).kv("faulted", s.faulted);
    w.kv("removed", s.removed).kv("clients", s.clients.size()).kv("clients_open", open_clients);
    w.kv("clients_removed", s.clients_removed);
    w.kv_i("created", s.created_wall);
    w.kv_b("complete", complete(s));
    w.kv("responses_queued", s.out_pending);
    w.kv_i("idle_ms", now_ - s.last_activity);
    w.kv_i("client_idle_timeout_ms", s.client_idle_timeout_ms);
  }

  static bool complete(const Session& s) {
    for (const auto& c : s.clients)
      if (!c.ended && !c.removed) return false;
    return s.answered() + s.removed >= s.total;
  }

  Status on_status(const std::string& rid, Envelope& env) {
    std::string sid;
    ZG_RETURN_IF_ERROR(proto::decode_query(env, &sid));
    Writer w = proto::begin(proto::kStatusReply, env.corr, 1, 512);
    if (!sid.empty()) {
      Session* s = find_session(sid);
      if (!s) return Status::NotFound("unknown session " + sid);
      write_session_status(w, *s);
    } else {
      std::uint64_t queued = 0, running = 0, workers = 0;
      for (const auto& kv : sessions_) {
        queued += kv.second->queued();
        running += kv.second->running;
      }
      for (const auto& kv : nodes_) workers += kv.second.workers;
      w.map(10);
      w.kv("nodes", nodes_.size()).kv("workers", workers).kv("sessions", sessions_.size());
      w.kv("queued", queued).kv("running", running).kv("done", total_done_);
      w.kv("faulted", total_faulted_).kv("bad_messages", bad_messages_);
      w.kv_f("rate", rate_);
      w.kv("instance", instance_);
    }
    reply_client(rid, w.finish());
    return Status::OK();
  }

  Status on_nodes(const std::string& rid, Envelope& env) {
    Writer w = proto::begin(proto::kNodesReply, env.corr, 1, 256 + nodes_.size() * 256);
    w.array(static_cast<std::uint32_t>(nodes_.size()));
    for (const auto& kv : nodes_) {
      const NodeState& n = kv.second;
      w.map(11);
      w.kv("node_id", n.id).kv("host", n.host).kv("pid", n.pid).kv("workers", n.workers);
      w.kv("capacity", n.capacity).kv("inflight", n.inflight).kv("done", n.done);
      w.kv("faulted", n.faulted);
      w.kv_i("last_heartbeat_ms", now_ - n.last_seen);
      w.kv_i("uptime_ms", now_ - n.joined);
      std::string svcs;
      for (const auto& s : n.services) svcs += (svcs.empty() ? "" : ",") + s;
      w.kv("services", svcs);
    }
    reply_client(rid, w.finish());
    return Status::OK();
  }

  Status on_sessions(const std::string& rid, Envelope& env) {
    Writer w = proto::begin(proto::kSessionsReply, env.corr, 1, 256 + sessions_.size() * 400);
    w.array(static_cast<std::uint32_t>(sessions_.size()));
    for (const auto& kv : sessions_) write_session_status(w, *kv.second);
    reply_client(rid, w.finish());
    return Status::OK();
  }

  Status on_close(const std::string& rid, Envelope& env) {
    proto::Close m;
    ZG_RETURN_IF_ERROR(proto::decode_close(env, &m));
    Session* s = find_session(m.session_id);
    if (!s) return Status::NotFound("unknown session " + m.session_id);
    switch (m.mode) {
      case proto::CloseMode::kSeal:
        if (s->state == proto::SessionState::kOpen) s->state = proto::SessionState::kSealed;
        ZG_LOG(kInfo, kLog, "session sealed session=" + s->id);
        break;
      case proto::CloseMode::kCancel:
        cancel_session(*s);
        break;
      case proto::CloseMode::kPurge:
        ZG_LOG(kInfo, kLog, "session purged session=" + s->id);
        drop_session(s);
        s = nullptr;
        break;
    }
    reply_client(rid, proto::encode_ok(env.corr));
    if (s) maybe_retire(s);
    return Status::OK();
  }

  void cancel_session(Session& s) {
    if (s.state == proto::SessionState::kOpen || s.state == proto::SessionState::kSealed)
      s.state = proto::SessionState::kCancelled;
    while (!s.queue.empty()) {
      Request r = std::move(s.queue.front());
      s.queue.pop_front();
      answer(s, r, "cancelled", "session cancelled before this request ran");
    }
    ZG_LOG(kInfo, kLog, "session cancelled session=" + s.id);
  }

  // Removes a session and everything of it; results arriving later are dropped.
  void drop_session(Session* s) {
    for (auto& c : s->clients) c.held_acks.clear();
    by_ordinal_.erase(s->ordinal);
    sessions_.erase(s->id);  // in-flight entries refer to the ordinal: their results are dropped
  }

  // An interactive session that is sealed (or cancelled) and has delivered
  // everything is done: forget it.
  void maybe_retire(Session* s) {
    if (s->durable || s->state == proto::SessionState::kOpen) return;
    if (!complete(*s) || s->out_pending > 0 || s->running > 0) return;
    for (const auto& c : s->clients)
      if (c.unacked_out > 0) return;
    ZG_LOG(kDebug, kLog, "session retired session=" + s->id);
    drop_session(s);
  }

  // ---- distributor -------------------------------------------------------------

  void activate(Session* s) {
    if (!s->in_active && !s->queue.empty()) {
      s->in_active = true;
      active_.push_back(s->ordinal);
    }
  }

  NodeState* pick_node(const std::string& service, bool need_idle) {
    NodeState* best = nullptr;
    double best_load = 2.0;
    for (auto& kv : nodes_) {
      NodeState& n = kv.second;
      if (n.blocked || n.free() == 0) continue;
      if (need_idle && n.inflight > 0) continue;
      if (std::find(n.services.begin(), n.services.end(), service) == n.services.end()) continue;
      double load = static_cast<double>(n.inflight) / static_cast<double>(n.capacity);
      if (load < best_load) {
        best_load = load;
        best = &n;
      }
    }
    return best;
  }

  // Sends queued work to nodes with free credit: sessions take turns (round
  // robin), each turn goes to the least-loaded node offering the service.
  void dispatch() {
    if (active_.empty() || nodes_.empty()) return;
    bool progress = true;
    while (progress && !active_.empty()) {
      progress = false;
      std::size_t rounds = active_.size();
      for (std::size_t i = 0; i < rounds && !active_.empty(); ++i) {
        std::uint64_t ord = active_.front();
        active_.pop_front();
        auto it = by_ordinal_.find(ord);
        if (it == by_ordinal_.end()) continue;
        Session* s = it->second;
        if (s->queue.empty()) {
          s->in_active = false;
          continue;
        }
        if (s->out_pending > o_.response_queue_max) {
          // Its clients are not reading: pause it until they catch up.
          s->in_active = false;
          paused_ = true;
          continue;
        }
        bool solo = s->queue.front().solo;
        NodeState* n = pick_node(s->service, solo);
        if (n != nullptr) {
          std::uint64_t k =
              solo ? 1 : std::min<std::uint64_t>({n->free(), s->queue.size(), chunk_for(*n)});
          send_tasks(*n, *s, k);
          progress = true;
        }
        active_.push_back(ord);
      }
    }
  }

  std::uint64_t chunk_for(const NodeState& n) const {
    return std::max<std::uint64_t>(1,
                                   std::min<std::uint64_t>(n.capacity / 8 + 1, o_.max_task_batch));
  }

  void send_tasks(NodeState& n, Session& s, std::uint64_t k) {
    std::size_t bytes = 64;
    for (std::uint64_t i = 0; i < k; ++i) bytes += s.queue[i].payload.size() + 12;
    Writer w = proto::begin(proto::kTasks, 0, 2, bytes);
    w.str(s.service).array(static_cast<std::uint32_t>(k));
    std::uint64_t first_task = next_task_id_;
    for (std::uint64_t i = 0; i < k; ++i) {
      Request& r = s.queue[i];
      w.array(2).u64(next_task_id_ + i).bin(r.payload);
    }
    zmq::message_t body = w.finish();
    zmqu::SendStatus st = zmqu::send_routed(backend_, n.rid, body);
    if (st != zmqu::SendStatus::kOk) {
      if (st == zmqu::SendStatus::kWouldBlock) {
        n.blocked = true;  // until it speaks again
      } else {
        lose_node(n.ordinal, "unreachable");
      }
      return;
    }
    next_task_id_ += k;
    for (std::uint64_t i = 0; i < k; ++i) {
      Request r = std::move(s.queue.front());
      s.queue.pop_front();
      ++s.clients[r.client].running;
      inflight_.emplace(first_task + i, InFlight{s.ordinal, n.ordinal, std::move(r)});
    }
    n.inflight += k;
    s.running += k;
  }

  // Records the answer of one request and routes it to its client.
  void answer(Session& s, Request& r, std::string_view fault_code, std::string_view data) {
    Client& c = s.clients[r.client];
    if (c.removed) return;  // removed with its client: the answer is discarded
    if (fault_code.empty()) {
      ++s.done;
      ++c.done;
      ++total_done_;
    } else {
      ++s.faulted;
      ++c.faulted;
      ++total_faulted_;
    }
    c.out.push_back({r.id, std::move(r.user_data), std::string(fault_code), std::string(data)});
    ++s.out_pending;
    blocked_out_ = true;
  }

  // ---- backend (nodes) ---------------------------------------------------------

  void on_backend(std::vector<zmq::message_t>& frames, zmqu::RecvStatus rs) {
    if (frames.empty()) return;
    std::string rid = rid_of(frames[0]);
    auto nit = node_by_rid_.find(rid);
    NodeState* node = nullptr;
    if (nit != node_by_rid_.end()) {
      auto it = nodes_.find(nit->second);
      if (it != nodes_.end()) {
        node = &it->second;
        node->last_seen = now_;
        node->blocked = false;
      }
    }
    if (rs == zmqu::RecvStatus::kTooManyFrames || frames.size() != 2) {
      ++bad_messages_;
      reply_error(backend_, rid, 0, Status::Protocol("expected exactly one body frame"));
      return;
    }
    Envelope env;
    Status st = decode_envelope(frames[1].data(), frames[1].size(), &env);
    if (st.ok()) st = proto::check_version(env);
    if (!st.ok()) {
      ++bad_messages_;
      reply_error(backend_, rid, env.corr, st);
      return;
    }
    switch (env.type) {
      case proto::kRegister: {
        proto::Register m;
        st = proto::decode_register(env, &m);
        if (!st.ok()) break;
        if (!valid_name(m.node_id)) {
          st = Status::InvalidArgument("bad node id");
          break;
        }
        register_node(rid, m);
        proto::Registered r{static_cast<std::uint64_t>(o_.heartbeat_ms),
                            static_cast<std::uint64_t>(o_.heartbeat_misses), instance_};
        reply(backend_, rid, proto::encode_registered(env.corr, r));
        return;
      }
      case proto::kHeartbeat:
        if (!node) st = Status::NotFound("unknown node: register first");
        break;
      case proto::kResults: {
        if (!node) {
          // Its work was re-queued when it was declared dead; it must register again.
          st = Status::NotFound("unknown node: register first");
          break;
        }
        proto::Results m;
        st = proto::decode_results(env, &m);
        if (st.ok()) on_results(*node, m);
        break;
      }
      case proto::kBye:
        if (node) lose_node(node->ordinal, "left");
        return;
      default:
        st = Status::Protocol("unknown message type " + std::to_string(env.type));
    }
    if (!st.ok()) {
      if (st.code() == Code::kProtocol) ++bad_messages_;
      reply_error(backend_, rid, env.corr, st);
    }
  }

  void register_node(const std::string& rid, const proto::Register& m) {
    // The same node id on a new connection replaces the old registration.
    for (auto& kv : nodes_)
      if (kv.second.id == m.node_id) {
        lose_node(kv.first, "re-registered");
        break;
      }
    if (auto it = node_by_rid_.find(rid); it != node_by_rid_.end())
      lose_node(it->second, "re-registered");
    NodeState n;
    n.ordinal = ++next_node_ordinal_;
    n.id = m.node_id;
    n.host = m.host;
    n.rid = rid;
    n.pid = m.pid;
    n.workers = m.workers;
    n.capacity = m.capacity;
    n.services = m.services;
    n.last_seen = now_;
    n.joined = now_;
    node_by_rid_[rid] = n.ordinal;
    ZG_LOG(kInfo, kLog,
           "node joined node=" + n.id + " host=" + n.host +
               " workers=" + std::to_string(n.workers) + " capacity=" + std::to_string(n.capacity));
    nodes_.emplace(n.ordinal, std::move(n));
    // Sessions waiting for a node of their service can go now.
    for (auto& kv : sessions_) activate(kv.second.get());
  }

  void on_results(NodeState& node, proto::Results& m) {
    for (const proto::Result1& r : m.items) {
      auto it = inflight_.find(r.task_id);
      if (it == inflight_.end() || it->second.node != node.ordinal) continue;  // late or foreign
      InFlight f = std::move(it->second);
      inflight_.erase(it);
      --node.inflight;
      if (r.fault_code.empty())
        ++node.done;
      else
        ++node.faulted;
      auto sit = by_ordinal_.find(f.session);
      if (sit == by_ordinal_.end()) continue;  // session purged meanwhile: drop
      Session& s = *sit->second;
      --s.running;
      --s.clients[f.request.client].running;
      if (r.fault_code == "retryable") {
        requeue(s, std::move(f.request), true);
        continue;
      }
      answer(s, f.request, r.fault_code, r.data);
    }
  }

  // Puts a request back at the front of its session's queue (it runs next),
  // or faults it when it has used up its tries.
  void requeue(Session& s, Request r, bool charge) {
    if (charge) ++r.tries;
    if (static_cast<int>(r.tries) > o_.max_retries) {
      ZG_LOG(kWarn, kLog,
             "retry limit reached session=" + s.id + " request=" + std::to_string(r.id));
      answer(s, r, "retry_limit_exceeded",
             "request lost " + std::to_string(r.tries) + " times (max retries " +
                 std::to_string(o_.max_retries) + ")");
      return;
    }
    if (s.state == proto::SessionState::kCancelled) {
      answer(s, r, "cancelled", "session cancelled before this request ran");
      return;
    }
    s.queue.push_front(std::move(r));
    activate(&s);
  }

  // A node died, left or went silent: its in-flight work goes back to the
  // queues. Poison isolation: a crash is charged to a request only when the
  // node held it alone; requests of a lost batch run alone from now on.
  void lose_node(std::uint64_t ordinal, const char* why) {
    auto nit = nodes_.find(ordinal);
    if (nit == nodes_.end()) return;
    NodeState& n = nit->second;
    bool alone = n.inflight == 1;
    std::vector<std::uint64_t> tasks;
    for (const auto& kv : inflight_)
      if (kv.second.node == ordinal) tasks.push_back(kv.first);
    std::sort(tasks.rbegin(), tasks.rend());  // push_front in reverse keeps the order
    for (std::uint64_t t : tasks) {
      auto it = inflight_.find(t);
      InFlight f = std::move(it->second);
      inflight_.erase(it);
      auto sit = by_ordinal_.find(f.session);
      if (sit == by_ordinal_.end()) continue;
      Session& s = *sit->second;
      --s.running;
      --s.clients[f.request.client].running;
      bool graceful = std::string_view(why) == "left";
      if (!graceful && !alone) f.request.solo = true;
      requeue(s, std::move(f.request), !graceful && alone);
    }
    ZG_LOG(kWarn, kLog,
           std::string("node lost node=") + n.id + " host=" + n.host + " reason=" + why +
               " requeued=" + std::to_string(tasks.size()));
    node_by_rid_.erase(n.rid);
    nodes_.erase(nit);
  }

  // ---- clients: responses and held acks -----------------------------------------

  void flush_clients() {
    if (held_ack_clients_) release_acks();
    if (!blocked_out_) return;
    blocked_out_ = false;
    std::vector<Session*> retire;
    for (auto& kv : sessions_) {
      Session& s = *kv.second;
      if (s.out_pending == 0) continue;
      for (auto& c : s.clients) {
        while (!c.out.empty() && c.unacked_out < o_.response_window) {
          std::uint64_t n =
              std::min<std::uint64_t>({c.out.size(), o_.response_window - c.unacked_out, 4096});
          std::size_t bytes = 64;
          for (std::uint64_t i = 0; i < n; ++i)
            bytes += c.out[i].user_data.size() + c.out[i].data.size() + 24;
          Writer w = proto::begin(proto::kResponses, 0, 3, bytes);
          w.str(s.id).str(c.id).array(static_cast<std::uint32_t>(n));
          for (std::uint64_t i = 0; i < n; ++i) {
            const PendingResponse& p = c.out[i];
            proto::write_response_item(w, p.request_id, p.user_data, p.fault_code, p.data);
          }
          zmq::message_t body = w.finish();
          zmqu::SendStatus st = zmqu::send_routed(frontend_, c.rid, body);
          if (st != zmqu::SendStatus::kOk) {
            // Slow (would block) or gone: keep them; the client may come back
            // with a new connection, and idle removal bounds the wait.
            if (st == zmqu::SendStatus::kWouldBlock) blocked_out_ = true;
            break;
          }
          for (std::uint64_t i = 0; i < n; ++i) c.out.pop_front();
          c.unacked_out += n;
          s.out_pending -= n;
        }
      }
      if (s.out_pending <= o_.response_queue_max / 2 && !s.in_active && !s.queue.empty())
        activate(&s);
      if (s.out_pending == 0) retire.push_back(&s);
    }
    for (Session* s : retire) maybe_retire(s);
  }

  void release_acks() {
    held_ack_clients_ = false;
    for (auto& kv : sessions_) {
      Session& s = *kv.second;
      for (auto& c : s.clients) {
        while (!c.held_acks.empty() && s.queue.size() <= o_.queue_hwm) {
          HeldAck& h = c.held_acks.front();
          reply_client(c.rid, proto::encode_ack(h.corr, h.ack));
          c.held_acks.pop_front();
          // Back-pressure is not idleness: the client is waiting on us.
          c.last_activity = now_;
        }
        if (!c.held_acks.empty()) {
          held_ack_clients_ = true;
          c.last_activity = now_;
        }
      }
    }
  }

  // ---- timers ------------------------------------------------------------------

  void on_tick(Millis now) {
    now_ = now;
    // Rate over the last interval, for `zgrid status`.
    if (now - rate_mark_ms_ >= 1000) {
      rate_ = rate_mark_ms_
                  ? 1000.0 * static_cast<double>(total_done_ + total_faulted_ - rate_mark_count_) /
                        static_cast<double>(now - rate_mark_ms_)
                  : 0.0;
      rate_mark_ms_ = now;
      rate_mark_count_ = total_done_ + total_faulted_;
    }
    if (now - last_hb_ms_ >= o_.heartbeat_ms) {
      last_hb_ms_ = now;
      std::vector<std::uint64_t> dead;
      for (auto& kv : nodes_) {
        NodeState& n = kv.second;
        if (now - n.last_seen > o_.heartbeat_ms * o_.heartbeat_misses) {
          dead.push_back(kv.first);
          continue;
        }
        zmq::message_t hb = proto::encode_heartbeat(instance_);
        if (zmqu::send_routed(backend_, n.rid, hb) == zmqu::SendStatus::kUnreachable)
          dead.push_back(kv.first);
      }
      for (std::uint64_t d : dead) lose_node(d, "silent");
      if (!dead.empty()) dispatch();
    }
    sweep_idle(now);
  }

  // Client idle timeout (DESIGN §2): an open client idle past its session's
  // timeout is removed with every request it sent. Idle interactive sessions
  // with no client and no work are closed.
  void sweep_idle(Millis now) {
    std::vector<Session*> drop;
    for (auto& kv : sessions_) {
      Session& s = *kv.second;
      for (std::uint32_t ci = 0; ci < s.clients.size(); ++ci) {
        Client& c = s.clients[ci];
        if (c.ended || c.removed || c.running > 0 || !c.held_acks.empty()) continue;
        if (now - c.last_activity < s.client_idle_timeout_ms) continue;
        remove_client(s, ci);
      }
      bool idle = now - s.last_activity >= o_.session_idle_timeout_ms;
      if (!s.durable && idle && s.queue.empty() && s.running == 0) {
        bool attached = false;
        for (const auto& c : s.clients)
          if (!c.removed && now - c.last_activity < o_.session_idle_timeout_ms) attached = true;
        if (!attached) drop.push_back(&s);
      }
    }
    for (Session* s : drop) {
      ZG_LOG(kInfo, kLog, "idle session closed session=" + s->id);
      drop_session(s);
    }
  }

  void remove_client(Session& s, std::uint32_t ci) {
    Client& c = s.clients[ci];
    std::uint64_t removed = 0;
    std::deque<Request> keep;
    for (auto& r : s.queue) {
      if (r.client == ci)
        ++removed;
      else
        keep.push_back(std::move(r));
    }
    s.queue.swap(keep);
    // Answers already recorded for it are taken back: removed means removed.
    s.done -= c.done;
    s.faulted -= c.faulted;
    s.out_pending -= c.out.size();
    c.out.clear();
    c.removed = true;
    s.removed += c.sent;
    ++s.clients_removed;
    (void)removed;
    ZG_LOG(kWarn, kLog,
           "client removed (idle " + format_duration(s.client_idle_timeout_ms) + ") session=" +
               s.id + " client=" + c.id + " requests_removed=" + std::to_string(c.sent));
  }

  const HeadOptions o_;
  const Clock& clock_;
  zmq::context_t ctx_;
  zmq::socket_t frontend_, backend_;
  std::string frontend_ep_, backend_ep_, instance_;
  Millis now_ = 0;

  std::unordered_map<std::string, std::unique_ptr<Session>> sessions_;
  std::unordered_map<std::uint64_t, Session*> by_ordinal_;
  std::deque<std::uint64_t> active_;  // sessions with queued work, round robin
  std::map<std::uint64_t, NodeState> nodes_;
  std::unordered_map<std::string, std::uint64_t> node_by_rid_;
  std::unordered_map<std::uint64_t, InFlight> inflight_;

  std::uint64_t next_session_ordinal_ = 0, next_node_ordinal_ = 0, next_task_id_ = 1;
  std::uint64_t total_done_ = 0, total_faulted_ = 0, bad_messages_ = 0;
  bool blocked_out_ = false, held_ack_clients_ = false, paused_ = false;
  Millis last_hb_ms_ = 0, rate_mark_ms_ = 0;
  std::uint64_t rate_mark_count_ = 0;
  double rate_ = 0;

  static constexpr Millis kLiveWindowMs = 10'000;
};

}  // namespace

Status run_head(const HeadOptions& options, const std::atomic<bool>& stop, const Clock& clock) {
  try {
    Head head(options, clock);
    ZG_RETURN_IF_ERROR(head.start());
    return head.run(stop);
  } catch (const zmq::error_t& e) {
    return Status::Internal(std::string("ZeroMQ: ") + e.what());
  }
}

}  // namespace zgrid::head
