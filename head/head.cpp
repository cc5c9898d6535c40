#include "head/head.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <queue>
#include <set>

#include "common/cli.hpp"
#include "common/codec.hpp"
#include "common/curve.hpp"
#include "common/log.hpp"
#include "common/protocol.hpp"
#include "common/service_spec.hpp"
#include "common/util.hpp"
#include "common/zmq_util.hpp"
#include "head/auth.hpp"
#include "head/batch_loader.hpp"
#include "head/descriptors.hpp"
#include "head/distributor.hpp"
#include "head/fetch.hpp"
#include "head/inflight_table.hpp"
#include "head/journal.hpp"
#include "head/node_table.hpp"
#include "head/outbox.hpp"
#include "head/recovery.hpp"
#include "head/security.hpp"
#include "head/session_table.hpp"
#include "head/state.hpp"

namespace zgrid::head {

namespace {

constexpr const char* kLog = "head";
constexpr std::string_view kVersionString = "zgrid 0.1 (protocol v1)";

std::string rid_of(const zmq::message_t& m) {
  return std::string(m.data<char>(), m.size());
}

// Test crash points (docs/architecture.md, "Recovery"): ZGRID_CRASH_POINT=NAME:N
// makes the head SIGKILL itself the N-th time it reaches NAME.
struct CrashPoint {
  std::string name;
  long count = -1;
  void parse(const std::string& s) {
    if (s.empty()) return;
    auto colon = s.find(':');
    name = s.substr(0, colon);
    count = colon == std::string::npos ? 1 : std::strtol(s.c_str() + colon + 1, nullptr, 10);
  }
  void reach(const char* point) {
    if (count <= 0 || name != point) return;
    if (--count == 0) {
      ZG_LOG(kWarn, kLog, std::string("crash point ") + point + " reached: SIGKILL");
      ::kill(getpid(), SIGKILL);
    }
  }
};

// A response on its way to the journal (durable sessions).
struct Answer {
  Request request;  // kept to run it again if the record is not written
  bool ok = true;   // no fault
};

// A session's durable answers of one reactor round: the requests, and their
// response items already encoded as the record's value (an array whose 5-byte
// header gets the count when the record is written).
struct AnswerRound {
  std::vector<Answer> list;
  Writer items{4096};
  std::size_t count_at = items.array32_placeholder();
};

// One client message being handled: who sent it, and what. Handlers take it
// explicitly (nothing about the message being handled lives in Head).
struct Call {
  const std::string& rid;       // routing id of the connection it came on
  const std::string& peer_key;  // with CURVE: the key it proved it holds (Z85); else empty
  const zmq::message_t& frame;  // the body as received (a durable batch is journaled as is)
  Envelope& env;                // decoded; its fields are read by the handler
};

class Head {
 public:
  Head(const HeadOptions& o, const Clock& clock) : o_(o), clock_(clock), ctx_(1) {
    crash_.parse(o.hooks.crash_point);
  }

  Status start() {
    ZG_RETURN_IF_ERROR(Validate(o_));
    instance_ = random_id64();
    now_ = clock_.now_ms();
    fd_limit_ = raise_fd_limit();
    ZG_LOG(kInfo, kLog,
           "file descriptors: limit " + std::to_string(fd_limit_.soft) +
               (fd_limit_.before < fd_limit_.soft
                    ? " (raised from " + std::to_string(fd_limit_.before) + ")"
                    : std::string(fd_limit_.soft < fd_limit_.hard ? "" : " (the hard limit)")));
    // Keys and the ZAP handler before anything binds (docs/security.md).
    ZG_RETURN_IF_ERROR(security_.start());
    curve_ = security_.curve();
    // The journal first: a data directory in use is the clearer error.
    if (!o_.data_dir.empty()) ZG_RETURN_IF_ERROR(open_journal());
    zmqu::SocketOptions fo, bo;
    for (auto* so : {&fo, &bo})
      so->handshake_ivl_ms = static_cast<int>(std::min<Millis>(o_.handshake_timeout_ms, 3'600'000));
    security_.apply(&fo, &bo);
    auto f = zmqu::bind_router(ctx_, o_.frontend, &frontend_ep_, fo);
    if (!f.ok()) return f.status();
    frontend_ = std::move(f).value();
    auto b = zmqu::bind_router(ctx_, o_.backend, &backend_ep_, bo);
    if (!b.ok()) return b.status();
    backend_ = std::move(b).value();
    // Idle connections must not take the descriptors the journal and the
    // connected peers need (head/descriptors.hpp).
    guard_ = std::make_unique<ListenGuard>(std::vector<std::string>{frontend_ep_, backend_ep_},
                                           fd_limit_.soft, o_.handshake_timeout_ms);
    ZG_RETURN_IF_ERROR(watch_accepts(frontend_, accept_monitors_[0]));
    ZG_RETURN_IF_ERROR(watch_accepts(backend_, accept_monitors_[1]));
    if (curve_) {
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
           "options: heartbeat=" + format_duration(o_.heartbeat_ms) +
               " heartbeat-misses=" + std::to_string(o_.heartbeat_misses) +
               " client-idle-timeout=" + format_duration(o_.client_idle_timeout_ms) +
               " session-idle-timeout=" + format_duration(o_.session_idle_timeout_ms) +
               " task-timeout=" + format_duration(o_.task_timeout_ms) + " max-retries=" +
               std::to_string(o_.max_retries) + " queue-hwm=" + std::to_string(o_.queue_hwm));
    ZG_LOG(kInfo, kLog,
           "serving clients on " + frontend_ep_ + " and nodes on " + backend_ep_ +
               (journal_ ? " with journal in " + o_.data_dir : std::string(" (no journal)")) +
               " (instance " + instance_ + ")");
    return Status::OK();
  }

  // A PAIR that hears of every connection the ROUTER accepts (or fails to):
  // the descriptor guard counts on each burst (head/descriptors.hpp).
  Status watch_accepts(zmq::socket_t& router, zmq::socket_t& pair) {
    std::string ep = "inproc://zgrid-accepts-" + std::to_string(accept_monitor_seq_++);
    if (zmq_socket_monitor(router.handle(), ep.c_str(),
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_ACCEPT_FAILED) != 0)
      return Status::Internal(std::string("zmq_socket_monitor: ") + zmq_strerror(zmq_errno()));
    pair = zmq::socket_t(ctx_, zmq::socket_type::pair);
    pair.set(zmq::sockopt::linger, 0);
    pair.connect(ep);
    return Status::OK();
  }

  void on_accept_events() {
    bool any = false;
    for (auto& pair : accept_monitors_) {
      for (int i = 0; i < 4096; ++i) {
        zmq::message_t ev;
        if (!pair.recv(ev, zmq::recv_flags::dontwait)) break;
        while (ev.more()) (void)pair.recv(ev, zmq::recv_flags::dontwait);
        any = true;
      }
    }
    if (any && guard_) guard_->on_accepted(now_);
  }

  // ---- security (docs/security.md) -------------------------------------------------

  // find_session for a client's request: unknown, or someone else's, is an error.
  Status find_owned(const std::string& sid, const std::string& key, Session** s) {
    *s = find_session(sid);
    if (*s == nullptr) return session_not_found(sid);
    return security_.check_owner(**s, key);
  }

  std::string owner_name(const std::string& key) const { return security_.name_of(key); }

  Status run(const std::atomic<bool>& stop) {
    std::vector<zmq::message_t> frames;
    Millis next_tick = 0;
    while (!stop.load()) {
      Millis now = clock_.now_ms();
      if (now >= next_tick) {
        if (!security_.zap_alive())
          return Status::Internal(
              "the ZAP handler stopped: refusing to serve without authentication");
        security_.maybe_reload_keys();
        on_tick(now);
        if (!fatal_.ok()) return fatal_;
        next_tick = now + std::max<Millis>(10, std::min<Millis>(o_.heartbeat_ms / 4, 250));
      }
      Millis timeout = std::max<Millis>(0, next_tick - now);
      if (outbox_.responses_pending()) timeout = std::min<Millis>(timeout, 2);
      zmq::pollitem_t items[] = {
          {static_cast<void*>(frontend_), 0, ZMQ_POLLIN, 0},
          {static_cast<void*>(backend_), 0, ZMQ_POLLIN, 0},
          {static_cast<void*>(accept_monitors_[0]), 0, ZMQ_POLLIN, 0},
          {static_cast<void*>(accept_monitors_[1]), 0, ZMQ_POLLIN, 0},
          {journal_ ? static_cast<void*>(journal_pair_) : nullptr, 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, journal_ ? 5 : 4, std::chrono::milliseconds(timeout));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        return Status::Internal(std::string("poll failed: ") + e.what());
      }
      now_ = clock_.now_ms();
      if ((items[2].revents | items[3].revents) & ZMQ_POLLIN) on_accept_events();
      if (journal_ && (items[4].revents & ZMQ_POLLIN)) on_journal();
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
      flush_answers();
      dispatch();
      flush_clients();
    }
    ZG_LOG(kInfo, kLog, "stopping");
    // Tell the nodes, so they reconnect (with backoff) instead of waiting
    // out their missed heartbeats.
    for (auto& kv : nodes_.all()) {
      Writer w = proto::begin(proto::kBye, 0, 1);
      w.str(instance_);
      zmq::message_t m = w.finish();
      (void)zmqu::send_routed(backend_, kv.second.rid, m);
    }
    if (journal_) {
      // Let what was submitted reach the disk before the journal closes.
      flush_answers();
      journal_.reset();
    }
    return Status::OK();
  }

 private:
  using OpDone = std::function<void(bool ok, const std::string& error)>;

  // ---- journal ------------------------------------------------------------------

  Status open_journal() {
    std::string ep = "inproc://zgrid-journal";
    journal_pair_ = zmq::socket_t(ctx_, zmq::socket_type::pair);
    journal_pair_.set(zmq::sockopt::linger, 0);
    journal_pair_.set(zmq::sockopt::rcvhwm, 0);
    journal_pair_.bind(ep);
    JournalOptions jo;
    jo.min_free_bytes = o_.min_free_bytes;
    jo.reserve_bytes = o_.disk_reserve_bytes;
    jo.fault_file = o_.hooks.journal_fault_file;
    jo.fault_after_write = o_.hooks.journal_fault_after;
    jo.read_fault_file = o_.hooks.journal_read_fault_file;
    if (crash_.name == "after-sync") {
      jo.crash_after_syncs = static_cast<int>(crash_.count);
      crash_.count = -1;
    }
    auto j = Journal::open(o_.data_dir, ctx_, ep, jo);
    if (!j.ok()) return j.status();
    journal_ = std::move(j).value();
    Millis t0 = clock_.now_ms();
    ZG_RETURN_IF_ERROR(recover());
    std::uint64_t reqs = 0;
    for (auto& kv : sessions_.all()) reqs += kv.second->total;
    ZG_LOG(kInfo, kLog,
           "journal recovered: " + std::to_string(sessions_.size()) + " sessions, " +
               std::to_string(reqs) + " requests in " + format_duration(clock_.now_ms() - t0));
    return Status::OK();
  }

  void submit(JournalOp op, OpDone done) {
    std::uint64_t seq = journal_->submit(std::move(op));
    pending_ops_.emplace_back(seq, std::move(done));
  }

  void on_journal() {
    for (int i = 0; i < 1024; ++i) {
      zmq::message_t m;
      auto r = journal_pair_.recv(m, zmq::recv_flags::dontwait);
      if (!r) break;
      std::uint64_t seq;
      bool ok;
      std::string error;
      if (!Journal::decode_completion(m, &seq, &ok, &error)) continue;
      while (!pending_ops_.empty() && pending_ops_.front().first <= seq) {
        OpDone done = std::move(pending_ops_.front().second);
        pending_ops_.pop_front();
        done(ok, error);
      }
    }
  }

  // The session's record with `state` (its current state by default): a
  // change of state is written first and applied once it is durable.
  static void put_session_record(JournalOp& op, const Session& s,
                                 std::optional<proto::SessionState> state = std::nullopt) {
    SessionRecord rec{s.service,
                      s.created_wall,
                      s.client_idle_timeout_ms,
                      state.value_or(s.state),
                      s.task_timeout_ms,
                      s.deadline_wall,
                      s.owner};
    op.puts.emplace_back(jkey::session(jkey::kSession, s.id), rec.encode());
  }

  static void put_client_record(JournalOp& op, const Session& s, const Client& c,
                                std::uint64_t acked, std::uint64_t sent, std::uint64_t flushed,
                                bool ended) {
    ClientRecord rec{acked, sent, flushed, ended, c.removed, c.max_id};
    op.puts.emplace_back(jkey::client(s.id, c.id), rec.encode());
  }

  // Why the journal takes no new requests: a full disk is resource_exhausted
  // (purging finished sessions gives space back), anything else unavailable.
  Status unavailable_journal() {
    if (journal_->space_short())
      return Status::ResourceExhausted(
          "the journal's disk is full (" + journal_->health_reason() +
          "): new durable requests are refused; fetch, status and purge still work (zgrid close "
          "ID --purge gives a session's space back)");
    return Status::Unavailable("the journal refuses new requests (" + journal_->health_reason() +
                               "); fetch and status still work");
  }

  // The reply for a journal write that failed.
  static Status write_failed(const std::string& err) {
    if (Journal::is_no_space(err))
      return Status::ResourceExhausted(err +
                                       " (the disk is full: purge finished sessions or free "
                                       "space)");
    return Status::Unavailable(err);
  }

  // ---- recovery -------------------------------------------------------------------

  // A response record that cannot be read (checksum mismatch, missing
  // data): its answers are lost, so their requests run again. Logged once
  // per session, counted in `zgrid status`.
  void note_corrupt_answers(Session& s, std::string_view key) {
    ++journal_corrupt_records_;
    if (s.corrupt_logged) return;
    s.corrupt_logged = true;
    ZG_LOG(kError, kLog,
           "journal corruption session=" + s.id + ": response record #" +
               std::to_string(jkey::number_of(key)) +
               " is unreadable; its requests run again to recompute the lost answers");
  }

  // Rebuilds the durable sessions from the journal (head/recovery.hpp),
  // then finishes what a crash interrupted: cancels whose answers were not
  // all synced, and loading the requests that still need to run.
  Status recover() {
    RecoveryReport report;
    ZG_RETURN_IF_ERROR(recover_sessions(*journal_, sessions_, now_, wall_seconds(), &report));
    for (auto& [s, key] : report.corrupt_answers) note_corrupt_answers(*s, key);
    for (auto& kv : sessions_.all()) {
      Session& s = *kv.second;
      if (s.state == proto::SessionState::kCancelled)
        cancel_session(s);
      else
        load_ready(s);
    }
    // Segment files of sessions purged just before a crash.
    journal_->remove_orphan_segments(
        [&](std::string_view sid) { return sessions_.find(std::string(sid)) != nullptr; });
    return Status::OK();
  }

  // After a failed write the journal may hold more than the head believes
  // (LevelDB can keep a batch whose sync failed and replay it on reopen):
  // bring every durable session up to it, so that a resent batch is a
  // duplicate and an answer already recorded is not recorded again.
  Status reconcile() {
    RecoveryReport report;
    ZG_RETURN_IF_ERROR(reconcile_sessions(*journal_, sessions_, &report));
    for (auto& [s, key] : report.corrupt_answers) note_corrupt_answers(*s, key);
    total_done_ += report.counted.done;
    total_faulted_ += report.counted.faulted;
    if (report.fixed > 0)
      ZG_LOG(kWarn, kLog,
             "journal reopened: " + std::to_string(report.fixed) +
                 " records were written although their write had reported failure; taken into "
                 "account");
    for (auto& kv : sessions_.all()) load_ready(*kv.second);
    return Status::OK();
  }

  // What loading batches found (head/batch_loader.hpp), acted on: lost
  // batches answered `data_loss`; an unreadable one counted, logged once and
  // tried again in a second.
  void after_load(Session& s, const LoadOutcome& out) {
    for (const auto& [b, why] : out.lost) fault_lost_batch(s, b, why);
    if (out.unreadable.ok()) return;
    ++journal_read_errors_;
    s.read_retry_at = now_ + kReadRetryMs;
    read_retry_.insert(s.ordinal);
    if (!s.read_error_logged) {
      s.read_error_logged = true;
      ZG_LOG(kError, kLog,
             "journal read error session=" + s.id + ": " + out.unreadable.message() +
                 "; its requests wait and the read is tried again every second");
    }
  }

  // A request batch whose journal record is lost: each of its requests not
  // yet answered is answered `data_loss` (its payload is gone; it cannot run).
  void fault_lost_batch(Session& s, const BatchRef& b, const Status& why) {
    ++journal_corrupt_records_;
    std::uint64_t n = 0;
    for (std::uint64_t id = b.first_id; id < b.first_id + b.n; ++id) {
      if (s.is_answered(id)) continue;
      Request q;
      q.id = id;
      q.client = b.client;
      answer(s, q, proto::fault::kDataLoss,
             "request " + std::to_string(id) + ": its record in the journal is unreadable (" +
                 why.message() + "): it cannot run");
      ++n;
    }
    data_loss_requests_ += n;
    ZG_LOG(kError, kLog,
           "journal corruption session=" + s.id + ": " + why.message() + "; " + std::to_string(n) +
               " requests answered data_loss");
  }

  // Moves flushed, journaled requests into the in-memory queue, up to the
  // durable window: the head never holds a whole large session in memory.
  void load_ready(Session& s) {
    if (!s.durable || s.state == proto::SessionState::kCancelled) return;
    if (now_ >= s.read_retry_at)  // else a read failed a moment ago
      after_load(s, load_batches(*journal_, s, {o_.durable_window, true}));
    activate(&s);
  }

  // Sessions whose batches could not be read, or whose answers must be
  // recounted after a corrupt response record: tried again on the tick.
  void retry_reads() {
    if (read_retry_.empty()) return;
    std::vector<std::uint64_t> due;
    for (std::uint64_t ord : read_retry_) {
      Session* s = session_by_ord(ord);
      if (!s) continue;
      if (s->rescan_pending) {
        if (s->queue.empty() && s->running == 0 && s->committing == 0 && s->purging == 0 &&
            !answers_.count(ord))
          due.push_back(ord);
      } else if (now_ >= s->read_retry_at) {
        due.push_back(ord);
      }
    }
    for (std::uint64_t ord : due) {
      read_retry_.erase(ord);
      Session* s = session_by_ord(ord);
      if (!s) continue;
      if (s->rescan_pending) {
        rescan_answers(*s);
      } else if (s->state == proto::SessionState::kCancelled) {
        fault_unrun(*s, proto::fault::kCancelled, "session cancelled before this request ran");
      } else if (s->deadline > 0 && now_ >= s->deadline) {
        expire_session(*s);
      } else {
        load_ready(*s);
      }
      if (s->unloaded.empty()) s->read_error_logged = false;
    }
  }

  // A response record found corrupt while the head runs: its answers are
  // lost. Once the session is quiet (nothing queued, running or being
  // written), its answers are recounted from the readable records and every
  // request left unanswered runs again (the same outcome as a restart).
  void schedule_rescan(Session& s) {
    if (s.rescan_pending) return;
    s.rescan_pending = true;
    read_retry_.insert(s.ordinal);
  }

  void rescan_answers(Session& s) {
    std::vector<std::uint64_t> bits;
    bits.swap(s.answered_bits);
    std::uint64_t done = s.done, faulted = s.faulted;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> by_client;
    for (auto& c : s.clients) {
      by_client.emplace_back(c.done, c.faulted);
      c.done = c.faulted = 0;
    }
    s.done = s.faulted = 0;
    AnswerCounts added;
    Status st = scan_records(
        *journal_, jkey::session(jkey::kAnswers, s.id),
        [&](std::string_view key, std::string_view, std::string_view v) {
          (void)apply_answer_record(s, key, v, &added);
          return Status::OK();
        },
        [&](std::string_view key) {
          s.next_resp_seq = std::max(s.next_resp_seq, jkey::number_of(key) + 1);
        });
    if (!st.ok()) {  // cannot read now: as it was, try again later
      s.answered_bits.swap(bits);
      s.done = done;
      s.faulted = faulted;
      for (std::size_t i = 0; i < by_client.size(); ++i)
        std::tie(s.clients[i].done, s.clients[i].faulted) = by_client[i];
      s.read_retry_at = now_ + kReadRetryMs;
      read_retry_.insert(s.ordinal);
      return;
    }
    s.rescan_pending = false;
    sessions_.touch(s);
    // Every batch of a client still there goes back to be loaded: reading
    // skips the requests that have an answer.
    s.unloaded.clear();
    for (std::size_t i = 0; i < s.batches.size(); ++i)
      if (!s.clients[s.batches[i].client].removed) s.unloaded.push_back(i);
    std::uint64_t lost = done + faulted - std::min(done + faulted, s.done + s.faulted);
    ZG_LOG(kWarn, kLog,
           "session=" + s.id + ": " + std::to_string(lost) +
               " answers lost to a corrupt response record run again");
    if (s.state == proto::SessionState::kCancelled)
      fault_unrun(s, proto::fault::kCancelled, "session cancelled before this request ran");
    else
      load_ready(s);
  }

  std::uint64_t queued_count(const Session& s) const {
    std::uint64_t q = s.queue.size();
    for (std::size_t i : s.unloaded) {
      const BatchRef& b = s.batches[i];
      const Client& c = s.clients[b.client];
      if (!c.removed && b.first_id + b.n - 1 <= c.flushed_id) q += b.n;
    }
    return q;
  }

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
      if (error_budget(rid))
        reply_error(frontend_, rid, 0, Status::Protocol("expected exactly one body frame"));
      return;
    }
    Envelope env;
    Status st = decode_envelope(frames[1].data(), frames[1].size(), &env);
    if (st.ok()) st = proto::check_version(env);
    if (!st.ok()) {
      ++bad_messages_;
      if (error_budget(rid)) reply_error(frontend_, rid, env.corr, st);
      return;
    }
    std::string peer_key;
    if (curve_) {
      // Set by our ZAP handler: the Z85 public key this connection proved it holds.
      peer_key = zmqu::user_id(frames[1]);
      if (peer_key.empty()) return;  // not admitted by our ZAP handler: never served
    }
    st = handle_client(Call{rid, peer_key, frames[1], env});
    if (!st.ok()) {
      if (st.code() == Code::kProtocol) ++bad_messages_;
      reply_error(frontend_, rid, env.corr, st);
    }
  }

  // A peer that keeps sending undecodable bytes gets at most kErrorBudget
  // error replies per second; the rest are only counted, so a flooder costs
  // the head a decode, not an encode and a send as well.
  bool error_budget(const std::string& rid) {
    if (error_budget_.size() > 10'000) error_budget_.clear();  // bounded memory
    auto& [since, used] = error_budget_[rid];
    if (now_ - since >= 1000) {
      since = now_;
      used = 0;
    }
    return ++used <= kErrorBudget;
  }

  void reply_hello(const std::string& rid, std::uint64_t corr) {
    Writer w = proto::begin(proto::kHelloOk, corr, 2);
    w.str(kVersionString).str(instance_);
    reply_client(rid, w.finish());
  }

  Status handle_client(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    switch (env.type) {
      case proto::kHello:
        reply_hello(rid, env.corr);
        return Status::OK();
      case proto::kPing: {
        proto::ClientRef m;
        if (!env.fields.at_end()) {
          ZG_RETURN_IF_ERROR(proto::decode_client_ref(env, &m));
          Session* s;
          Client* c;
          if (!m.session_id.empty()) (void)bind_client(call, m.session_id, m.client_id, &s, &c);
        }
        // The reply names this head instance: a client notices a restart.
        reply_hello(rid, env.corr);
        return Status::OK();
      }
      case proto::kCreateSession:
        return on_create_session(call);
      case proto::kAttachSession:
        return on_attach(call);
      case proto::kOpenClient:
        return on_open_client(call);
      case proto::kSend:
        return on_send(call);
      case proto::kFlush:
        return on_flush(call);
      case proto::kEndRequests:
        return on_end_requests(call);
      case proto::kRespAck: {
        proto::ClientRef m;
        ZG_RETURN_IF_ERROR(proto::decode_client_ref(env, &m));
        Session* s;
        Client* c;
        if (!bind_client(call, m.session_id, m.client_id, &s, &c).ok()) return Status::OK();
        outbox_.acked(*c, m.value);
        return Status::OK();
      }
      case proto::kStatus:
        return on_status(call);
      case proto::kNodes:
        return on_nodes(call);
      case proto::kSessions:
        return on_sessions(call);
      case proto::kClose:
        return on_close(call);
      case proto::kFetch:
        return on_fetch(call);
      case proto::kDrain:
        return on_drain(call);
      default:
        return Status::Protocol("unknown message type " + std::to_string(env.type));
    }
  }

  Session* find_session(const std::string& id) { return sessions_.find(id); }

  Status session_not_found(const std::string& id) {
    if (sessions_.purged(id)) return Status::NotFound("session " + id + " was purged");
    return Status::NotFound("unknown session " + id);
  }

  // Finds the caller's client and binds it to the connection the call came
  // on (a reconnecting client arrives with a new routing id); the call counts
  // as activity of the client and its session.
  Status bind_client(const Call& call, const std::string& sid, const std::string& cid, Session** s,
                     Client** c) {
    const std::string& rid = call.rid;
    ZG_RETURN_IF_ERROR(find_owned(sid, call.peer_key, s));
    auto it = (*s)->client_index.find(cid);
    if (it == (*s)->client_index.end())
      return Status::NotFound("unknown client " + cid + " in session " + sid);
    *c = &(*s)->clients[it->second];
    if ((*c)->removed || (*c)->removing)
      return Status::NotFound("client " + cid + " was removed (idle timeout)");
    (*c)->rid = rid;  // a reconnecting client arrives with a new routing id
    (*c)->last_activity = now_;
    (*s)->last_activity = now_;
    return Status::OK();
  }

  static proto::SessionInfo info_of(const Session& s) {
    return proto::SessionInfo{s.id, s.service, s.durable, s.state};
  }

  Status on_create_session(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    proto::CreateSession m;
    ZG_RETURN_IF_ERROR(proto::decode_create_session(env, &m));
    if (!valid_name(m.service)) return Status::InvalidArgument("bad service name");
    if (auto sp = spec::parse(m.service); !sp.ok()) return sp.status();
    if (m.durable && !journal_)
      return Status::FailedPrecondition(
          "this head keeps no journal: start it with --data-dir for durable sessions");
    if (m.durable && !journal_->healthy()) return unavailable_journal();
    if (o_.max_sessions_per_key > 0) {
      std::uint64_t open = sessions_.load(call.peer_key).open;
      if (open >= o_.max_sessions_per_key)
        return Status::ResourceExhausted(
            "this key has " + std::to_string(open) + " open sessions (the head allows " +
            std::to_string(o_.max_sessions_per_key) + " per key): close some first");
    }
    Session* s = &sessions_.create(call.peer_key);
    s->service = m.service;
    s->durable = m.durable;
    s->client_idle_timeout_ms = m.client_idle_timeout_ms
                                    ? static_cast<Millis>(m.client_idle_timeout_ms)
                                    : o_.client_idle_timeout_ms;
    s->created_wall = wall_seconds();
    s->last_activity = now_;
    s->task_timeout_ms = static_cast<Millis>(m.task_timeout_ms);
    if (m.deadline_ms > 0) {
      s->deadline = now_ + static_cast<Millis>(m.deadline_ms);
      s->deadline_wall = s->created_wall + static_cast<std::int64_t>((m.deadline_ms + 999) / 1000);
    }
    Session* sp = s;
    ZG_LOG(kInfo, kLog,
           "session created session=" + sp->id + " service=" + sp->service +
               (sp->durable ? " durable" : " interactive") +
               (curve_ ? " owner=" + owner_name(sp->owner) : std::string()));
    if (!sp->durable) {
      reply_client(rid, proto::encode_session_info(env.corr, info_of(*sp)));
      return Status::OK();
    }
    JournalOp op;
    put_session_record(op, *sp);
    submit(std::move(op),
           [this, rid, corr = env.corr, ord = sp->ordinal](bool ok, const std::string& err) {
             Session* s = session_by_ord(ord);
             if (!s) return;
             if (!ok) {
               reply_error(frontend_, rid, corr, write_failed(err));
               drop_session(s);
               return;
             }
             reply_client(rid, proto::encode_session_info(corr, info_of(*s)));
           });
    return Status::OK();
  }

  Session* session_by_ord(std::uint64_t ord) { return sessions_.by_ordinal(ord); }

  Status on_attach(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    std::string sid;
    ZG_RETURN_IF_ERROR(proto::decode_query(env, &sid));
    Session* s;
    ZG_RETURN_IF_ERROR(find_owned(sid, call.peer_key, &s));
    s->last_activity = now_;
    reply_client(rid, proto::encode_session_info(env.corr, info_of(*s)));
    return Status::OK();
  }

  Status on_open_client(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    proto::OpenClient m;
    ZG_RETURN_IF_ERROR(proto::decode_open_client(env, &m));
    if (!valid_name(m.client_id))
      return Status::InvalidArgument("client id must be 1..64 printable characters");
    Session* s;
    ZG_RETURN_IF_ERROR(find_owned(m.session_id, call.peer_key, &s));
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
      // coming back (new connection after its old one went quiet, or after a
      // head restart) is not.
      bool live =
          !c.ended && !c.rid.empty() && c.rid != rid && now_ - c.last_activity < kLiveWindowMs;
      if (live)
        return Status::AlreadyExists("client id " + c.id + " is already in use in this session");
      c.rid = rid;
      c.last_activity = now_;
    }
    const Client& c = s->clients[it->second];
    reply_client(rid, proto::encode_client_opened(env.corr, {s->id, c.id, c.acked_seq}));
    return Status::OK();
  }

  Status on_send(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    proto::Send m;
    ZG_RETURN_IF_ERROR(proto::decode_send(env, &m));
    Session* s;
    Client* c;
    ZG_RETURN_IF_ERROR(
        bind_client(call, std::string(m.session_id), std::string(m.client_id), &s, &c));
    if (c->ended)
      return Status::FailedPrecondition("client " + c->id + " already called EndRequests");
    if (s->state != proto::SessionState::kOpen)
      return Status::FailedPrecondition(std::string("session is ") + proto::state_name(s->state));
    if (s->purging > 0) return Status::FailedPrecondition("session " + s->id + " is being purged");
    if (m.first_seq > c->accepted_seq + 1)
      return Status(Code::kOutOfSequence, "sequence gap: expected " +
                                              std::to_string(c->accepted_seq + 1) + ", got " +
                                              std::to_string(m.first_seq));
    if (s->durable && !journal_->healthy()) return unavailable_journal();
    ZG_RETURN_IF_ERROR(check_key_quotas(*s, m.items.size(), call.frame.size()));
    proto::Ack ack;
    ack.session_id = s->id;
    ack.client_id = c->id;
    ack.first_seq = m.first_seq;
    ack.count = m.items.size();
    ack.first_request_id = s->next_request_id;
    std::uint32_t cidx = s->client_index[c->id];
    std::vector<Request> accepted;
    accepted.reserve(m.items.size());
    for (std::size_t i = 0; i < m.items.size(); ++i) {
      std::uint64_t seq = m.first_seq + i;
      const proto::SendItem& it = m.items[i];
      std::uint8_t status = proto::kItemOk;
      if (seq <= c->accepted_seq)
        status = proto::kItemDuplicate;
      else if (it.payload.size() > proto::kMaxPayload || it.user_data.size() > proto::kMaxUserData)
        status = proto::kItemTooLarge;
      if (status != proto::kItemOk) {
        if (ack.statuses.empty())
          ack.statuses.assign(m.items.size(), static_cast<char>(proto::kItemOk));
        ack.statuses[i] = static_cast<char>(status);
        if (seq > c->accepted_seq) c->accepted_seq = seq;
        continue;
      }
      Request r;
      r.id = s->next_request_id++;
      r.client = cidx;
      r.user_data.assign(it.user_data);
      r.payload.assign(it.payload);
      accepted.push_back(std::move(r));
      c->accepted_seq = seq;
    }
    std::uint64_t n = accepted.size();
    if (n > 0) c->max_id = accepted.back().id;
    if (!s->durable) {
      for (auto& r : accepted) s->queue.push_back(std::move(r));
      c->acked_seq = c->accepted_seq;
      c->sent += n;
      s->total += n;
      sessions_.touch(*s);
      activate(s);
      // Back-pressure: above the high-water mark the acknowledgement waits, so
      // the client's send window closes and head memory stays bounded.
      if (outbox_.must_hold(*s, *c)) {
        outbox_.hold(*c, {std::move(ack), env.corr});
      } else {
        reply_client(rid, proto::encode_ack(env.corr, ack));
      }
      return Status::OK();
    }
    // Durable: journal the batch (the received frame as it is: no re-encoding)
    // and the client's new high-water sequence in one synced write; only then
    // acknowledge. A resend after a crash finds its items duplicates.
    c->sent += n;
    std::uint64_t flushed = m.flush ? c->max_id : c->flushed_id;
    JournalOp op;
    if (n > 0) {
      RequestRecord rr{ack.statuses, ack.first_request_id,
                       std::string_view(call.frame.data<char>(), call.frame.size())};
      op.puts.emplace_back(jkey::numbered(jkey::kRequests, s->id, ack.first_request_id),
                           rr.encode());
      IndexRecord ir{n, c->id, op.puts.back().second.size()};
      op.puts.emplace_back(jkey::numbered(jkey::kIndex, s->id, ack.first_request_id), ir.encode());
    }
    put_client_record(op, *s, *c, c->accepted_seq, c->sent, flushed, false);
    BatchRef b;
    b.first_id = ack.first_request_id;
    b.n = static_cast<std::uint32_t>(n);
    b.client = cidx;
    b.mem = std::move(accepted);
    auto batch = std::make_shared<BatchRef>(std::move(b));
    std::uint64_t last_seq = c->accepted_seq;
    std::uint64_t record_bytes = n > 0 ? op.puts.front().second.size() : 0;
    submit(std::move(op),
           [this, ord = s->ordinal, cidx, corr = env.corr, ack = std::move(ack), batch, flushed,
            last_seq, record_bytes](bool ok, const std::string& err) mutable {
             Session* s = session_by_ord(ord);
             if (!s) return;  // purged meanwhile
             Client& c = s->clients[cidx];
             if (!ok) {
               // Nothing of it is durable: forget it, tell the client.
               c.accepted_seq = c.acked_seq;
               c.sent -= batch->n;
               reply_error(frontend_, c.rid, corr, write_failed(err));
               return;
             }
             crash_.reach("before-ack");
             c.acked_seq = std::max(c.acked_seq, last_seq);
             c.flushed_id = std::max(c.flushed_id, flushed);
             s->total += batch->n;
             s->journal_bytes += record_bytes;
             sessions_.touch(*s);
             if (batch->n > 0) {
               s->unloaded.push_back(s->batches.size());
               s->batches.push_back(std::move(*batch));
             }
             load_ready(*s);
             // What did not fit in the window is dropped from memory: the journal has it.
             for (std::size_t i : s->unloaded) s->batches[i].mem = std::vector<Request>();
             reply_client(c.rid, proto::encode_ack(corr, ack));
           });
    return Status::OK();
  }

  // Per-key caps on queued requests and journal bytes (0: none), over every
  // session the key owns.
  Status check_key_quotas(const Session& s, std::size_t adding, std::size_t frame_bytes) {
    if (o_.max_queued_per_key == 0 && o_.max_journal_bytes_per_key == 0) return Status::OK();
    const KeyLoad& load = sessions_.load(s.owner);
    std::uint64_t queued = load.queued, bytes = load.journal_bytes;
    if (o_.max_queued_per_key > 0 && queued + adding > o_.max_queued_per_key)
      return Status::ResourceExhausted(
          "this key has " + std::to_string(queued) + " requests queued (the head allows " +
          std::to_string(o_.max_queued_per_key) + " per key): wait for results, then send more");
    if (s.durable && o_.max_journal_bytes_per_key > 0 &&
        bytes + frame_bytes > o_.max_journal_bytes_per_key)
      return Status::ResourceExhausted("this key's durable sessions hold " + std::to_string(bytes) +
                                       " journal bytes (the head allows " +
                                       std::to_string(o_.max_journal_bytes_per_key) +
                                       " per key): purge finished sessions first");
    return Status::OK();
  }

  Status on_flush(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    proto::ClientRef m;
    ZG_RETURN_IF_ERROR(proto::decode_client_ref(env, &m));
    Session* s;
    Client* c;
    ZG_RETURN_IF_ERROR(bind_client(call, m.session_id, m.client_id, &s, &c));
    if (!s->durable) {  // interactive requests are eligible as soon as they are acknowledged
      reply_client(rid, proto::encode_ok(env.corr));
      return Status::OK();
    }
    if (!journal_->healthy()) return unavailable_journal();
    JournalOp op;
    std::uint64_t flushed = c->max_id;
    put_client_record(op, *s, *c, c->accepted_seq, c->sent, flushed, c->ended);
    submit(std::move(op), [this, ord = s->ordinal, cid = c->id, corr = env.corr, flushed](
                              bool ok, const std::string& err) {
      Session* s = session_by_ord(ord);
      if (!s) return;
      Client& c = s->clients[s->client_index[cid]];
      if (!ok) {
        reply_error(frontend_, c.rid, corr, write_failed(err));
        return;
      }
      c.flushed_id = std::max(c.flushed_id, flushed);
      load_ready(*s);
      reply_client(c.rid, proto::encode_ok(corr));
    });
    return Status::OK();
  }

  Status on_end_requests(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    proto::ClientRef m;
    ZG_RETURN_IF_ERROR(proto::decode_client_ref(env, &m));
    Session* s;
    Client* c;
    ZG_RETURN_IF_ERROR(bind_client(call, m.session_id, m.client_id, &s, &c));
    if (m.value != c->accepted_seq)
      return Status::FailedPrecondition("EndRequests after sequence " + std::to_string(m.value) +
                                        " but " + std::to_string(c->accepted_seq) +
                                        " acknowledged");
    if (c->ended || !s->durable) {
      if (!c->ended) {
        c->ended = true;
        s->committed += c->sent;
      }
      reply_client(rid, proto::encode_ok(env.corr));
      return Status::OK();
    }
    if (!journal_->healthy()) return unavailable_journal();
    // Committed: ended and flushed in one synced write, after every batch of it.
    JournalOp op;
    std::uint64_t flushed = c->max_id;
    put_client_record(op, *s, *c, c->accepted_seq, c->sent, flushed, true);
    submit(std::move(op), [this, ord = s->ordinal, cid = c->id, corr = env.corr, flushed](
                              bool ok, const std::string& err) {
      Session* s = session_by_ord(ord);
      if (!s) return;
      Client& c = s->clients[s->client_index[cid]];
      if (!ok) {
        reply_error(frontend_, c.rid, corr, write_failed(err));
        return;
      }
      if (!c.ended) {
        c.ended = true;
        s->committed += c.sent;
      }
      c.flushed_id = std::max(c.flushed_id, flushed);
      load_ready(*s);
      reply_client(c.rid, proto::encode_ok(corr));
      wake_fetches(s->id);  // it may be complete now
    });
    return Status::OK();
  }

  void write_session_status(Writer& w, const Session& s) {
    std::uint64_t open_clients = 0;
    for (const auto& c : s.clients)
      if (!c.ended && !c.removed) ++open_clients;
    w.map(20);
    w.kv("session_id", s.id).kv("service", s.service).kv_b("durable", s.durable);
    w.kv("owner", owner_name(s.owner));  // the key's file name; empty without CURVE
    w.kv("state", proto::state_name(s.state));
    w.kv("total", s.total).kv("committed", s.committed).kv("queued", queued_count(s));
    w.kv("running", s.running + s.committing).kv("done", s.done).kv("faulted", s.faulted);
    w.kv("removed", s.requests_removed)
        .kv("clients", s.clients.size())
        .kv("clients_open", open_clients);
    w.kv("clients_removed", s.clients_removed);
    w.kv_i("created", s.created_wall);
    w.kv_b("complete", complete(s));
    w.kv("responses_queued", s.out_pending);
    w.kv_i("idle_ms", now_ - s.last_activity);
    w.kv_i("client_idle_timeout_ms", s.client_idle_timeout_ms);
  }

  // No open client, and every request of its clients answered or removed.
  static bool complete(const Session& s) { return SessionTable::complete(s); }

  Status on_status(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    std::string sid;
    ZG_RETURN_IF_ERROR(proto::decode_query(env, &sid));
    Writer w = proto::begin(proto::kStatusReply, env.corr, 1, 512);
    if (!sid.empty()) {
      Session* s;
      ZG_RETURN_IF_ERROR(find_owned(sid, call.peer_key, &s));
      write_session_status(w, *s);
    } else {
      std::uint64_t queued = 0, running = 0, workers = 0;
      for (const auto& kv : sessions_.all()) {
        queued += queued_count(*kv.second);
        running += kv.second->running;
      }
      workers = nodes_.workers();
      JournalStats js = journal_ ? journal_->stats() : JournalStats{};
      w.map(17);
      w.kv("nodes", nodes_.size()).kv("workers", workers).kv("sessions", sessions_.size());
      w.kv("queued", queued).kv("running", running).kv("done", total_done_);
      w.kv("faulted", total_faulted_).kv("bad_messages", bad_messages_);
      w.kv_f("rate", rate_);
      w.kv("instance", instance_);
      w.kv("journal", journal_ ? (journal_->healthy() ? "ok" : journal_->health_reason()) : "none");
      w.kv("journal_syncs", js.syncs).kv("journal_ops", js.ops).kv("journal_bytes", js.bytes);
      w.kv("journal_read_errors", journal_read_errors_);
      w.kv("journal_corrupt_records", journal_corrupt_records_);
      w.kv("data_loss", data_loss_requests_);
    }
    reply_client(rid, w.finish());
    return Status::OK();
  }

  Status on_nodes(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    Writer w = proto::begin(proto::kNodesReply, env.corr, 1, 256 + nodes_.size() * 256);
    w.array(static_cast<std::uint32_t>(nodes_.size()));
    for (const auto& kv : nodes_.all()) {
      const NodeState& n = kv.second;
      w.map(13);
      w.kv("state", n.quarantined ? "quarantined" : n.draining ? "draining" : "ok");
      w.kv("node_id", n.id).kv("host", n.host).kv("pid", n.pid).kv("workers", n.workers);
      w.kv("stuck", n.stuck);
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

  // zgrid drain NODE: no new work to the node (its in-flight work finishes),
  // so an operator can stop it without failing anything; `undo` lifts it.
  Status on_drain(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    Reader& r = env.fields;
    std::string node_id(r.bytes(proto::kMaxNameLength));
    bool undo = r.at_end() ? false : r.boolean();
    if (!r.ok()) return Status::Protocol("malformed drain");
    if (curve_ && !security_.is_admin(call.peer_key))
      return Status::PermissionDenied("draining a node needs an admin key (--admin-keys)");
    if (NodeState* n = nodes_.find_id(node_id)) {
      n->draining = !undo;
      ZG_LOG(kInfo, kLog,
             std::string(undo ? "node undrained" : "node draining") + " node=" + node_id +
                 " inflight=" + std::to_string(n->inflight));
      if (undo)
        for (auto& s : sessions_.all()) activate(s.second.get());
      reply_client(rid, proto::encode_ok(env.corr));
      return Status::OK();
    }
    return Status::NotFound("unknown node " + node_id + " (see zgrid nodes)");
  }

  Status on_sessions(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    Writer w = proto::begin(proto::kSessionsReply, env.corr, 1, 256 + sessions_.size() * 400);
    // With CURVE a key sees its own sessions (an admin sees all).
    std::vector<const Session*> list;
    for (const auto& kv : sessions_.all())
      if (security_.check_owner(*kv.second, call.peer_key).ok()) list.push_back(kv.second.get());
    w.array(static_cast<std::uint32_t>(list.size()));
    for (const Session* s : list) write_session_status(w, *s);
    reply_client(rid, w.finish());
    return Status::OK();
  }

  Status on_close(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    proto::Close m;
    ZG_RETURN_IF_ERROR(proto::decode_close(env, &m));
    Session* s = find_session(m.session_id);
    if (!s && m.mode == proto::CloseMode::kPurge && sessions_.purged(m.session_id)) {
      reply_client(rid, proto::encode_ok(env.corr));  // purged already: purge is idempotent
      return Status::OK();
    }
    if (!s) return session_not_found(m.session_id);
    ZG_RETURN_IF_ERROR(security_.check_owner(*s, call.peer_key));
    auto reply_done = [this, rid, corr = env.corr](bool ok, const std::string& err) {
      if (ok)
        reply_client(rid, proto::encode_ok(corr));
      else
        reply_error(frontend_, rid, corr, write_failed(err));
    };
    if (m.mode == proto::CloseMode::kPurge) {
      purge_session(s, std::move(reply_done));
      return Status::OK();
    }
    proto::SessionState to = m.mode == proto::CloseMode::kSeal ? proto::SessionState::kSealed
                                                               : proto::SessionState::kCancelled;
    if (!s->durable) {
      apply_close(*s, to);
      reply_client(rid, proto::encode_ok(env.corr));
      maybe_retire(s);
      return Status::OK();
    }
    // Durable: the new state is written first and applied only once it is
    // durable; a failed write leaves the session exactly as it was.
    JournalOp op;
    op.maintenance = true;
    put_session_record(op, *s, to == proto::SessionState::kSealed && !is_open(*s) ? s->state : to);
    submit(std::move(op), [this, ord = s->ordinal, to, done = std::move(reply_done)](
                              bool ok, const std::string& err) {
      Session* s = session_by_ord(ord);
      if (ok && s) apply_close(*s, to);
      if (!ok && s)
        ZG_LOG(kError, kLog,
               std::string(to == proto::SessionState::kSealed ? "seal" : "cancel") +
                   " failed session=" + s->id + ": " + err + "; the session is unchanged");
      done(ok, err);
    });
    return Status::OK();
  }

  static bool is_open(const Session& s) { return s.state == proto::SessionState::kOpen; }

  // Seal (no new clients or requests) or cancel (fault what has not run).
  void apply_close(Session& s, proto::SessionState to) {
    if (to == proto::SessionState::kCancelled) {
      cancel_session(s);
      return;
    }
    if (is_open(s)) s.state = proto::SessionState::kSealed;
    sessions_.touch(s);
    ZG_LOG(kInfo, kLog, "session sealed session=" + s.id);
  }

  // Deletes every key of the session and writes a tombstone, in one write.
  // Only once that write succeeded does the session leave memory (late
  // results are then dropped) and its id become a tombstone; a failed purge
  // leaves it exactly as it was, and a retry writes again. While the write is
  // pending the session is paused and its answers are not recorded (they
  // would re-create keys): they go back to its queue, to run again should the
  // purge fail.
  void purge_session(Session* s, OpDone done) {
    if (!s->durable) {
      ZG_LOG(kInfo, kLog, "session purged session=" + s->id);
      drop_session(s);
      done(true, "");
      return;
    }
    JournalOp op;
    op.maintenance = true;
    op.purge_session = s->id;
    for (char kind : {jkey::kSession, jkey::kClient, jkey::kIndex, jkey::kRequests, jkey::kAnswers})
      op.delete_prefixes.push_back(jkey::session(kind, s->id));
    op.puts.emplace_back(jkey::session(jkey::kTombstone, s->id), encode_tombstone(wall_seconds()));
    ++s->purging;
    submit(std::move(op), [this, ord = s->ordinal, sid = s->id, done = std::move(done)](
                              bool ok, const std::string& err) {
      Session* s = session_by_ord(ord);
      if (ok) {
        sessions_.add_tombstone(sid);
        if (s) drop_session(s);
        ZG_LOG(kInfo, kLog, "session purged session=" + sid);
      } else if (s) {
        --s->purging;
        ZG_LOG(kError, kLog,
               "purge failed session=" + sid + ": " + err + "; nothing of it was deleted");
        activate(s);
      }
      done(ok, err);
    });
  }

  void cancel_session(Session& s) {
    if (s.state == proto::SessionState::kOpen || s.state == proto::SessionState::kSealed)
      s.state = proto::SessionState::kCancelled;
    sessions_.touch(s);
    fault_unrun(s, proto::fault::kCancelled, "session cancelled before this request ran");
    ZG_LOG(kInfo, kLog, "session cancelled session=" + s.id);
  }

  // Answers every request of the session that has not run with a fault: the
  // queued ones and, for a durable session, every journaled batch not yet
  // loaded (flushed or not). Requests already running finish normally.
  std::uint64_t fault_unrun(Session& s, std::string_view code, std::string_view message) {
    if (s.durable)  // every batch, flushed or not; an unreadable one is answered on a retry
      after_load(s, load_batches(*journal_, s, {UINT64_MAX, false}));
    std::uint64_t n = s.queue.size();
    while (!s.queue.empty()) {
      Request r = std::move(s.queue.front());
      s.queue.pop_front();
      answer(s, r, code, message);
    }
    return n;
  }

  // Removes a session from memory; results arriving later are dropped.
  void drop_session(Session* s) {
    for (auto& c : s->clients) c.held_acks.clear();
    answers_.erase(s->ordinal);
    sessions_.drop(s);  // in-flight entries refer to the ordinal: their results are dropped
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

  // ---- fetch (durable) -------------------------------------------------------------

  // A fetch page (head/fetch.hpp), and what its reading found acted on:
  // corrupt response records are recomputed, read errors counted. False:
  // nothing yet, and the caller may wait.
  bool build_fetch(Session& s, const proto::Fetch& f, std::uint64_t corr, zmq::message_t* out) {
    FetchPage page = build_fetch_page(*journal_, s, f, corr);
    for (const std::string& key : page.corrupt_keys) {
      note_corrupt_answers(s, key);
      schedule_rescan(s);
    }
    if (page.read_error) ++journal_read_errors_;
    if (!page.ready) return false;
    *out = std::move(page.reply);
    return true;
  }

  Status on_fetch(const Call& call) {
    const std::string& rid = call.rid;
    Envelope& env = call.env;
    proto::Fetch m;
    ZG_RETURN_IF_ERROR(proto::decode_fetch(env, &m));
    Session* s;
    ZG_RETURN_IF_ERROR(find_owned(m.session_id, call.peer_key, &s));
    if (!s->durable)
      return Status::FailedPrecondition(
          "fetch needs a durable session (interactive results stream to their client)");
    zmq::message_t reply_msg;
    if (!build_fetch(*s, m, env.corr, &reply_msg)) {
      parked_.park(
          {rid, env.corr, m,
           now_ + std::min<Millis>(static_cast<Millis>(m.wait_ms), ParkedFetches::kMaxWaitMs)});
      return Status::OK();
    }
    reply_client(rid, std::move(reply_msg));
    return Status::OK();
  }

  // Answers parked fetches of session `sid` that now have something to say
  // (or, with sid empty, any whose wait is over).
  void wake_fetches(const std::string& sid) {
    for (ParkedFetch& p : parked_.take(sid, now_)) {
      Session* s = find_session(p.fetch.session_id);
      if (!s) {
        reply_error(frontend_, p.rid, p.corr, session_not_found(p.fetch.session_id));
        continue;
      }
      proto::Fetch f = p.fetch;
      if (now_ >= p.deadline) f.wait_ms = 0;
      zmq::message_t msg;
      if (!build_fetch(*s, f, p.corr, &msg)) {
        parked_.park(std::move(p));
        continue;
      }
      reply_client(p.rid, std::move(msg));
    }
  }

  // ---- distributor -------------------------------------------------------------

  void activate(Session* s) {
    if (!s->queue.empty()) dist_.activate(s->ordinal, s->owner);
  }

  // One dispatch round (head/distributor.hpp): each assignment is sent
  // before the next is asked for.
  void dispatch() {
    dist_.begin();
    auto ask = [this](std::uint64_t ord) { return turn_of(ord); };
    while (auto a = dist_.next(ask, nodes_.all())) {
      Session* s = session_by_ord(a->session);
      send_tasks(*nodes_.find(a->node), *s, a->count);
      if (s->durable && s->queue.size() < o_.durable_window / 2 && !s->unloaded.empty())
        load_ready(*s);
    }
  }

  // What a session can do now, for the distributor.
  SessionTurn turn_of(std::uint64_t ord) {
    using State = SessionTurn::State;
    Session* s = session_by_ord(ord);
    if (!s || s->queue.empty() || s->purging > 0) return {State::kIdle};
    if (s->durable && (!journal_->healthy() || journal_->backlog_bytes() > kMaxJournalBacklog)) {
      // Nothing could be recorded (or the disk is behind): results would
      // only pile up in memory. Run it once the journal catches up.
      return {State::kWaiting};
    }
    if (s->deadline > 0 && now_ >= s->deadline) {
      expire_session(*s);  // what has not run by its deadline faults `timeout`
      return {State::kIdle};
    }
    // Its clients are not reading: paused until they catch up (flush_clients).
    if (outbox_.must_pause(*s)) return {State::kPaused};
    return {State::kReady, s->service, s->queue.size(), s->queue.front().solo};
  }

  void send_tasks(NodeState& n, Session& s, std::uint64_t k) {
    std::size_t bytes = 64;
    for (std::uint64_t i = 0; i < k; ++i) {
      std::size_t b = s.queue[i].payload.size() + 12;
      if (i > 0 && bytes + b > kMaxReplyBytes) {  // stay under the frame limit
        k = i;
        break;
      }
      bytes += b;
    }
    // What the service's registration on this node says about timeouts and retries.
    const proto::ServiceAd* ad = registration_on(n, s.service);
    Millis timeout = task_timeout_for(s, ad);
    Writer w = proto::begin(proto::kTasks, 0, 3, bytes);
    w.str(s.service).array(static_cast<std::uint32_t>(k));
    std::uint64_t first_task = next_task_id_;
    for (std::uint64_t i = 0; i < k; ++i) w.array(2).u64(next_task_id_ + i).bin(s.queue[i].payload);
    w.u64(static_cast<std::uint64_t>(timeout));
    zmq::message_t body = w.finish();
    zmqu::SendStatus st = zmqu::send_routed(backend_, n.rid, body);
    if (st != zmqu::SendStatus::kOk) {
      if (st == zmqu::SendStatus::kWouldBlock)
        n.blocked = true;  // until it speaks again
      else
        lose_node(n.ordinal, NodeLoss::kUnreachable);
      return;
    }
    next_task_id_ += k;
    int svc_retries = ad ? static_cast<int>(ad->max_retries) : -1;
    // The node times each task from when a worker starts it. Should it never
    // report, the head's bound: every task queued there ahead of these, and
    // these, run one after another to their timeout, plus a grace.
    Millis backstop = 0;
    if (timeout > 0) {
      Millis serial = static_cast<Millis>(std::min<std::uint64_t>(n.inflight + k, 1'000'000));
      backstop = now_ + std::min<Millis>(timeout, kMaxBackstopUnit) * serial +
                 std::max<Millis>(kBackstopGrace, 2 * o_.heartbeat_ms * o_.heartbeat_misses);
    }
    inflight_.add_batch(first_task, k, n.ordinal, backstop);
    for (std::uint64_t i = 0; i < k; ++i) {
      Request r = std::move(s.queue.front());
      s.queue.pop_front();
      ++s.clients[r.client].running;
      inflight_.add(first_task + i,
                    InFlight{s.ordinal, n.ordinal, now_, backstop, std::move(r), svc_retries});
    }
    n.inflight += k;
    s.running += k;
    sessions_.touch(s);
  }

  // The registration of the highest version of `service` that node `n`
  // hosts (its task timeout and retries), or nullptr.
  static const proto::ServiceAd* registration_on(const NodeState& n, const std::string& service) {
    auto wanted = spec::parse(service);
    if (!wanted.ok()) return nullptr;
    const proto::ServiceAd* best = nullptr;
    std::string best_version;
    for (const auto& ad : n.service_info) {
      if (!spec::matches(*wanted, ad.advertised)) continue;
      auto v = spec::parse_advertised(ad.advertised).version;
      if (best && spec::compare_versions(v, best_version) <= 0) continue;
      best_version = v;
      best = &ad;
    }
    return best;
  }

  // The task timeout of a session's tasks on a node: the session's, else the
  // head's for the service, else the service's registration, else the head's.
  Millis task_timeout_for(const Session& s, const proto::ServiceAd* ad) const {
    if (s.task_timeout_ms > 0) return s.task_timeout_ms;
    auto st = o_.service_task_timeout_ms.find(s.service);
    if (st == o_.service_task_timeout_ms.end()) {  // "name@2/op" also takes name's
      if (auto sp = spec::parse(s.service); sp.ok())
        st = o_.service_task_timeout_ms.find(std::string(sp->name));
    }
    if (st != o_.service_task_timeout_ms.end()) return st->second;
    if (ad && ad->task_timeout_ms > 0)
      return static_cast<Millis>(
          std::min<std::uint64_t>(ad->task_timeout_ms, proto::kMaxDurationMs));
    return o_.task_timeout_ms;
  }

  // Records the answer of one request: interactive ones go to their client;
  // durable ones to the journal first (flush_answers), counted once synced.
  void answer(Session& s, Request& r, std::string_view fault_code, std::string_view data) {
    Client& c = s.clients[r.client];
    if (c.removed) return;  // removed with its client: the answer is discarded
    if (s.purging > 0) {
      // A purge is being written: recording this would re-create its keys.
      // Should the purge fail, the request runs again.
      s.queue.push_front(std::move(r));
      return;
    }
    if (s.durable) {
      if (s.is_answered(r.id)) return;  // recorded once, whatever arrives twice
      ++s.committing;
      AnswerRound& round = answers_[s.ordinal];
      proto::write_response_item(round.items, r.id, r.user_data, fault_code, data);
      round.list.push_back({std::move(r), fault_code.empty()});
      return;
    }
    count_answer(s, c, fault_code.empty());
    outbox_.add(s, c, r.id, r.user_data, fault_code, data);
  }

  void count_answer(Session& s, Client& c, bool ok) {
    if (ok) {
      ++s.done;
      ++c.done;
      ++total_done_;
    } else {
      ++s.faulted;
      ++c.faulted;
      ++total_faulted_;
    }
    sessions_.touch(s);
  }

  // Journals the answers gathered this round: one response record per session.
  void flush_answers() {
    if (answers_.empty()) return;
    for (auto& [ord, round] : answers_) {
      Session* s = session_by_ord(ord);
      std::vector<Answer>& list = round.list;
      if (!s || list.empty()) continue;
      round.items.patch_array32(round.count_at, static_cast<std::uint32_t>(list.size()));
      JournalOp op;
      op.puts.emplace_back(jkey::numbered(jkey::kAnswers, s->id, s->next_resp_seq),
                           round.items.finish_string());
      s->journal_bytes += op.puts.back().second.size();
      sessions_.touch(*s);
      s->next_resp_seq += list.size();
      auto shared = std::make_shared<std::vector<Answer>>(std::move(list));
      submit(std::move(op), [this, ord = ord, shared](bool ok, const std::string&) {
        Session* s = session_by_ord(ord);
        if (!s) return;  // purged meanwhile
        s->committing -= shared->size();
        for (auto& a : *shared) {
          Client& c = s->clients[a.request.client];
          if (!ok) {
            // Not recorded: it runs again once the journal is back.
            requeue(*s, std::move(a.request), false);
            continue;
          }
          if (c.removed || s->is_answered(a.request.id)) continue;
          s->set_answered(a.request.id);
          count_answer(*s, c, a.ok);
        }
        if (ok) crash_.reach("after-results");
        wake_fetches(s->id);
      });
    }
    answers_.clear();
  }

  // ---- backend (nodes) ---------------------------------------------------------

  void on_backend(std::vector<zmq::message_t>& frames, zmqu::RecvStatus rs) {
    if (frames.empty()) return;
    if (curve_) {
      // Only nodes our ZAP handler admitted carry a User-Id: nothing else is served.
      if (zmqu::user_id(frames.back()).empty()) return;
    }
    std::string rid = rid_of(frames[0]);
    NodeState* node = nodes_.heard_from(rid, now_);
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
    if (!node && (env.type == proto::kHeartbeat || env.type == proto::kResults)) {
      // Declared dead (its work was re-queued) or the head restarted: it
      // must register again.
      reply_error(backend_, rid, env.corr, Status::NotFound("unknown node: register first"));
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
        NodeState& n = register_node(rid, m);
        if (curve_) {
          // Admitted on the node port by our ZAP handler: note which key it holds.
          n.key_name = owner_name(zmqu::user_id(frames[1]));
          ZG_LOG(kInfo, kLog, "node " + n.id + " holds node key " + n.key_name);
        }
        proto::Registered r{static_cast<std::uint64_t>(o_.heartbeat_ms),
                            static_cast<std::uint64_t>(o_.heartbeat_misses), instance_};
        reply(backend_, rid, proto::encode_registered(env.corr, r));
        return;
      }
      case proto::kHeartbeat: {
        proto::Heartbeat m;
        st = proto::decode_heartbeat(env, &m);
        if (st.ok() && m.has_capacity && m.capacity != node->capacity) {
          // Adaptive prefetch, or workers stuck in timed-out calls: the node
          // asks for the credit it can use. A smaller credit only stops new
          // work until the node's in-flight count is below it.
          ZG_LOG(kDebug, kLog,
                 "node " + node->id + " capacity " + std::to_string(node->capacity) + " -> " +
                     std::to_string(m.capacity) + " (stuck workers " + std::to_string(m.stuck) +
                     ")");
          if (m.capacity > node->capacity)
            for (auto& kv : sessions_.all()) activate(kv.second.get());
          node->capacity = m.capacity;
        }
        if (st.ok() && m.has_capacity) node->stuck = m.stuck;
        break;
      }
      case proto::kResults: {
        proto::Results m;
        st = proto::decode_results(env, &m);
        if (st.ok()) on_results(*node, m);
        break;
      }
      case proto::kBye:
        if (node) lose_node(node->ordinal, NodeLoss::kLeft);
        return;
      default:
        st = Status::Protocol("unknown message type " + std::to_string(env.type));
    }
    if (!st.ok()) {
      if (st.code() == Code::kProtocol) ++bad_messages_;
      reply_error(backend_, rid, env.corr, st);
    }
  }

  NodeState& register_node(const std::string& rid, const proto::Register& m) {
    // The same node id on a new connection replaces the old registration.
    for (std::uint64_t old : nodes_.replaced_by(rid, m.node_id))
      lose_node(old, NodeLoss::kReRegistered);
    NodeState& n = nodes_.add(rid, m, now_);
    ZG_LOG(kInfo, kLog,
           "node joined node=" + n.id + " host=" + n.host +
               " workers=" + std::to_string(n.workers) + " capacity=" + std::to_string(n.capacity));
    // Sessions waiting for a node of their service can go now.
    for (auto& kv : sessions_.all()) activate(kv.second.get());
    return n;
  }

  void on_results(NodeState& node, proto::Results& m) {
    for (const proto::Result1& r : m.items) {
      std::optional<InFlight> f = inflight_.release(r.task_id, node.ordinal);
      if (!f) continue;  // late or foreign
      Session* s = settle(*f, &node);
      // Counted as runs of the node, except tasks it handed back unstarted.
      if (r.fault_code.empty())
        ++node.done;
      else if (r.fault_code != proto::fault::kNotRun)
        ++node.faulted;
      // Faults that say something about the node rather than the input.
      if (r.fault_code == proto::fault::kServiceError ||
          r.fault_code == proto::fault::kUnknownService)
        ++node.bad;
      if (!s) continue;  // session purged meanwhile: drop
      if (r.fault_code == proto::fault::kRetryable) {
        requeue(*s, std::move(f->request), true, f->svc_max_retries, "lost");
        continue;
      }
      if (r.fault_code == proto::fault::kTaskTimeout) {
        // Only this request ran past its timeout: it alone is charged.
        ZG_LOG(kWarn, kLog,
               "task timeout session=" + s->id + " request=" + std::to_string(f->request.id) +
                   " node=" + node.id);
        requeue(*s, std::move(f->request), true, f->svc_max_retries, "ran past its task timeout");
        continue;
      }
      if (r.fault_code == proto::fault::kNotRun) {
        // Handed back unstarted (every worker of the node stuck): not charged.
        requeue(*s, std::move(f->request), false);
        continue;
      }
      answer(*s, f->request, r.fault_code, r.data);
    }
    check_quarantine(node);
  }

  // A node whose requests fault far more often than its peers' gets no new
  // work (its in-flight work finishes); `zgrid nodes` shows it.
  void check_quarantine(NodeState& n) {
    double rate = 0, peer_rate = 0;
    if (!nodes_.check_quarantine(n, &rate, &peer_rate)) return;
    ZG_LOG(kError, kLog,
           "node quarantined node=" + n.id + " host=" + n.host +
               " fault_rate=" + std::to_string(rate) + " peers=" + std::to_string(peer_rate));
  }

  // The session's deadline passed: what has not run faults `timeout`.
  void expire_session(Session& s) {
    std::uint64_t n = fault_unrun(s, proto::fault::kTimeout,
                                  "the session's deadline passed before this request ran");
    if (n > 0)
      ZG_LOG(kWarn, kLog,
             "session deadline passed session=" + s.id + " timed_out=" + std::to_string(n));
  }

  // The backstop of node-enforced task timeouts: tasks a node was sent and
  // never reported within the bound set at dispatch are treated as a lost run
  // (charged). Only sends with a task timeout have a backstop.
  void check_backstops() {
    for (auto& [t, f] : inflight_.release_overdue(now_)) {
      NodeState* n = nodes_.find(f.node);
      Session* s = settle(f, n);
      if (!s) continue;
      ZG_LOG(kWarn, kLog,
             "node " + (n ? n->id : std::string("?")) + " never reported task " +
                 std::to_string(t) + " past its timeout: treated as lost session=" + s->id +
                 " request=" + std::to_string(f.request.id));
      requeue(*s, std::move(f.request), true, f.svc_max_retries, "lost");
    }
  }

  // A task has left the in-flight table (finished, lost or overdue): the
  // counters of its node (when still known), session and client. Returns its
  // session, or nullptr when that was purged meanwhile.
  Session* settle(const InFlight& f, NodeState* n) {
    if (n) --n->inflight;
    Session* s = session_by_ord(f.session);
    if (!s) return nullptr;
    --s->running;
    --s->clients[f.request.client].running;
    sessions_.touch(*s);
    return s;
  }

  // Puts a request back at the front of its session's queue (it runs next),
  // or faults it when it has used up its tries. `max_retries` >= 0: the
  // service's registration overrides the head's.
  // `why` says what charged it ("lost", "ran past its task timeout") for the
  // fault message.
  void requeue(Session& s, Request r, bool charge, int max_retries = -1,
               std::string_view why = "lost") {
    if (charge) ++r.tries;
    if (max_retries < 0) max_retries = o_.max_retries;
    if (static_cast<int>(r.tries) > max_retries) {
      ZG_LOG(kWarn, kLog,
             "retry limit reached session=" + s.id + " request=" + std::to_string(r.id));
      answer(s, r, proto::fault::kRetryLimitExceeded,
             "request " + std::string(why) + " " + std::to_string(r.tries) +
                 (r.tries == 1 ? " time" : " times") + " (max retries " +
                 std::to_string(max_retries) + ")");
      return;
    }
    if (s.state == proto::SessionState::kCancelled) {
      answer(s, r, proto::fault::kCancelled, "session cancelled before this request ran");
      return;
    }
    s.queue.push_front(std::move(r));
    activate(&s);
  }

  // A node died, left or went silent: its in-flight work goes back to the
  // queues. Poison isolation: a crash is charged to a request only when the
  // node held it alone; requests of a lost batch run alone from now on.
  void lose_node(std::uint64_t ordinal, NodeLoss why) {
    NodeState* n = nodes_.find(ordinal);
    if (!n) return;
    bool alone = n->inflight == 1;
    bool graceful = why == NodeLoss::kLeft;
    auto lost = nodes_.lose(ordinal, inflight_);
    // Newest first: each goes to the front of its queue, so the order holds.
    for (auto it = lost->orphans.rbegin(); it != lost->orphans.rend(); ++it) {
      InFlight& f = it->second;
      Session* s = settle(f, nullptr);  // the node goes as a whole
      if (!s) continue;
      if (!graceful && !alone) f.request.solo = true;
      requeue(*s, std::move(f.request), !graceful && alone, f.svc_max_retries, "lost");
    }
    ZG_LOG(kWarn, kLog,
           std::string("node lost node=") + lost->node.id + " host=" + lost->node.host +
               " reason=" + loss_name(why) + " requeued=" + std::to_string(lost->orphans.size()));
  }

  // ---- clients: responses and held acks -----------------------------------------

  void flush_clients() {
    Outbox::Flushed f =
        outbox_.flush(sessions_, now_, [this](const std::string& rid, zmq::message_t& body) {
          return zmqu::send_routed(frontend_, rid, body);
        });
    for (Session* s : f.may_resume) activate(s);  // paused for its clients (turn_of)
    for (Session* s : f.delivered) maybe_retire(s);
  }

  // ---- timers ------------------------------------------------------------------

  void on_tick(Millis now) {
    now_ = now;
    if (guard_) guard_->tick(now);
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
      for (auto& kv : nodes_.all()) {
        const NodeState& n = kv.second;
        if (nodes_.silent(n, now)) {
          dead.push_back(kv.first);
          continue;
        }
        zmq::message_t hb = proto::encode_heartbeat(instance_);
        if (zmqu::send_routed(backend_, n.rid, hb) == zmqu::SendStatus::kUnreachable)
          dead.push_back(kv.first);
      }
      for (std::uint64_t d : dead) lose_node(d, NodeLoss::kSilent);
      if (!dead.empty()) dispatch();
    }
    if (!parked_.empty()) wake_fetches("");
    check_backstops();
    if (journal_ && journal_->reopens() != reopens_seen_) {
      reopens_seen_ = journal_->reopens();
      if (Status st = reconcile(); !st.ok()) fatal_ = st;
      journal_->reopen_taken(reopens_seen_);
      journal_->mark_healthy();
    }
    retry_reads();
    sweep_idle(now);
    if (o_.hooks.verify_tables && !sessions_.verify()) {
      // A test head: the per-key loads drifted from their sessions (a change
      // of counters without SessionTable::touch). Fail loudly.
      ZG_LOG(kError, kLog, "test check failed: per-key session loads drifted");
      std::abort();
    }
  }

  // Client idle timeout (docs/architecture.md, "Idle timeouts"): an open client idle past its
  // session's timeout is removed with every request it sent. Idle interactive sessions with no
  // client and no work are closed.
  void sweep_idle(Millis now) {
    SessionTable::Sweep sw = sessions_.sweep(now, o_.session_idle_timeout_ms, o_.retention_ms);
    for (auto [s, ci] : sw.idle_clients) remove_client(*s, ci);
    std::vector<Session*>& drop = sw.idle_sessions;
    std::vector<Session*>& retired = sw.retention_over;
    for (Session* s : drop) {
      ZG_LOG(kInfo, kLog, "idle session closed session=" + s->id);
      drop_session(s);
    }
    for (Session* s : retired) {
      ZG_LOG(kInfo, kLog, "retention period over session=" + s->id);
      purge_session(s, [this, ord = s->ordinal](bool ok, const std::string&) {
        if (Session* s = session_by_ord(ord); s && !ok) s->retry_purge_at = now_ + kRetryAfterMs;
      });
    }
  }

  // Removes an idle client with every request it sent (docs/architecture.md, "Idle timeouts"). For
  // a durable session the removal is journaled first (its client record says removed; its request
  // batches are deleted) and applied only once that is durable: a failed write leaves the client as
  // it was, logged, and the sweep tries again later. Meanwhile the client is refused like a removed
  // one.
  void remove_client(Session& s, std::uint32_t ci) {
    Client& c = s.clients[ci];
    if (!s.durable) {
      apply_client_removal(s, ci);
      return;
    }
    JournalOp op;
    op.maintenance = true;
    for (const BatchRef& b : s.batches)
      if (b.client == ci) {
        // The index entry stays: it keeps request ids from being reused and
        // tells fetch and recovery whose answers to leave out.
        op.deletes.push_back(jkey::numbered(jkey::kRequests, s.id, b.first_id));
      }
    c.removed = true;  // for the record only
    put_client_record(op, s, c, c.acked_seq, c.sent, c.flushed_id, c.ended);
    c.removed = false;
    c.removing = true;
    submit(std::move(op), [this, ord = s.ordinal, ci](bool ok, const std::string& err) {
      Session* s = session_by_ord(ord);
      if (!s) return;
      Client& c = s->clients[ci];
      c.removing = false;
      if (ok) {
        apply_client_removal(*s, ci);
        return;
      }
      c.retry_removal_at = now_ + kRetryAfterMs;
      ZG_LOG(kError, kLog,
             "client removal failed session=" + s->id + " client=" + c.id + ": " + err +
                 "; it stays until the journal takes the removal");
    });
  }

  void apply_client_removal(Session& s, std::uint32_t ci) {
    Client& c = s.clients[ci];
    std::deque<Request> keep;
    for (auto& r : s.queue)
      if (r.client != ci) keep.push_back(std::move(r));
    s.queue.swap(keep);
    // Answers already recorded for it are taken back: removed means removed.
    s.done -= c.done;
    s.faulted -= c.faulted;
    outbox_.forget(s, c);
    c.removed = true;
    s.requests_removed += c.sent;
    ++s.clients_removed;
    sessions_.touch(s);
    if (journal_) wake_fetches(s.id);  // it may be complete now
    ZG_LOG(kWarn, kLog,
           "client removed (idle " + format_duration(s.client_idle_timeout_ms) + ") session=" +
               s.id + " client=" + c.id + " requests_removed=" + std::to_string(c.sent));
    // Its responses are gone: a session paused for them may run again.
    activate(&s);
  }

  const HeadOptions o_;
  const Clock& clock_;
  zmq::context_t ctx_;
  zmq::socket_t frontend_, backend_, journal_pair_;
  std::string frontend_ep_, backend_ep_, instance_;
  Millis now_ = 0;
  CrashPoint crash_;

  std::unique_ptr<Journal> journal_;
  FdLimit fd_limit_;
  std::unique_ptr<ListenGuard> guard_;  // closes the ports while descriptors are short
  zmq::socket_t accept_monitors_[2];    // connections accepted on frontend, backend
  int accept_monitor_seq_ = 0;
  std::uint64_t reopens_seen_ = 0;
  std::deque<std::pair<std::uint64_t, OpDone>> pending_ops_;  // submitted, not yet synced
  std::map<std::uint64_t, AnswerRound> answers_;              // durable answers of this round
  ParkedFetches parked_;  // fetches waiting for responses (head/fetch.hpp)
  std::unordered_map<std::string, std::pair<Millis, int>> error_budget_;  // by routing id

  SessionTable sessions_;  // head/session_table.hpp
  Outbox outbox_{{o_.response_window, o_.response_queue_max, o_.queue_hwm}};  // head/outbox.hpp
  Distributor dist_{o_.max_task_batch};  // who gets work next (head/distributor.hpp)
  Security security_{o_, ctx_};          // keys, ZAP, owners (head/security.hpp)
  bool curve_ = false;                   // security_.curve(), once started
  NodeTable nodes_{o_.heartbeat_ms, o_.heartbeat_misses};  // head/node_table.hpp
  InflightTable inflight_;  // every task on a node (head/inflight_table.hpp)

  std::uint64_t next_task_id_ = 1;
  std::uint64_t total_done_ = 0, total_faulted_ = 0, bad_messages_ = 0;
  // Journal read problems (docs/operations.md, "Journal read errors").
  std::uint64_t journal_read_errors_ = 0, journal_corrupt_records_ = 0, data_loss_requests_ = 0;
  std::set<std::uint64_t> read_retry_;  // sessions whose reads are tried again on the tick
  Status fatal_;                        // set by the tick: the head stops with it
  Millis last_hb_ms_ = 0, rate_mark_ms_ = 0;
  std::uint64_t rate_mark_count_ = 0;
  double rate_ = 0;

  static constexpr Millis kLiveWindowMs = 10'000;
  // A journaled removal or retention purge that failed is tried again after this.
  static constexpr Millis kRetryAfterMs = 5'000;
  static constexpr Millis kReadRetryMs = 1'000;  // a failed journal read is tried again after this
  static constexpr int kErrorBudget = 100;       // error replies per peer per second for junk
  static constexpr std::size_t kMaxJournalBacklog = 32u << 20;
  // Task-timeout backstop: per task queued ahead at most this much (a
  // week), plus a grace for the node's report to arrive.
  static constexpr Millis kMaxBackstopUnit = 7 * 86'400'000LL;
  static constexpr Millis kBackstopGrace = 5'000;
  // Replies and pushed batches stay well under the 8 MiB frame limit.
  static constexpr std::size_t kMaxReplyBytes = 4u << 20;
};

}  // namespace

Status purge_offline(const std::string& data_dir, const std::string& sid) {
  return Journal::purge_offline(data_dir, sid);
}

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
