#include "node/node.hpp"

#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>

#include "common/codec.hpp"
#include "common/log.hpp"
#include "common/protocol.hpp"
#include "common/util.hpp"
#include "common/zmq_util.hpp"

namespace zgrid::node {

namespace {

constexpr const char* kLog = "node";
constexpr std::size_t kMaxResultBytes = 4u << 20;
constexpr std::size_t kMaxFaultCode = 64;

// A task batch as received: the frame, its decoded envelope and the task
// views into it. Shared by the chunks cut from it; freed with the last one.
struct Batch {
  zmq::message_t frame;
  Envelope env;
  proto::Tasks tasks;
  std::uint64_t generation = 0;
};

struct Chunk {
  std::shared_ptr<Batch> batch;
  std::size_t begin = 0, end = 0;
};

// The one piece of state shared between the I/O thread and the workers.
class WorkQueue {
 public:
  void push(std::vector<Chunk>&& chunks) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& c : chunks) q_.push_back(std::move(c));
    }
    cv_.notify_all();
  }
  // Blocks until a chunk is available or the queue is stopped.
  bool pop(Chunk* out) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return stopped_ || !q_.empty(); });
    if (q_.empty()) return false;
    *out = std::move(q_.front());
    q_.pop_front();
    return true;
  }
  // Drops queued chunks of older generations (after a reconnect).
  void drop_older(std::uint64_t generation) {
    std::lock_guard<std::mutex> lock(mu_);
    std::deque<Chunk> keep;
    for (auto& c : q_)
      if (c.batch->generation >= generation) keep.push_back(std::move(c));
    q_.swap(keep);
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk> q_;   // guarded by mu_
  bool stopped_ = false;  // guarded by mu_
};

void worker_main(zmq::context_t& ctx, const std::string& results_ep, WorkQueue& queue,
                 const svc::Registry& registry, const std::vector<std::string>& services) {
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 0);
  push.set(zmq::sockopt::sndhwm, 0);  // inproc to our own I/O thread: never drop
  push.connect(results_ep);

  std::map<std::string, std::unique_ptr<svc::Service>, std::less<>> instances;
  for (const auto& name : services) instances[name] = (*registry.find(name))();
  svc::Output out;
  Chunk chunk;
  while (queue.pop(&chunk)) {
    const proto::Tasks& tasks = chunk.batch->tasks;
    auto it = instances.find(tasks.service);
    svc::Service* service = it == instances.end() ? nullptr : it->second.get();
    std::size_t n = chunk.end - chunk.begin;
    // Results are encoded as they come and sent in messages of at most
    // kMaxResultBytes (well under the 8 MiB frame limit), at least one each.
    Writer items(32 + n * 32);
    std::uint32_t count = 0;
    bool stopping = false;
    auto emit = [&]() {
      if (count == 0) return;
      Writer w = proto::begin(proto::kResults, 0, 1, items.size() + 32);
      w.array(count).raw(std::string_view(items.data(), items.size()));
      zmq::message_t gen(sizeof(std::uint64_t));
      std::memcpy(gen.data(), &chunk.batch->generation, sizeof(std::uint64_t));
      zmq::message_t body = w.finish();
      try {
        push.send(gen, zmq::send_flags::sndmore);
        push.send(body, zmq::send_flags::none);
      } catch (const zmq::error_t&) {
        stopping = true;  // context terminated: the node is stopping
      }
      items = Writer(32 + n * 32);
      count = 0;
    };
    for (std::size_t i = chunk.begin; i < chunk.end && !stopping; ++i) {
      const proto::Task& t = tasks.items[i];
      out.reset();
      if (service == nullptr) {
        out.fault("unknown_service", "this node does not run that service");
      } else {
        try {
          service->handle(t.payload, out);
        } catch (const std::exception& e) {
          out.fault(svc::kServiceError, e.what());
        } catch (...) {
          out.fault(svc::kServiceError, "unknown exception");
        }
        if (out.data.size() > proto::kMaxPayload)
          out.fault(svc::kServiceError, "result larger than the payload limit");
        // Fault codes are short names on the wire.
        if (out.fault_code.size() > kMaxFaultCode) out.fault_code.resize(kMaxFaultCode);
        if (out.data.size() > proto::kMaxPayload) out.data.resize(proto::kMaxPayload);
      }
      items.array(3).u64(t.task_id);
      if (out.fault_code.empty())
        items.nil();
      else
        items.str(out.fault_code);
      items.bin(out.data);
      ++count;
      if (items.size() >= kMaxResultBytes) emit();
    }
    emit();
    if (stopping) break;
    chunk = Chunk();  // release the batch before blocking again
  }
}

class NodeIo {
 public:
  NodeIo(const NodeOptions& o, zmq::context_t& ctx, WorkQueue& queue, int workers,
         std::vector<std::string> services)
      : o_(o), ctx_(ctx), queue_(queue), workers_(workers), services_(std::move(services)) {
    hb_ms_ = o.heartbeat_ms;
    misses_ = o.heartbeat_misses;
  }

  Status run(zmq::socket_t& pull, const std::atomic<bool>& stop) {
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

 private:
  const std::string& node_id() const { return o_.node_id; }

  Status connect() {
    auto d = zmqu::connect_dealer(ctx_, o_.head);
    if (!d.ok()) return d.status();
    dealer_ = std::move(d).value();
    registered_ = false;
    ++generation_;
    queue_.drop_older(generation_);
    next_register_ms_ = 0;
    return Status::OK();
  }

  // Periodic work; returns milliseconds until it wants to run again.
  Millis tick(Millis now) {
    if (!registered_) {
      if (now >= next_register_ms_) {
        proto::Register r;
        r.node_id = node_id();
        r.host = hostname();
        r.pid = static_cast<std::uint64_t>(getpid());
        r.workers = static_cast<std::uint64_t>(workers_);
        r.capacity = static_cast<std::uint64_t>(workers_) * static_cast<std::uint64_t>(o_.prefetch);
        r.services = services_;
        zmq::message_t m = proto::encode_register(++corr_, r);
        (void)zmqu::send_one(dealer_, m);  // EAGAIN while the head is unreachable
        register_backoff_ms_ = std::min<Millis>(
            register_backoff_ms_ == 0 ? 250 : register_backoff_ms_ * 2, o_.reconnect_max_ms);
        next_register_ms_ = now + register_backoff_ms_;
        register_sent_ms_ = now;
      }
      return next_register_ms_ - now;
    }
    if (now - last_hb_sent_ms_ >= hb_ms_) {
      zmq::message_t m = proto::encode_heartbeat(node_id());
      (void)zmqu::send_one(dealer_, m);
      last_hb_sent_ms_ = now;
    }
    if (now - last_head_ms_ > hb_ms_ * misses_) {
      ZG_LOG(kWarn, kLog,
             "head silent for " + format_duration(now - last_head_ms_) + ", reconnecting to " +
                 o_.head);
      if (Status st = connect(); !st.ok()) ZG_LOG(kError, kLog, st.ToString());
      return 1;
    }
    return std::max<Millis>(1, hb_ms_ - (now - last_hb_sent_ms_));
  }

  void on_head_message(zmq::message_t& frame, Millis now) {
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
        last_hb_sent_ms_ = now;
        ZG_LOG(kInfo, kLog,
               "registered with head " + o_.head + " as node=" + node_id() + " workers=" +
                   std::to_string(workers_) + " heartbeat=" + format_duration(hb_ms_));
        return;
      }
      case proto::kHeartbeat:
        return;
      case proto::kTasks: {
        if (!registered_) return;
        if (Status s = proto::decode_tasks(env, &batch->tasks); !s.ok()) {
          ZG_LOG(kWarn, kLog, "bad task batch: " + s.ToString());
          return;
        }
        batch->generation = generation_;
        std::size_t n = batch->tasks.items.size();
        if (n == 0) return;
        std::size_t per =
            (n + static_cast<std::size_t>(workers_) - 1) / static_cast<std::size_t>(workers_);
        per = std::max<std::size_t>(1, std::min<std::size_t>(per, 256));
        std::vector<Chunk> chunks;
        for (std::size_t b = 0; b < n; b += per) chunks.push_back({batch, b, std::min(n, b + per)});
        queue_.push(std::move(chunks));
        return;
      }
      case proto::kError: {
        proto::Error e;
        if (!proto::decode_error(env, &e).ok()) return;
        if (e.code == Code::kNotFound) {
          // The head does not know us (it restarted, or declared us dead).
          ZG_LOG(kWarn, kLog,
                 "head does not know this node (" + e.message + "); registering again");
          registered_ = false;
          ++generation_;
          queue_.drop_older(generation_);
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

  void on_worker_results(std::vector<zmq::message_t>& frames) {
    if (frames.size() != 2 || frames[0].size() != sizeof(std::uint64_t)) return;
    std::uint64_t gen;
    std::memcpy(&gen, frames[0].data(), sizeof gen);
    if (gen != generation_ || !registered_) return;  // work of a previous connection
    // The DEALER queues up to its HWM while connected; a drop here is covered
    // by the head re-queueing the work of a node it declares dead.
    (void)zmqu::send_one(dealer_, frames[1]);
  }

  const NodeOptions& o_;
  zmq::context_t& ctx_;
  WorkQueue& queue_;
  int workers_;
  std::vector<std::string> services_;
  zmq::socket_t dealer_;
  bool registered_ = false;
  std::uint64_t generation_ = 0;
  std::uint64_t corr_ = 0;
  Millis hb_ms_;
  int misses_;
  Millis last_head_ms_ = 0;
  Millis last_hb_sent_ms_ = 0;
  Millis next_register_ms_ = 0;
  Millis register_sent_ms_ = 0;
  Millis register_backoff_ms_ = 0;
};

}  // namespace

Status run_node(const NodeOptions& options, const svc::Registry& registry,
                const std::atomic<bool>& stop) {
  NodeOptions o = options;
  int workers = o.workers > 0 ? o.workers : static_cast<int>(std::thread::hardware_concurrency());
  if (workers <= 0) workers = 1;
  if (o.prefetch <= 0) return Status::InvalidArgument("--prefetch must be at least 1");
  if (o.node_id.empty())
    o.node_id = hostname() + "-" + std::to_string(getpid()) + "-" + random_id64().substr(0, 6);
  if (!valid_name(o.node_id))
    return Status::InvalidArgument("--node-id must be 1..64 printable characters");
  std::vector<std::string> services = o.services.empty() ? registry.names() : o.services;
  for (const auto& s : services)
    if (registry.find(s) == nullptr)
      return Status::InvalidArgument("unknown service '" + s +
                                     "' (this node has: factorize, echo, sleep, fail)");

  zmq::context_t ctx(1);
  std::string results_ep = "inproc://zgrid-node-results";
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.set(zmq::sockopt::rcvhwm, 0);
  pull.bind(results_ep);

  WorkQueue queue;
  std::vector<std::thread> threads;
  for (int i = 0; i < workers; ++i)
    threads.emplace_back([&] { worker_main(ctx, results_ep, queue, registry, services); });

  NodeIo io(o, ctx, queue, workers, services);
  Status st = io.run(pull, stop);
  queue.stop();
  for (auto& t : threads) t.join();
  return st;
}

}  // namespace zgrid::node
