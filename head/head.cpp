// The head's reactor: one thread that owns both ROUTER sockets and polls
// them, the journal's completions and the accept monitors; drains a bounded
// number of messages per socket per round and hands each to the rooms'
// entries; serves as a standby until it holds the lease; runs the tick and
// publishes the snapshot. The rooms, their wiring, the dispatch round and
// the tick's work are in head/rooms.hpp (HeadRooms), which the in-process
// tests run too (docs/architecture.md, "The head's rooms").
#include "head/head.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "common/codec.hpp"
#include "common/log.hpp"
#include "common/protocol.hpp"
#include "common/util.hpp"
#include "common/zmq_util.hpp"
#include "head/context.hpp"
#include "head/descriptors.hpp"
#include "head/durable.hpp"
#include "head/http.hpp"
#include "head/journal.hpp"
#include "head/lease.hpp"
#include "head/lifecycle.hpp"
#include "head/node_table.hpp"
#include "head/rooms.hpp"
#include "head/security.hpp"
#include "head/session_table.hpp"
#include "head/snapshot.hpp"
#include "head/status_rows.hpp"

namespace zgrid::head {

namespace {

constexpr const char* kLog = "head";

std::string rid_of(const zmq::message_t& m) {
  return std::string(m.data<char>(), m.size());
}

class Head {
 public:
  Head(const HeadOptions& o, const Clock& clock)
      : clock_(clock),
        zmq_(1),
        rooms_(o, zmq_,
               HeadIo{[this](const std::string& rid, zmq::message_t& body) {
                        return zmqu::send_routed(backend_, rid, body);
                      },
                      [this](const std::string& rid, zmq::message_t& body) {
                        return zmqu::send_routed(frontend_, rid, body);
                      }}) {}

  Status start() {
    ZG_RETURN_IF_ERROR(Validate(o_));
    ctx_.instance = random_id64();
    ctx_.now = clock_.now_ms();
    fd_limit_ = raise_fd_limit();
    ZG_LOG(kInfo, kLog,
           "file descriptors: limit " + std::to_string(fd_limit_.soft) +
               (fd_limit_.before < fd_limit_.soft
                    ? " (raised from " + std::to_string(fd_limit_.before) + ")"
                    : std::string(fd_limit_.soft < fd_limit_.hard ? "" : " (the hard limit)")));
    // Keys and the ZAP handler before anything binds (docs/security.md).
    ZG_RETURN_IF_ERROR(security_.start());
    // The lease of the data directory (head/lease.hpp): whether this head is
    // active or a standby is known after binding (the lease names where the
    // active head serves).
    if (!o_.data_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(o_.data_dir, ec);
      if (ec)
        return Status::Unavailable("cannot create data directory " + o_.data_dir + ": " +
                                   ec.message());
      LeaseOptions lo{o_.lease_renew_ms, o_.lease_timeout_ms,
                      std::clamp<Millis>(o_.lease_timeout_ms / 20, 10, 100)};
      auto l = Lease::open(o_.data_dir, lo, self_record());
      if (!l.ok()) return l.status();
      lease_ = std::move(l).value();
    }
    zmqu::SocketOptions fo, bo;
    for (auto* so : {&fo, &bo})
      so->handshake_ivl_ms = static_cast<int>(std::min<Millis>(o_.handshake_timeout_ms, 3'600'000));
    // Nodes come in bursts (a cluster job starting 10,000 of them): with
    // libzmq's accept queue of 100, the kernel dropped the SYNs past it and
    // those nodes waited out TCP's retransmission backoff (1, 3, 7, 15 s),
    // so registering 10,000 took 9 to 33 s. A deeper queue, within the
    // descriptor guard's headroom (an eighth of the limit: below).
    bo.backlog = static_cast<int>(std::clamp<std::uint64_t>(fd_limit_.soft / 16, 100, 4096));
    security_.apply(&fo, &bo);
    auto f = zmqu::bind_router(zmq_, o_.frontend, &frontend_ep_, fo);
    if (!f.ok()) return f.status();
    frontend_ = std::move(f).value();
    auto b = zmqu::bind_router(zmq_, o_.backend, &backend_ep_, bo);
    if (!b.ok()) return b.status();
    backend_ = std::move(b).value();
    // Idle connections must not take the descriptors the journal and the
    // connected peers need (head/descriptors.hpp).
    guard_ = std::make_unique<ListenGuard>(std::vector<std::string>{frontend_ep_, backend_ep_},
                                           fd_limit_.soft, o_.handshake_timeout_ms);
    ZG_RETURN_IF_ERROR(watch_accepts(frontend_, accept_monitors_[0]));
    ZG_RETURN_IF_ERROR(watch_accepts(backend_, accept_monitors_[1], ZMQ_EVENT_DISCONNECTED));
    if (security_.curve()) {
      ZG_RETURN_IF_ERROR(security_.self_test(frontend_, frontend_ep_));
    } else {
      for (const auto* ep : {&o_.frontend, &o_.backend}) {
        if (zmqu::is_non_loopback(*ep))
          ZG_LOG(kWarn, kLog,
                 "WARNING: listening on " + *ep +
                     " WITHOUT CURVE: anyone who can reach this address can submit work, read "
                     "every result and register nodes. Use --curve-secret (docs/security.md)");
        else if (ep->rfind("tcp://", 0) == 0)
          ZG_LOG(kInfo, kLog,
                 "listening on loopback " + *ep +
                     " without CURVE: every user of this host can reach it (on a shared host use "
                     "CURVE or an ipc:// endpoint in a private directory)");
      }
    }
    ZG_RETURN_IF_ERROR(start_http());
    if (lease_) {
      lease_->set_self(self_record());
      ctx_.role = "standby";
      auto p = lease_->poll();
      if (!p.ok()) return p.status();
      if (*p == Lease::Poll::kActive) {
        ZG_RETURN_IF_ERROR(become_active());
      } else {
        note_holder();
        LeaseRecord h = lease_->holder();
        ZG_LOG(kInfo, kLog,
               "standby for " + o_.data_dir + ": the lease (epoch " + std::to_string(h.epoch) +
                   ") is held by " + (h.host.empty() ? std::string("a head") : h.host) + " PID " +
                   std::to_string(h.pid) + " serving " + h.frontend +
                   "; taking over when it goes unrenewed for " +
                   format_duration(o_.lease_timeout_ms));
      }
    }
    ZG_RETURN_IF_ERROR(write_endpoints_file());
    ZG_LOG(kInfo, kLog,
           "options: heartbeat=" + format_duration(o_.heartbeat_ms) +
               " heartbeat-misses=" + std::to_string(o_.heartbeat_misses) +
               " client-idle-timeout=" + format_duration(o_.client_idle_timeout_ms) +
               " session-idle-timeout=" + format_duration(o_.session_idle_timeout_ms) +
               " task-timeout=" + format_duration(o_.task_timeout_ms) + " max-retries=" +
               std::to_string(o_.max_retries) + " queue-hwm=" + std::to_string(o_.queue_hwm));
    ZG_LOG(kInfo, kLog,
           std::string(lease_ && !active_ ? "standby: answering" : "serving") + " clients on " +
               frontend_ep_ + " and nodes on " + backend_ep_ +
               (durable_.enabled() ? " with journal in " + o_.data_dir
                : lease_           ? " (journal in " + o_.data_dir + " once active)"
                                   : std::string(" (no journal)")) +
               " (instance " + ctx_.instance + ")");
    return Status::OK();
  }

  // ---- failover (head/lease.hpp) ------------------------------------------------

  // Where this head serves, as others should reach it: a wildcard address
  // becomes this machine's name.
  static std::string advertised(const std::string& ep) {
    for (const char* any : {"://0.0.0.0:", "://*:", "://[::]:"}) {
      auto p = ep.find(any);
      if (p != std::string::npos)
        return ep.substr(0, p + 3) + hostname() + ep.substr(p + std::strlen(any) - 1);
    }
    return ep;
  }

  LeaseRecord self_record() const {
    LeaseRecord r;
    r.instance = ctx_.instance;
    r.host = hostname();
    r.boot_id = boot_id();
    r.pid_ns = pid_namespace();
    r.pid = static_cast<std::uint64_t>(getpid());
    r.frontend = frontend_ep_.empty() ? "" : advertised(frontend_ep_);
    r.backend = backend_ep_.empty() ? "" : advertised(backend_ep_);
    r.http = ctx_.dashboard_url;
    return r;
  }

  // A standby's view of the active head, for its not_active answers and
  // its status: none while the holder's lease is unrenewed or released.
  void note_holder() {
    LeaseRecord h = lease_->holder();
    bool live = !h.released && lease_->holder_silent_ms() < o_.lease_timeout_ms;
    ctx_.epoch = lease_->epoch();
    ctx_.active_frontend = live ? h.frontend : "";
    active_backend_ = live ? h.backend : "";
  }

  // This head holds the lease: recover the journal and serve.
  Status become_active() {
    active_ = true;
    ctx_.role = "active";
    ctx_.epoch = lease_->epoch();
    ctx_.active_frontend = advertised(frontend_ep_);
    LeaseRecord before = lease_->holder();
    bool took_over = lease_->took_over();
    ctx_.takeovers = took_over ? 1 : 0;
    Millis t0 = clock_.now_ms();
    ZG_RETURN_IF_ERROR(open_journal());
    ctx_.now = clock_.now_ms();
    ctx_.serving_since = ctx_.now;  // nodes register again from now
    std::string line =
        "active: holding the lease of " + o_.data_dir + " at epoch " + std::to_string(ctx_.epoch) +
        (took_over ? ", taken over from " + before.host + " PID " + std::to_string(before.pid) +
                         " (epoch " + std::to_string(before.epoch) + ", unrenewed for " +
                         format_duration(lease_->holder_silent_ms()) + ")"
                   : std::string()) +
        "; journal recovered in " + format_duration(ctx_.now - t0);
    ZG_LOG(kInfo, kLog, line);
    if (took_over) ctx_.event("takeover", "head", line);
    return write_endpoints_file();
  }

  // The fence, checked before each round: a head whose lease ran out (it
  // was frozen, or its disk stalled) renews it if no other head claimed it
  // meanwhile; one whose lease another head claimed stops here, before it
  // handles anything — the journal refuses its writes as well.
  void check_lease() {
    if (!lease_ || !active_ || lease_->ensure_valid()) return;
    ZG_LOG(kError, kLog,
           "standing down: " + lease_->lost_reason() + "; epoch " + std::to_string(ctx_.epoch) +
               " of " + o_.data_dir + " is no longer this head's, which exits without writing");
    std::_Exit(2);  // no destructor, no flush, no goodbye: nothing may reach the disk
  }

  Status write_endpoints_file() {
    if (o_.endpoints_file.empty()) return Status::OK();
    std::string tmp = o_.endpoints_file + ".tmp";
    {
      std::ofstream f(tmp);
      f << "frontend=" << frontend_ep_ << "\nbackend=" << backend_ep_ << "\npid=" << getpid()
        << "\nrole=" << ctx_.role << "\nepoch=" << ctx_.epoch << "\n";
      if (!ctx_.dashboard_url.empty()) f << "http=" << ctx_.dashboard_url << "\n";
      if (!f) return Status::Unavailable("cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), o_.endpoints_file.c_str()) != 0)
      return Status::Unavailable("cannot write " + o_.endpoints_file);
    return Status::OK();
  }

  // A standby serves until it takes over: status (the grid, its role) to
  // clients, not_active to everything else, naming the active head.
  Status run_standby(const std::atomic<bool>& stop) {
    std::vector<zmq::message_t> frames;
    const Millis poll_ms = lease_->options().poll_ms;
    Millis next_poll = 0, last_error_log = -60'000;
    while (!stop.load()) {
      Millis now = clock_.now_ms();
      ctx_.now = now;
      if (now >= next_poll) {
        // A claim waiting out a racing renewal (head/lease.hpp) whose epoch
        // was taken meanwhile: nothing was written; stand down.
        if (lease_->held() && !lease_->ensure_valid()) {
          active_ = true;  // so check_lease stands down
          check_lease();
        }
        if (!security_.zap_alive())
          return Status::Internal(
              "the ZAP handler stopped: refusing to serve without authentication");
        security_.maybe_reload_keys();
        auto p = lease_->poll();
        if (!p.ok() && now - last_error_log >= 60'000) {
          ZG_LOG(kWarn, kLog, "standby: cannot read the lease: " + p.status().message());
          last_error_log = now;
        }
        if (p.ok() && *p == Lease::Poll::kActive) return become_active();
        note_holder();
        if (guard_) guard_->tick(now);
        snapshots_.tick({ctx_, sessions_, nodes_, durable_, security_}, ctx_.observed, now);
        next_poll = now + poll_ms;
      }
      zmq::pollitem_t items[] = {{static_cast<void*>(frontend_), 0, ZMQ_POLLIN, 0},
                                 {static_cast<void*>(backend_), 0, ZMQ_POLLIN, 0},
                                 {static_cast<void*>(accept_monitors_[0]), 0, ZMQ_POLLIN, 0},
                                 {static_cast<void*>(accept_monitors_[1]), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 4, std::chrono::milliseconds(std::max<Millis>(0, next_poll - now)));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        return Status::Internal(std::string("poll failed: ") + e.what());
      }
      ctx_.now = clock_.now_ms();
      if ((items[2].revents | items[3].revents) & ZMQ_POLLIN) on_accept_events();
      for (int side = 0; side < 2; ++side) {
        if (!(items[side].revents & ZMQ_POLLIN)) continue;
        zmq::socket_t& sock = side == 0 ? frontend_ : backend_;
        for (int i = 0; i < 512; ++i) {
          auto rs = zmqu::recv_message(sock, &frames, proto::kMaxFrames);
          if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) break;
          standby_answer(sock, side == 0, frames, rs);
        }
      }
    }
    return Status::OK();
  }

  void standby_answer(zmq::socket_t& sock, bool client, std::vector<zmq::message_t>& frames,
                      zmqu::RecvStatus rs) {
    if (frames.empty()) return;
    if (security_.curve() && zmqu::user_id(frames.back()).empty()) return;  // not admitted
    std::string rid = rid_of(frames[0]);
    std::uint64_t& bad =
        client ? ctx_.observed.bad_client_messages : ctx_.observed.bad_node_messages;
    if (rs == zmqu::RecvStatus::kTooManyFrames || frames.size() != 2) {
      rooms_.bad_message(bad);
      if (rooms_.error_budget(rid))
        reply_error(sock, rid, 0, Status::Protocol("expected exactly one body frame"));
      return;
    }
    Envelope env;
    Status st = decode_envelope(frames[1].data(), frames[1].size(), &env);
    if (st.ok()) st = proto::check_version(env);
    if (!st.ok()) {
      rooms_.bad_message(bad);
      if (rooms_.error_budget(rid)) reply_error(sock, rid, env.corr, st);
      return;
    }
    if (!client && env.type == proto::kBye) return;
    if (client && env.type == proto::kStatus) {
      std::string sid;
      if (proto::decode_query(env, &sid).ok() && sid.empty()) {
        reply(sock, rid,
              proto::encode_grid_status(env.corr,
                                        grid_row({ctx_, sessions_, nodes_, durable_, security_})));
        return;
      }
    }
    std::string msg =
        "this head is a standby (lease epoch " + std::to_string(ctx_.epoch) + "): " +
        (ctx_.active_frontend.empty()
             ? std::string("no head is active yet (a takeover is under way)")
             : "the active head is " + (client ? ctx_.active_frontend : active_backend_));
    reply(
        sock, rid,
        proto::encode_not_active(env.corr, msg, ctx_.epoch, ctx_.active_frontend, active_backend_));
  }

  // The HTTP listener: off, the default (another port when it is taken), or
  // a given endpoint that must bind. CURVE grids ask a bearer token.
  Status start_http() {
    if (o_.http == "off") return Status::OK();
    HttpConfig hc;
    hc.endpoint = o_.http;
    hc.fallback_to_ephemeral = !o_.http_given;
    // Connections waiting for their request hold a descriptor each: a
    // sixteenth of the limit at most, so a flood of them never takes the
    // descriptors the nodes and the journal need (head/descriptors.hpp).
    hc.max_connections =
        static_cast<std::size_t>(std::clamp<std::uint64_t>(fd_limit_.soft / 16, 16, 1024));
    if (!o_.http_token_file.empty()) {
      auto t = read_token_file(o_.http_token_file);
      if (!t.ok()) return t.status();
      hc.token = *t;
    } else if (security_.curve()) {
      if (o_.http_given)
        return Status::InvalidArgument(
            "--http with CURVE needs --http-token FILE (the HTTP API shows sessions and nodes)");
      ZG_LOG(kWarn, kLog,
             "no HTTP listener: with CURVE the dashboard and /metrics need --http-token FILE");
      return Status::OK();
    }
    http_ = std::make_unique<HttpServer>(snapshots_.box(), clock_);
    auto url = http_->start(hc);
    if (!url.ok()) return url.status();
    ctx_.dashboard_url = *url;
    return Status::OK();
  }

  // A PAIR that hears of every connection the ROUTER accepts (or fails to):
  // the descriptor guard counts on each burst (head/descriptors.hpp).
  // On the node port it hears of closed connections too: a node whose
  // connection closed (a crash) is lost at once rather than after its
  // missed heartbeats (HeadRooms::on_node_disconnected).
  Status watch_accepts(zmq::socket_t& router, zmq::socket_t& pair, int more_events = 0) {
    std::string ep = "inproc://zgrid-accepts-" + std::to_string(accept_monitor_seq_++);
    if (zmq_socket_monitor(router.handle(), ep.c_str(),
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_ACCEPT_FAILED | more_events) != 0)
      return Status::Internal(std::string("zmq_socket_monitor: ") + zmq_strerror(zmq_errno()));
    pair = zmq::socket_t(zmq_, zmq::socket_type::pair);
    pair.set(zmq::sockopt::linger, 0);
    pair.connect(ep);
    return Status::OK();
  }

  void on_accept_events() {
    bool any = false;
    for (int side = 0; side < 2; ++side) {
      for (int i = 0; i < 4096; ++i) {
        zmq::message_t ev;
        if (!accept_monitors_[side].recv(ev, zmq::recv_flags::dontwait)) break;
        // [event: u16, value: u32] (the descriptor), then the endpoint.
        std::uint16_t event = 0;
        std::uint32_t fd = 0;
        if (ev.size() >= 6) {
          std::memcpy(&event, ev.data(), sizeof event);
          std::memcpy(&fd, static_cast<const char*>(ev.data()) + 2, sizeof fd);
        }
        while (ev.more()) (void)accept_monitors_[side].recv(ev, zmq::recv_flags::dontwait);
        if (event == ZMQ_EVENT_DISCONNECTED) {
          if (side == 1) rooms_.on_node_disconnected(static_cast<int>(fd), ctx_.now);
          continue;
        }
        any = true;
      }
    }
    if (any && guard_) guard_->on_accepted(ctx_.now);
  }

  Status run(const std::atomic<bool>& stop) {
    if (lease_ && !active_) {
      ZG_RETURN_IF_ERROR(run_standby(stop));
      if (!active_) return Status::OK();  // stopped while a standby
    }
    std::vector<zmq::message_t> frames;
    Millis next_tick = 0;
    if (!lease_) ctx_.serving_since = clock_.now_ms();
    while (!stop.load()) {
      check_lease();
      Millis now = clock_.now_ms();
      if (now >= next_tick) {
        if (!security_.zap_alive())
          return Status::Internal(
              "the ZAP handler stopped: refusing to serve without authentication");
        security_.maybe_reload_keys();
        ZG_RETURN_IF_ERROR(on_tick(now));
        next_tick = now + std::max<Millis>(10, std::min<Millis>(o_.heartbeat_ms / 4, 250));
      }
      Millis timeout = std::max<Millis>(0, next_tick - now);
      if (rooms_.outbox.responses_pending()) timeout = std::min<Millis>(timeout, 2);
      if (rooms_.acks_held()) timeout = std::min<Millis>(timeout, AckHold::kHoldMs);
      zmq::socket_t* completions = durable_.enabled() ? durable_.completion_socket() : nullptr;
      zmq::pollitem_t items[] = {
          {static_cast<void*>(frontend_), 0, ZMQ_POLLIN, 0},
          {static_cast<void*>(backend_), 0, ZMQ_POLLIN, 0},
          {static_cast<void*>(accept_monitors_[0]), 0, ZMQ_POLLIN, 0},
          {static_cast<void*>(accept_monitors_[1]), 0, ZMQ_POLLIN, 0},
          {completions ? static_cast<void*>(*completions) : nullptr, 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, completions ? 5 : 4, std::chrono::milliseconds(timeout));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        return Status::Internal(std::string("poll failed: ") + e.what());
      }
      check_lease();
      ctx_.now = clock_.now_ms();
      if ((items[2].revents | items[3].revents) & ZMQ_POLLIN) on_accept_events();
      if (completions && (items[4].revents & ZMQ_POLLIN)) rooms_.on_journal_completions();
      // Drain a bounded number of messages per socket per round, so neither
      // side can starve the other and dispatch decisions see whole bursts.
      if (items[1].revents & ZMQ_POLLIN) {
        for (int i = 0; i < 512; ++i) {
          auto rs = zmqu::recv_message(backend_, &frames, proto::kMaxFrames);
          if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) break;
          (void)rooms_.on_node(frames, rs);  // an error was replied
        }
      }
      if (items[0].revents & ZMQ_POLLIN) {
        rooms_.defer_client_replies();
        for (int i = 0; i < 512; ++i) {
          auto rs = zmqu::recv_message(frontend_, &frames, proto::kMaxFrames);
          if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) break;
          (void)rooms_.on_client(frames, rs);  // an error was replied
        }
      }
      rooms_.finish_round();
    }
    ZG_LOG(kInfo, kLog, "stopping");
    // Tell the nodes, so they reconnect (with backoff) instead of waiting
    // out their missed heartbeats.
    rooms_.bye_nodes();
    if (durable_.enabled()) {
      // Let what was submitted reach the disk before the journal closes.
      check_lease();
      lifecycle_.flush_answers();
      durable_.close();
    }
    return Status::OK();
  }

  // A clean stop (or a failed start) hands the lease on: a standby takes
  // over at once instead of after the lease timeout.
  void release_lease() {
    if (!lease_) return;
    // Every writer stops first (the journal's threads, LevelDB's), on every
    // way out of run(): the standby writes the moment it reads "released".
    durable_.close();
    lease_->release();
  }

 private:
  Status open_journal() {
    Millis t0 = clock_.now_ms();
    Lease* l = lease_.get();
    // A head taken over may still have a write in flight (head/journal.hpp).
    constexpr std::uint64_t kTakeoverGap = 64ull << 20;
    ZG_RETURN_IF_ERROR(rooms_.open_journal(
        zmq_, [l] { return !l || l->ensure_valid(); }, [l] { return !l || l->confirm(); },
        l && l->stale_writer_possible() ? kTakeoverGap : 0));
    std::uint64_t reqs = 0;
    for (auto& kv : sessions_.all()) reqs += kv.second->total();
    ZG_LOG(kInfo, kLog,
           "journal recovered: " + std::to_string(sessions_.size()) + " sessions, " +
               std::to_string(reqs) + " requests in " + format_duration(clock_.now_ms() - t0));
    return Status::OK();
  }

  void reply(zmq::socket_t& s, const std::string& rid, zmq::message_t body) {
    (void)zmqu::send_routed(s, rid, body);  // a peer that left needs no reply
  }
  void reply_error(zmq::socket_t& s, const std::string& rid, std::uint64_t corr, const Status& st) {
    reply(s, rid, proto::encode_error(corr, st));
  }

  // ---- timers -----------------------------------------------------------------

  Status on_tick(Millis now) {
    if (guard_) guard_->tick(now);
    ZG_RETURN_IF_ERROR(rooms_.tick(now));
    snapshots_.tick({ctx_, sessions_, nodes_, durable_, security_}, ctx_.observed, now);
    return Status::OK();
  }

  const Clock& clock_;
  zmq::context_t zmq_;
  zmq::socket_t frontend_, backend_;
  std::string frontend_ep_, backend_ep_;
  FdLimit fd_limit_;
  std::unique_ptr<ListenGuard> guard_;  // closes the ports while descriptors are short
  zmq::socket_t accept_monitors_[2];    // connections accepted on frontend, backend
  int accept_monitor_seq_ = 0;
  std::unique_ptr<Lease> lease_;  // with --data-dir: which head of the directory is active
  bool active_ = false;           // holds the lease (always false without --data-dir)
  std::string active_backend_;    // a standby's view of the active head's node endpoint

  // The rooms, wired as the in-process tests wire them (head/rooms.hpp):
  // what they send goes out on the two ROUTER sockets.
  HeadRooms rooms_;
  HeadContext& ctx_ = rooms_.ctx;
  const HeadOptions& o_ = ctx_.o;
  Security& security_ = rooms_.security;
  SessionTable& sessions_ = rooms_.sessions;
  NodeTable& nodes_ = rooms_.nodes;
  Durable& durable_ = rooms_.durable;
  Lifecycle& lifecycle_ = rooms_.lifecycle;
  // What the outside sees: published each tick while someone looks.
  SnapshotPublisher snapshots_{std::make_shared<SnapshotBox>()};
  std::unique_ptr<HttpServer> http_;  // after snapshots_: stopped before it goes
};

}  // namespace

Status purge_offline(const HeadOptions& o, const std::string& sid) {
  if (!std::filesystem::exists(o.data_dir + "/journal/CURRENT"))
    return Status::NotFound("no journal in " + o.data_dir);
  LeaseOptions lo{o.lease_renew_ms, o.lease_timeout_ms,
                  std::clamp<Millis>(o.lease_timeout_ms / 20, 10, 100)};
  LeaseRecord self;
  self.instance = random_id64();
  self.host = hostname();
  self.boot_id = boot_id();
  self.pid_ns = pid_namespace();
  self.pid = static_cast<std::uint64_t>(getpid());
  auto l = Lease::open(o.data_dir, lo, self);
  if (!l.ok()) return l.status();
  Lease& lease = **l;
  // A head that died left its lease: it runs out after the timeout. One
  // that renews it is running.
  Millis deadline = boottime_ms() + o.lease_timeout_ms + 2 * o.lease_renew_ms + 500;
  while (true) {
    auto p = lease.poll();
    if (!p.ok()) return p.status();
    if (*p == Lease::Poll::kActive) break;
    if (boottime_ms() >= deadline) {
      LeaseRecord h = lease.holder();
      return Status::Unavailable("data directory " + o.data_dir + " is in use by a running head (" +
                                 h.host + " PID " + std::to_string(h.pid) + ", lease epoch " +
                                 std::to_string(h.epoch) + "): stop it first");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(lo.poll_ms));
  }
  Status st = Journal::purge_offline(o.data_dir, sid, [&lease] { return lease.ensure_valid(); });
  lease.release();
  return st;
}

Status run_head(const HeadOptions& options, const std::atomic<bool>& stop, const Clock& clock) {
  try {
    Head head(options, clock);
    Status st = head.start();
    if (st.ok()) st = head.run(stop);
    head.release_lease();
    return st;
  } catch (const zmq::error_t& e) {
    return Status::Internal(std::string("ZeroMQ: ") + e.what());
  }
}

}  // namespace zgrid::head
