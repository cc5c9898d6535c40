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
      hb_ms_(o.heartbeat_ms),
      misses_(o.heartbeat_misses) {
  advertise(host, &services_, &service_info_);
}

Status IoLoop::run(zmq::socket_t& pull, const std::atomic<bool>& stop) {
  ZG_RETURN_IF_ERROR(connect());
  const Clock& clock = SteadyClock::instance();
  std::vector<zmq::message_t> frames;
  while (!stop.load()) {
    Millis now = clock.now_ms();
    Millis next = tick(now);
    zmq::pollitem_t items[] = {{static_cast<void*>(dealer_), 0, ZMQ_POLLIN, 0},
                               {static_cast<void*>(pull), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2,
                std::chrono::milliseconds(std::max<Millis>(1, std::min<Millis>(next, 200))));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return Status::Internal(std::string("poll failed: ") + e.what());
    }
    now = clock.now_ms();
    if (items[0].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 256; ++i) {
        auto rs = zmqu::recv_message(dealer_, &frames, 2);
        if (rs == zmqu::RecvStatus::kNone || rs == zmqu::RecvStatus::kError) break;
        last_head_ms_ = now;
        if (rs == zmqu::RecvStatus::kOk && frames.size() == 1) on_head_message(frames[0], now);
      }
    }
    if (items[1].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 1024; ++i) {
        auto rs = zmqu::recv_message(pull, &frames, 2);
        if (rs != zmqu::RecvStatus::kOk) break;
        on_worker_results(frames);
      }
    }
  }
  // Graceful stop: tell the head we are leaving so it re-queues our work now.
  if (registered_) {
    Writer w = proto::begin(proto::kBye, 0, 1);
    w.str(node_id());
    zmq::message_t m = w.finish();
    (void)zmqu::send_one(dealer_, m);
  }
  return Status::OK();
}

Status IoLoop::connect() {
  zmqu::SocketOptions so;
  so.curve_server_key = o_.head_key;
  so.curve_public = o_.public_key;
  so.curve_secret = o_.secret_key;
  monitor_ = zmqu::HandshakeMonitor();
  auto d = zmqu::connect_dealer(ctx_, o_.head, so, &monitor_);
  if (!d.ok()) return d.status();
  dealer_ = std::move(d).value();
  registered_ = false;
  new_generation();
  next_register_ms_ = 0;
  return Status::OK();
}

// A new connection generation (reconnect, head stopping or not knowing
// us): work of the old one is dropped, and so are stateful sessions'
// instances (the head replays those sessions on fresh ones).
void IoLoop::new_generation() {
  ++generation_;
  pool_.drop_older(generation_);
  host_.end_all_sessions(generation_);
}

// Periodic work; returns milliseconds until it wants to run again.
Millis IoLoop::tick(Millis now) {
  // Read handshake events every tick, so the monitor's queue never fills.
  Status handshake = monitor_.check();
  if (!registered_) {
    // A refused key never connects: say so (every 30 s at most), keep trying
    // (the operator may add the key and SIGHUP the head).
    if (!handshake.ok() && now - last_auth_log_ms_ >= 30'000) {
      ZG_LOG(kError, kLog, "cannot register with " + o_.head + ": " + handshake.message());
      last_auth_log_ms_ = now;
    }
    if (now >= next_register_ms_) {
      proto::Register r;
      r.node_id = node_id();
      r.host = hostname();
      r.pid = static_cast<std::uint64_t>(getpid());
      r.workers = credit_.workers();
      r.capacity = std::max<std::uint64_t>(1, credit_.capacity());  // 0 only in heartbeats
      r.services = services_;
      r.service_info = service_info_;
      zmq::message_t m = proto::encode_register(++corr_, r);
      (void)zmqu::send_one(dealer_, m);  // EAGAIN while the head is unreachable
      register_backoff_ms_ = std::min<Millis>(
          register_backoff_ms_ == 0 ? 250 : register_backoff_ms_ * 2, o_.reconnect_max_ms);
      next_register_ms_ = now + register_backoff_ms_;
      register_sent_ms_ = now;
    }
    return next_register_ms_ - now;
  }
  Millis next_timeout = check_task_timeouts(now);
  if (credit_.adapt(now, pool_.task_clock())) send_heartbeat(now);
  if (now - last_hb_sent_ms_ >= hb_ms_) send_heartbeat(now);
  if (now - last_head_ms_ > hb_ms_ * misses_) {
    ZG_LOG(
        kWarn, kLog,
        "head silent for " + format_duration(now - last_head_ms_) + ", reconnecting to " + o_.head);
    if (Status st = connect(); !st.ok()) ZG_LOG(kError, kLog, st.ToString());
    return 1;
  }
  Millis next = std::max<Millis>(1, hb_ms_ - (now - last_hb_sent_ms_));
  next = std::min(next, next_timeout);
  return credit_.adaptive() ? std::min(next, Credit::kAdaptEveryMs) : next;
}

void IoLoop::send_heartbeat(Millis now) {
  zmq::message_t m = proto::encode_node_heartbeat(node_id(), credit_.capacity(), credit_.stuck());
  (void)zmqu::send_one(dealer_, m);
  last_hb_sent_ms_ = now;
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
  (void)zmqu::send_one(dealer_, m);
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
      registered_ = true;
      register_backoff_ms_ = 0;
      if (r.heartbeat_ms > 0) hb_ms_ = static_cast<Millis>(r.heartbeat_ms);
      if (r.misses > 0) misses_ = static_cast<int>(r.misses);
      // The credit as it is now (stuck workers, adapted prefetch).
      send_heartbeat(now);
      ZG_LOG(kInfo, kLog,
             "registered with head " + o_.head + " as node=" + node_id() +
                 " workers=" + std::to_string(credit_.workers()) +
                 " heartbeat=" + format_duration(hb_ms_) + " services=" + join(services_));
      return;
    }
    case proto::kHeartbeat:
      return;
    case proto::kBye:
      // The head is stopping: register again (with backoff) once it is back.
      ZG_LOG(kInfo, kLog, "head " + o_.head + " is stopping; will register again when it is back");
      registered_ = false;
      new_generation();
      next_register_ms_ = now + 250;
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
        next_register_ms_ = 0;
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

void IoLoop::on_worker_results(std::vector<zmq::message_t>& frames) {
  if (frames.size() != 2 || frames[0].size() != sizeof(std::uint64_t)) return;
  std::uint64_t gen;
  std::memcpy(&gen, frames[0].data(), sizeof gen);
  if (gen != generation_ || !registered_) return;  // work of a previous connection
  // The DEALER queues up to its HWM while connected; a drop here is covered
  // by the head re-queueing the work of a node it declares dead.
  (void)zmqu::send_one(dealer_, frames[1]);
}

}  // namespace zgrid::node
