#include "node/io_loop.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

#include "common/codec.hpp"
#include "common/log.hpp"
#include "common/util.hpp"
#include "node/instances.hpp"

namespace zgrid::node {

namespace {

constexpr const char* kLog = "node";

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

IoLoop::IoLoop(const NodeOptions& o, zmq::context_t& ctx, WorkerPool& pool, svc::Host& host)
    : o_(o),
      ctx_(ctx),
      pool_(pool),
      host_(host),
      credit_(pool.workers(), o.prefetch),
      inline_(host, static_cast<std::size_t>(pool.workers()), o.hooks.faulty),
      hb_ms_(o.heartbeat_ms),
      misses_(o.heartbeat_misses) {
  advertise(host, &services_, &service_info_);
}

Status IoLoop::run(zmq::socket_t& pull, const std::atomic<bool>& stop) {
  endpoints_ = split_endpoints(o_.head);
  if (endpoints_.empty()) return Status::InvalidArgument("--head names no endpoint");
  head_.endpoint = endpoints_.front();
  ZG_RETURN_IF_ERROR(connect());
  const Clock& clock = SteadyClock::instance();
  std::vector<zmq::message_t> frames;
  std::vector<zmq::pollitem_t> items;
  while (!stop.load()) {
    Millis now = clock.now_ms();
    Millis next = tick(now);
    items.clear();
    items.push_back({static_cast<void*>(head_.socket), 0, ZMQ_POLLIN, 0});
    items.push_back({static_cast<void*>(pull), 0, ZMQ_POLLIN, 0});
    for (Link& p : probes_) items.push_back({static_cast<void*>(p.socket), 0, ZMQ_POLLIN, 0});
    const std::uint64_t version = probes_version_;
    try {
      zmq::poll(items.data(), items.size(),
                std::chrono::milliseconds(
                    std::max<Millis>(1, std::min({next, Millis{200}, hold_.due_in(now)}))));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Status::Internal(std::string("poll failed: ") + e.what());
    }
    now = clock.now_ms();
    if (items[0].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 256; ++i) {
        auto rs = zmqu::recv_message(head_.socket, &frames, 2);
        if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) break;
        last_head_ms_ = now;
        if (rs == zmqu::RecvStatus::kOk && frames.size() == 1) on_head_message(frames[0], now);
      }
    }
    if (items[1].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 1024; ++i) {
        auto rs = zmqu::recv_message(pull, &frames, 2);
        if (rs != zmqu::RecvStatus::kOk) break;
        on_worker_results(frames, now);
      }
    }
    hold_.take_due(now, &to_send_);
    send_results(to_send_);
    // The other heads' answers (only while a head is looked for). A probe
    // that becomes the head, or a registration that closes the probes,
    // ends this pass: the rest is read at the next.
    for (std::size_t p = 0; p + 2 < items.size() && probes_version_ == version; ++p) {
      if (!(items[p + 2].revents & ZMQ_POLLIN)) continue;
      for (int i = 0; i < 16 && probes_version_ == version; ++i) {
        auto rs = zmqu::recv_message(probes_[p].socket, &frames, 2);
        if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) break;
        if (rs == zmqu::RecvStatus::kOk && frames.size() == 1) on_probe_message(p, frames[0], now);
      }
    }
  }
  // Graceful stop: what is held goes first; then tell the head we are
  // leaving so it re-queues our work now.
  hold_.take_all(&to_send_);
  send_results(to_send_);
  if (registered_) send_bye(head_);
  ZG_LOG(kInfo, kLog,
         "stopped; tasks run inline on the I/O thread: " + std::to_string(inline_tasks_) +
             "; results messages: " + std::to_string(hold_.received()) + " made, " +
             std::to_string(hold_.sent()) + " sent");
  return Status::OK();
}

Result<IoLoop::Link> IoLoop::open_link(const std::string& endpoint) {
  zmqu::SocketOptions so;
  so.curve_server_key = o_.head_key;
  so.curve_public = o_.public_key;
  so.curve_secret = o_.secret_key;
  Link l;
  l.endpoint = endpoint;
  auto d = zmqu::connect_dealer(ctx_, endpoint, so, &l.monitor);
  if (!d.ok()) return d.status();
  l.socket = std::move(d).value();
  return l;
}

// A new DEALER to the head's endpoint (at start, and after the head fell
// silent): a new generation, registering from scratch.
Status IoLoop::connect() {
  auto l = open_link(head_.endpoint);
  if (!l.ok()) return l.status();
  head_ = std::move(l).value();
  registered_ = false;
  new_generation();
  return Status::OK();
}

// A new connection generation (reconnect, head stopping or not knowing
// us): work of the old one is dropped, and so are stateful sessions'
// instances (the head replays those sessions on fresh ones).
void IoLoop::new_generation() {
  hold_.take_all(&to_send_);  // the old connection's results: dropped
  to_send_.clear();
  ++generation_;
  pool_.drop_older(generation_);
  host_.end_all_sessions(generation_);
}

// Periodic work; returns milliseconds until it wants to run again.
Millis IoLoop::tick(Millis now) {
  // Read handshake events every tick, so the monitors' queues never fill.
  Status handshake = head_.monitor.check();
  const std::string* refused_by = &head_.endpoint;
  for (Link& p : probes_)
    if (Status st = p.monitor.check(); !st.ok() && handshake.ok()) {
      handshake = st;
      refused_by = &p.endpoint;
    }
  if (!registered_) {
    // A refused key never connects: say so (every 30 s at most), keep trying
    // (the operator may add the key and SIGHUP the head).
    if (!handshake.ok() && now - last_auth_log_ms_ >= 30'000) {
      ZG_LOG(kError, kLog, "cannot register with " + *refused_by + ": " + handshake.message());
      last_auth_log_ms_ = now;
    }
    return search(now);
  }
  Millis next_timeout = check_task_timeouts(now);
  if (credit_.adapt(now, pool_.task_clock())) send_heartbeat(now);
  // Liveness from any traffic: results the head had within the interval
  // say the node lives, so no heartbeat goes — unless the head has been
  // quiet for an interval too: it speaks only to answer (tasks, or the
  // answer to a heartbeat), so a heartbeat asks it to.
  const Millis hb_due = heartbeat_due();
  if (now >= hb_due) send_heartbeat(now);
  Millis silent = now - last_head_ms_;
  if (silent > hb_ms_ * misses_) {
    ZG_LOG(kWarn, kLog,
           "head silent for " + format_duration(silent) + ", reconnecting to " + head_.endpoint +
               (failover() ? " and looking for the active head" : ""));
    if (failover()) fast_until_ms_ = std::max(fast_until_ms_, now + kFastSearchMs);
    note_lost(true);
    if (Status st = connect(); !st.ok()) ZG_LOG(kError, kLog, st.ToString());
    return 1;
  }
  Millis next = std::max<Millis>(1, heartbeat_due() - now);
  next = std::min(next, next_timeout);
  if (credit_.adaptive()) next = std::min(next, Credit::kAdaptEveryMs);
  // Failover: a head silent for 1.5 heartbeats may be dead. Ask the others
  // now, so that a standby that takes over is found at once, not after the
  // full silence and a backoff. A head that talks is left alone.
  if (failover() && 2 * silent > 3 * hb_ms_) {
    if (probes_.empty()) fast_until_ms_ = now + kFastSearchMs;
    next = std::min(next, probe_others(now));
  } else if (!probes_.empty()) {
    close_probes();
  }
  return next;
}

// Not registered: register with the head's link at its backoff and, with
// several heads, with every other one too (the first to answer wins).
Millis IoLoop::search(Millis now) {
  if (now >= head_.next_register_ms) send_register(head_, now);
  Millis next = head_.next_register_ms - now;
  if (failover()) next = std::min(next, probe_others(now));
  return std::max<Millis>(1, next);
}

// Opens a link to every known head but the current one, and sends
// `register` on each that is due. Returns the milliseconds to the next.
Millis IoLoop::probe_others(Millis now) {
  auto have = [&](const std::string& ep) {
    if (ep == head_.endpoint) return true;
    for (const Link& p : probes_)
      if (p.endpoint == ep) return true;
    return false;
  };
  for (const auto* list : {&endpoints_, &learned_})
    for (const std::string& ep : *list) {
      if (have(ep)) continue;
      auto l = open_link(ep);
      if (!l.ok()) {  // Validate checked the list's; learn() those it learned
        if (now - last_auth_log_ms_ >= 30'000) {
          ZG_LOG(kError, kLog, l.status().message());
          last_auth_log_ms_ = now;
        }
        continue;
      }
      probes_.push_back(std::move(l).value());
      ++probes_version_;
    }
  Millis next = kProbeEveryMs;
  for (Link& p : probes_) {
    if (now >= p.next_register_ms) send_register(p, now);
    next = std::min(next, p.next_register_ms - now);
  }
  return std::max<Millis>(1, next);
}

void IoLoop::send_register(Link& l, Millis now) {
  proto::Register r;
  r.node_id = node_id();
  r.host = hostname();
  r.pid = static_cast<std::uint64_t>(getpid());
  r.workers = credit_.workers();
  r.capacity = std::max<std::uint64_t>(1, credit_.capacity());  // 0 only in heartbeats
  r.services = services_;
  r.service_info = service_info_;
  zmq::message_t m = proto::encode_register(++corr_, r);
  zmqu::SendStatus sent = zmqu::send_one(l.socket, m);  // EAGAIN while the head is unreachable
  if (sent != zmqu::SendStatus::kOk && failover()) {
    // Not connected (yet): with several heads, a link just opened to a
    // head that is up connects within milliseconds; try again then rather
    // than a backoff later (a local EAGAIN, no traffic).
    l.next_register_ms = now + kUnsentRetryMs;
    return;
  }
  // Backoff 250 ms doubling to the cap; while a lost head is looked for, a
  // steady kProbeEveryMs.
  Millis cap =
      std::min(now < fast_until_ms_ ? kProbeEveryMs : o_.reconnect_max_ms, o_.reconnect_max_ms);
  l.backoff_ms = std::min<Millis>(l.backoff_ms == 0 ? 250 : l.backoff_ms * 2, cap);
  l.next_register_ms = now + l.backoff_ms;
}

void IoLoop::close_probes() {
  if (probes_.empty()) return;
  probes_.clear();
  ++probes_version_;
}

// A head answered `registered` on the head's link.
void IoLoop::adopt_registration(const proto::Registered& r, Millis now) {
  registered_ = true;
  epoch_ = r.epoch;
  head_instance_ = r.head_instance;
  max_epoch_ = std::max(max_epoch_, r.epoch);
  head_.backoff_ms = 0;
  fast_until_ms_ = 0;
  close_probes();
  if (r.heartbeat_ms > 0) hb_ms_ = static_cast<Millis>(r.heartbeat_ms);
  if (r.misses > 0) misses_ = static_cast<int>(r.misses);
  // The credit as it is now (stuck workers, adapted prefetch).
  send_heartbeat(now);
  std::string epoch = r.epoch > 0 ? " (epoch " + std::to_string(r.epoch) + ")" : "";
  if (!lost_head_.empty() && lost_head_ != head_.endpoint)
    ZG_LOG(kInfo, kLog,
           "head " + lost_head_ +
               (lost_silent_ ? " silent for " + format_duration(now - lost_heard_ms_)
                             : std::string(" stood down")) +
               "; registered with " + head_.endpoint + epoch);
  else
    ZG_LOG(kInfo, kLog,
           "registered with head " + head_.endpoint + epoch + " as node=" + node_id() +
               " workers=" + std::to_string(credit_.workers()) +
               " heartbeat=" + format_duration(hb_ms_) + " services=" + join(services_));
  lost_head_.clear();
}

// Another head answered `registered` with a newer epoch (or, with no head
// registered, any epoch not below the highest seen): it becomes the head.
// The old link is closed and its generation's work dropped (the new head
// dispatches again what was in flight on the old one).
void IoLoop::switch_to_probe(std::size_t i, const proto::Registered& r, Millis now) {
  if (registered_) note_lost(true);
  head_ = std::move(probes_[i]);
  probes_.erase(probes_.begin() + static_cast<std::ptrdiff_t>(i));
  ++probes_version_;
  new_generation();
  last_head_ms_ = now;
  adopt_registration(r, now);
}

// The registered head is given up: remembered for the line that says where
// the node went.
void IoLoop::note_lost(bool silent) {
  lost_head_ = head_.endpoint;
  lost_heard_ms_ = last_head_ms_;
  lost_silent_ = silent;
}

// The registration is with a head that lost its claim (its epoch is below
// one another head reported): drop it and its work, and look again.
void IoLoop::drop_stale(const std::string& why, bool silent, Millis now) {
  ZG_LOG(kWarn, kLog, why + "; looking for the active head");
  note_lost(silent);
  registered_ = false;
  new_generation();
  head_.next_register_ms = now;
  if (failover()) fast_until_ms_ = std::max(fast_until_ms_, now + kFastSearchMs);
}

// An active head's backend named by a standby: asked at once by its probe
// (added to the heads the node knows, bounded).
void IoLoop::learn(const std::string& backend, Millis now) {
  if (backend.empty()) return;
  bool known = std::find(endpoints_.begin(), endpoints_.end(), backend) != endpoints_.end() ||
               std::find(learned_.begin(), learned_.end(), backend) != learned_.end();
  if (!known) {
    if (backend.size() > proto::kMaxEndpointLength || backend.find("://") == std::string::npos) {
      ZG_LOG(kWarn, kLog, "a standby names the active head '" + backend + "': not an endpoint");
      return;
    }
    if (learned_.size() >= kMaxLearned) learned_.erase(learned_.begin());
    learned_.push_back(backend);
  }
  // (The head's link, if it is that head, is asked already: a second
  // register would only replace the registration an answer may be bringing.)
  for (Link& p : probes_)
    if (p.endpoint == backend) p.next_register_ms = std::min(p.next_register_ms, now);
}

// `not_active` from `from`: a standby. Its epoch raises the highest seen; a
// registration with it (it stood down) or with an older head ends; the
// active head it names is asked next.
void IoLoop::on_not_active(const proto::Error& e, const std::string& from, Millis now) {
  max_epoch_ = std::max(max_epoch_, e.epoch);
  if (now - last_not_active_log_ms_ >= 30'000) {
    ZG_LOG(kInfo, kLog,
           "head " + from + " is a standby (epoch " + std::to_string(e.epoch) + "); " +
               (e.active_backend.empty() ? std::string("no head is active yet (a takeover)")
                                         : "the active head is " + e.active_backend) +
               (failover() || !e.active_backend.empty() ? "; asking the others" : ""));
    last_not_active_log_ms_ = now;
  }
  if (e.active_backend.empty() && failover())
    fast_until_ms_ = std::max(fast_until_ms_, now + kFastSearchMs);  // a takeover under way
  learn(e.active_backend == from ? std::string() : e.active_backend, now);
  if (!registered_) return;
  if (from == head_.endpoint)
    drop_stale("head " + from + " is no longer active", false, now);
  else if (epoch_ < max_epoch_)
    drop_stale("head " + head_.endpoint + " (epoch " + std::to_string(epoch_) +
                   ") lost its claim: " + from + " reports epoch " + std::to_string(max_epoch_),
               true, now);
}

// When the next heartbeat is due: an interval after the node last sent the
// head anything, or, with the head quiet for an interval, an interval after
// the last heartbeat (whose answer is what the node hears the head by).
Millis IoLoop::heartbeat_due() const {
  const Millis by_traffic = last_sent_ms_ + hb_ms_;
  const Millis by_answer = std::max(last_head_ms_, last_hb_sent_ms_) + hb_ms_;
  return std::min(by_traffic, by_answer);
}

void IoLoop::send_heartbeat(Millis now) {
  zmq::message_t m = proto::encode_node_heartbeat(node_id(), credit_.capacity(), credit_.stuck(),
                                                  static_cast<std::uint64_t>(hb_ms_));
  (void)zmqu::send_one(head_.socket, m);
  last_hb_sent_ms_ = last_sent_ms_ = now;
}

// Task timeouts, counted from when a worker started the task: a task past
// its deadline is reported (kTaskTimeout: the head charges it alone and
// runs it again elsewhere) and cancelled; its worker is stuck until the call
// returns. Stuck workers take no work (the credit shrinks); when all are
// stuck, queued tasks go back to the head uncharged (kNotRun). Returns the
// milliseconds until the next deadline (or a second).
Millis IoLoop::check_task_timeouts(Millis now) {
  std::uint64_t stuck = 0;
  Millis next = pool_.check_timeouts(now, &timed_out_, &stuck);
  for (const TimedOut& t : timed_out_) {
    ZG_LOG(kWarn, kLog,
           "task " + std::to_string(t.task_id) + " ran past its task timeout (" +
               format_duration(t.ran) +
               "): reported to the head; its worker is stuck until "
               "the call returns");
    if (t.generation == generation_)
      send_result(t.task_id, proto::fault::kTaskTimeout,
                  "ran past its task timeout (stopped after " + format_duration(t.ran) + ")");
  }
  if (stuck != credit_.stuck()) {
    log::write(stuck > credit_.stuck() ? log::Level::kWarn : log::Level::kInfo, kLog,
               std::to_string(stuck) + " of " + std::to_string(credit_.workers()) +
                   " workers stuck in a timed-out call; asking for credit " +
                   std::to_string(credit_.capacity_for(stuck)));
    credit_.set_stuck(stuck);
    if (registered_) send_heartbeat(now);
  }
  if (credit_.all_stuck()) hand_back_queued();
  return next;
}

// Every worker is stuck: tasks waiting in the queue would wait for the
// stuck calls. Hand them back to the head, uncharged, to run elsewhere.
void IoLoop::hand_back_queued() {
  std::vector<Unclaimed> tasks = pool_.take_all();
  if (tasks.empty()) return;
  ZG_LOG(kWarn, kLog,
         "every worker is stuck: handing " + std::to_string(tasks.size()) +
             " queued tasks back to the head");
  for (const Unclaimed& u : tasks)
    if (u.batch->generation == generation_)
      send_result(u.batch->tasks.items[u.index].task_id, proto::fault::kNotRun,
                  "not started: every worker of this node is stuck");
}

void IoLoop::send_result(std::uint64_t task_id, std::string_view code, std::string_view message) {
  if (!registered_) return;
  Writer w = proto::begin(proto::kResults, 0, 1, 64 + message.size());
  w.array(1).array(3).u64(task_id).str(code).bin(message);
  zmq::message_t m = w.finish();
  if (zmqu::send_one(head_.socket, m) == zmqu::SendStatus::kOk)
    last_sent_ms_ = SteadyClock::instance().now_ms();
}

void IoLoop::on_head_message(zmq::message_t& frame, Millis now) {
  auto batch = std::make_shared<Batch>();
  batch->frame = std::move(frame);
  Envelope& env = batch->env;
  Status st = decode_envelope(batch->frame.data(), batch->frame.size(), &env);
  if (st.ok()) st = proto::check_version(env);
  if (!st.ok()) {
    ZG_LOG(kWarn, kLog, "bad message from head: " + st.ToString());
    return;
  }
  switch (env.type) {
    case proto::kRegistered: {
      proto::Registered r;
      if (!proto::decode_registered(env, &r).ok()) return;
      if (r.epoch < max_epoch_) {
        // A head that lost its claim (it froze, another took over): it
        // will stand down. Never registered with it; it forgets us now.
        send_bye(head_);
        if (registered_)
          drop_stale("head " + head_.endpoint + " reports epoch " + std::to_string(r.epoch) +
                         ", below epoch " + std::to_string(max_epoch_),
                     false, now);
        return;
      }
      adopt_registration(r, now);
      return;
    }
    case proto::kHeartbeat: {
      // The answer to ours: the interval to use from now on (older heads
      // send none, and heartbeats of their own on a timer).
      proto::HeadHeartbeat h;
      if (!proto::decode_head_heartbeat(env, &h).ok() || h.heartbeat_ms == 0) return;
      const auto ms = static_cast<Millis>(h.heartbeat_ms);
      if (ms != hb_ms_ && registered_) {
        ZG_LOG(kInfo, kLog,
               "head sets the heartbeat interval to " + format_duration(ms) + " (was " +
                   format_duration(hb_ms_) + ")");
        hb_ms_ = ms;
      }
      return;
    }
    case proto::kBye:
      // The head is stopping: register again (with backoff) once it is back.
      ZG_LOG(kInfo, kLog,
             "head " + head_.endpoint + " is stopping; will register again when it is back" +
                 (failover() ? " or another head is active" : ""));
      if (registered_) note_lost(false);
      registered_ = false;
      new_generation();
      head_.next_register_ms = now + 250;
      if (failover()) fast_until_ms_ = std::max(fast_until_ms_, now + kFastSearchMs);
      return;
    case proto::kTasks: {
      if (!registered_) return;
      if (Status s = proto::decode_tasks(env, &batch->tasks); !s.ok()) {
        ZG_LOG(kWarn, kLog, "bad task batch: " + s.ToString());
        return;
      }
      batch->generation = generation_;
      batch->serial = !batch->tasks.instance.empty();
      std::size_t n = batch->tasks.items.size();
      if (n == 0) return;
      if (run_inline(*batch, now)) return;
      pool_.push(std::move(batch));
      // Sent before the head saw our credit drop: it cannot run here now.
      if (credit_.all_stuck()) hand_back_queued();
      return;
    }
    case proto::kEndSession: {
      // A stateful session's instance is no longer needed (ended, or
      // replaced by a fresh one elsewhere). Closed off this thread.
      proto::EndSession m;
      if (Status s = proto::decode_end_session(env, &m); !s.ok()) {
        ZG_LOG(kWarn, kLog, "bad end_session: " + s.ToString());
        return;
      }
      host_.end_session(m.instance);
      return;
    }
    case proto::kError: {
      proto::Error e;
      if (!proto::decode_error(env, &e).ok()) return;
      if (e.code == Code::kNotFound) {
        // The head does not know us (it restarted, or declared us dead).
        ZG_LOG(kWarn, kLog, "head does not know this node (" + e.message + "); registering again");
        registered_ = false;
        new_generation();
        head_.next_register_ms = 0;
      } else if (e.code == Code::kNotActive) {
        on_not_active(e, head_.endpoint, now);
      } else {
        ZG_LOG(kWarn, kLog, "head error: " + std::string(code_name(e.code)) + ": " + e.message);
      }
      return;
    }
    default:
      ZG_LOG(kWarn, kLog,
             std::string("unexpected message from head: ") + proto::type_name(env.type));
  }
}

// A lone short task, run here rather than handed to a worker: waking a
// worker and being woken by its result are two thread hand-offs, each a
// wake-up of tens of microseconds on a VM, for a task of a few. Only when
// a worker is idle and nothing is queued (it would have started at once:
// nothing overtakes queued work), the service declares it may
// (ServiceInfo::run_inline: short, bounded, never waiting), its measured
// task time (ServiceTimes) says the message is under kInlineBudgetNs (so
// heartbeats and other messages wait at most about that; a service not
// measured yet goes to a worker first), and an instance is free at once.
// Never a stateful session's task or a pipelined service's. The task runs
// under the workers' rules (Instances::run: exceptions, the payload limit,
// the faulty hook) and counts in the task clock and the service's
// estimate; one that ran past its task timeout is reported task_timeout
// (its answer dropped), as a worker's would be, though only when it
// returns: this thread cannot cancel its own call. Its estimate then rises
// past the budget, so the service's next tasks go to the workers.
bool IoLoop::run_inline(const Batch& batch, Millis now) {
  const std::size_t n = batch.tasks.items.size();
  if (n > kMaxInlineTasks || !batch.tasks.instance.empty() || !registered_) return false;
  const Instances::Resolved& svc = inline_.resolve(batch.tasks.service);
  if (svc.service == nullptr || !svc.service->info.run_inline) return false;
  const std::uint64_t estimate = pool_.service_times().get(svc.service);
  if (estimate == 0 || estimate * n > kInlineBudgetNs) return false;
  if (!pool_.idle()) return false;
  svc::Service* instance = host_.try_take(*svc.service);
  if (instance == nullptr) return false;
  svc::Host::Lease lease(*svc.service, instance);  // given back when done
  if (instance->pipeline_depth() > 1) return false;
  const std::uint64_t timeout_ns = batch.tasks.timeout_ms * 1'000'000;
  std::size_t bytes = 64;
  for (const proto::Task& t : batch.tasks.items) bytes += 32 + t.payload.size();
  Writer w = proto::begin(proto::kResults, 0, 1, bytes);
  w.array(static_cast<std::uint32_t>(n));
  std::uint64_t all_ns = 0;
  using SteadyTime = std::chrono::steady_clock::time_point;
  SteadyTime last = std::chrono::steady_clock::now();
  for (const proto::Task& task : batch.tasks.items) {
    inline_.run(instance, svc, task, inline_out_);
    SteadyTime done = std::chrono::steady_clock::now();
    const auto took = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(done - last).count());
    last = done;
    all_ns += took;
    w.array(3).u64(task.task_id);
    if (timeout_ns > 0 && took >= timeout_ns) {
      const Millis ran = static_cast<Millis>(took / 1'000'000);
      ZG_LOG(kWarn, kLog,
             "task " + std::to_string(task.task_id) + " ran past its task timeout (" +
                 format_duration(ran) + ") on the I/O thread: reported to the head");
      w.str(proto::fault::kTaskTimeout)
          .bin("ran past its task timeout (stopped after " + format_duration(ran) + ")");
      continue;
    }
    if (inline_out_.fault_code.empty()) {
      pool_.add_task_time(took, 1);
      w.nil();
    } else {
      w.str(inline_out_.fault_code);
    }
    w.bin(inline_out_.data);
  }
  pool_.service_times().note(svc.service, all_ns, n);
  inline_tasks_ += n;
  hold_.add(generation_, /*more=*/false, w.finish(), now, &to_send_);
  send_results(to_send_);
  return true;
}

// An answer on a probe: another head's `not_active`, or `registered`.
bool IoLoop::on_probe_message(std::size_t i, zmq::message_t& frame, Millis now) {
  Envelope env;
  if (!decode_envelope(frame.data(), frame.size(), &env).ok() || !proto::check_version(env).ok())
    return false;
  if (env.type == proto::kError) {
    proto::Error e;
    if (proto::decode_error(env, &e).ok() && e.code == Code::kNotActive)
      on_not_active(e, probes_[i].endpoint, now);
    return false;
  }
  if (env.type != proto::kRegistered) return false;  // e.g. tasks from a head we said bye to
  proto::Registered r;
  if (!proto::decode_registered(env, &r).ok()) return false;
  // The registered head itself, reached by another name (a standby named
  // it as it advertises itself): it has moved our registration to this
  // connection, so the node moves too, as a reconnect.
  if (registered_ && r.head_instance == head_instance_ && r.epoch == epoch_) {
    ZG_LOG(kInfo, kLog,
           "head " + head_.endpoint + " is also " + probes_[i].endpoint +
               " (the same head under another name); registered there");
    registered_ = false;  // the same head: no line that it was lost
    switch_to_probe(i, r, now);
    return true;
  }
  // The registered head stays unless this one is newer; never a head older
  // than the newest seen. A head not taken is told bye (it forgets us).
  if (r.epoch < max_epoch_ || (registered_ && r.epoch <= epoch_)) {
    send_bye(probes_[i]);
    return false;
  }
  switch_to_probe(i, r, now);
  return true;
}

void IoLoop::send_bye(Link& l) {
  Writer w = proto::begin(proto::kBye, 0, 1);
  w.str(node_id());
  zmq::message_t m = w.finish();
  (void)zmqu::send_one(l.socket, m);
}

// frames: [generation (8 bytes) + more (1 byte), results message].
void IoLoop::on_worker_results(std::vector<zmq::message_t>& frames, Millis now) {
  if (frames.size() != 2 || frames[0].size() != sizeof(std::uint64_t) + 1) return;
  std::uint64_t gen;
  std::memcpy(&gen, frames[0].data(), sizeof gen);
  const bool more = static_cast<const char*>(frames[0].data())[sizeof gen] != 0;
  if (gen != generation_ || !registered_) return;  // work of a previous connection
  // Sent at the end of the pass (run's take_due): every message read in it
  // goes in one.
  hold_.hold(gen, more, std::move(frames[1]), now, &to_send_);
}

void IoLoop::send_results(std::vector<zmq::message_t>& out) {
  // Held across a reconnect: work of a previous connection, not sent.
  const bool current = registered_ && hold_.generation() == generation_;
  bool sent = false;
  for (auto& m : out)
    // The DEALER queues up to its HWM while connected; a drop here is covered
    // by the head re-queueing the work of a node it declares dead.
    if (current) sent |= zmqu::send_one(head_.socket, m) == zmqu::SendStatus::kOk;
  out.clear();
  if (sent) last_sent_ms_ = SteadyClock::instance().now_ms();  // a sign of life: no heartbeat due
}

}  // namespace zgrid::node
