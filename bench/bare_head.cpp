// The bare head (bench/bare_head.hpp): zgrid's wire messages between a
// zgrid client and simulated nodes with none of the head's logic, the floor
// under BM_HeadDispatch. One thread, one ZeroMQ context with one I/O thread,
// the two ROUTERs the head binds; the loop is the head's (poll both, read at
// most 512 messages from each, then dispatch and flush once).
#include "bench/bare_head.hpp"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <deque>
#include <fstream>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/zmq_util.hpp"

namespace zgrid::bench {
namespace {

std::atomic<bool> g_stop{false};
void on_stop(int) {
  g_stop = true;
}

// The head's defaults (head/options.hpp, head/outbox.hpp).
constexpr std::uint64_t kQueueHwm = 200'000;         // acks held back above this
constexpr std::uint64_t kResponseWindow = 65'536;    // per client: sent, not acknowledged
constexpr std::uint64_t kPerResponseMessage = 4096;  // responses in one message
constexpr std::uint64_t kHeartbeatMs = 1'000;
constexpr std::uint64_t kHeartbeatRate = 2'000;  // node heartbeats a second budgeted
constexpr int kRoundMessages = 512;

struct Item {
  std::uint32_t session;
  bool answered;
  std::uint64_t request_id;
  std::string_view user_data, payload;  // views into a kept `send` frame
};

struct Chunk {
  Writer body;
  std::size_t count_at = 0;
  std::uint32_t count = 0;
};

struct Session {
  std::uint32_t ord = 0;
  std::string id, client_id, rid;  // rid: the client's routing id (its open_client)
  std::uint64_t next_request_id = 1;
  std::deque<Chunk> out;  // responses not yet sent
  std::uint64_t unacked_out = 0;
};

struct Node {
  std::string rid;
  std::uint64_t capacity = 0, inflight = 0;
  bool placed = false;     // in ready_, under `load`
  std::uint64_t load = 0;  // in flight / capacity, in millionths
  std::uint64_t free() const { return capacity > inflight ? capacity - inflight : 0; }
};

class BareHead {
 public:
  BareHead(std::uint64_t max_task_batch) : max_task_batch_(max_task_batch) {}

  bool start(const std::string& frontend, const std::string& backend, const std::string& ep_file) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    // As the head sets them (head/head.cpp: handshake interval, a deeper
    // accept queue on the node port).
    zmqu::SocketOptions fo, bo;
    fo.handshake_ivl_ms = bo.handshake_ivl_ms = 5'000;  // --handshake-timeout
    bo.backlog = static_cast<int>(std::clamp<rlim_t>(rl.rlim_cur / 16, 100, 4096));
    auto f = zmqu::bind_router(ctx_, frontend, &frontend_ep_, fo);
    auto b = zmqu::bind_router(ctx_, backend, &backend_ep_, bo);
    if (!f.ok() || !b.ok()) {
      std::fprintf(stderr, "bare head: cannot bind %s / %s\n", frontend.c_str(), backend.c_str());
      return false;
    }
    front_ = std::move(f).value();
    back_ = std::move(b).value();
    std::string tmp = ep_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << "frontend=" << frontend_ep_ << "\nbackend=" << backend_ep_ << "\npid=" << getpid()
          << "\nrole=single\nepoch=0\n";
    }
    return std::rename(tmp.c_str(), ep_file.c_str()) == 0;
  }

  void run() {
    std::vector<zmq::message_t> frames;
    while (!g_stop.load()) {
      bool pending = !held_acks_.empty();
      for (auto& kv : sessions_) pending = pending || !kv.second.out.empty();
      zmq::pollitem_t items[] = {{static_cast<void*>(front_), 0, ZMQ_POLLIN, 0},
                                 {static_cast<void*>(back_), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(pending ? 2 : 100));
      } catch (const zmq::error_t&) {
        continue;  // EINTR: the stop signal
      }
      if (items[1].revents & ZMQ_POLLIN) {
        for (int i = 0; i < kRoundMessages; ++i) {
          if (zmqu::recv_message(back_, &frames, proto::kMaxFrames) != zmqu::RecvStatus::kOk) break;
          if (frames.size() == 2) on_node(frames);
        }
      }
      if (items[0].revents & ZMQ_POLLIN) {
        for (int i = 0; i < kRoundMessages; ++i) {
          if (zmqu::recv_message(front_, &frames, proto::kMaxFrames) != zmqu::RecvStatus::kOk)
            break;
          if (frames.size() == 2) on_client(frames);
        }
      }
      release_acks();
      dispatch();
      flush();
    }
  }

 private:
  static std::string rid_of(const zmq::message_t& m) {
    return std::string(static_cast<const char*>(m.data()), m.size());
  }
  std::uint64_t queued() const { return items_.size() - cursor_; }
  // The head's interval for `n` nodes (head/node_table.cpp, interval_for).
  static std::uint64_t interval_for(std::size_t n) {
    const std::uint64_t per = kHeartbeatRate * kHeartbeatMs / 1000;
    return std::max<std::uint64_t>(1, (n + per - 1) / per) * kHeartbeatMs;
  }
  void send(zmq::socket_t& s, std::string_view rid, zmq::message_t m) {
    (void)zmqu::send_routed(s, rid, m);
  }
  Session* session(std::string_view id) {
    auto it = session_by_id_.find(std::string(id));
    if (it == session_by_id_.end()) return nullptr;
    auto s = sessions_.find(it->second);
    return s == sessions_.end() ? nullptr : &s->second;
  }

  // ---- nodes ------------------------------------------------------------------

  void on_node(std::vector<zmq::message_t>& frames) {
    Envelope env;
    if (!decode_envelope(frames[1].data(), frames[1].size(), &env).ok()) return;
    if (env.type == proto::kResults) {
      auto it = node_by_rid_.find(rid_of(frames[0]));
      if (it == node_by_rid_.end()) return;
      on_results(env, nodes_[it->second], it->second);
      return;
    }
    if (env.type == proto::kHeartbeat) {
      proto::Heartbeat m;
      if (!proto::decode_heartbeat(env, &m).ok()) return;
      std::string rid = rid_of(frames[0]);
      send(back_, rid, proto::encode_heartbeat(instance_, interval_));
      if (auto it = node_by_rid_.find(rid); it != node_by_rid_.end()) {
        // A real node's adaptive credit (docs/protocol.md, "Nodes"), adopted
        // at once as the head does; re-placed by its new load.
        if (m.has_capacity) nodes_[it->second].capacity = m.capacity;
        place(it->second);
      }
      return;
    }
    if (env.type == proto::kRegister) {
      proto::Register m;
      if (!proto::decode_register(env, &m).ok()) return;
      std::string rid = rid_of(frames[0]);
      auto [it, added] = node_by_rid_.try_emplace(rid, nodes_.size());
      if (added) nodes_.push_back({rid});
      Node& n = nodes_[it->second];
      n.capacity = m.capacity;
      n.inflight = 0;
      interval_ = interval_for(nodes_.size());
      send(back_, rid, proto::encode_registered(env.corr, {interval_, 3, instance_, 0}));
      place(it->second);
    }
  }

  // Re-placed by its load, or out of ready_ when it has no free credit.
  void place(std::size_t i) {
    Node& n = nodes_[i];
    if (n.placed) ready_.erase({n.load, i});
    n.placed = n.free() > 0;
    if (!n.placed) return;
    n.load = n.inflight * 1'000'000 / n.capacity;
    ready_.insert({n.load, i});
  }
  void unplace(std::size_t i) {
    Node& n = nodes_[i];
    if (n.placed) ready_.erase({n.load, i});
    n.placed = false;
  }

  void on_results(Envelope& env, Node& n, std::size_t ni) {
    if (!proto::decode_results(env, &results_).ok()) return;
    n.inflight -= std::min<std::uint64_t>(n.inflight, results_.items.size());
    Session* s = nullptr;
    for (const proto::Result1& r : results_.items) {
      if (r.task_id < base_ || r.task_id - base_ >= cursor_) continue;  // a closed run's
      Item& it = items_[r.task_id - base_];
      if (it.answered) continue;
      it.answered = true;
      if (!s || s->ord != it.session) {
        auto found = sessions_.find(it.session);
        s = found == sessions_.end() ? nullptr : &found->second;
      }
      if (s) respond(*s, it, r);
    }
    forget_answered();
    place(ni);
  }

  // ---- tasks and responses --------------------------------------------------------

  // As the head chooses (head/node_index.hpp, head/distributor.cpp): the
  // least-loaded node with free credit, then the lowest ordinal, gets
  // min(free, queued, credit / 2 + 1, --max-task-batch) a message.
  void dispatch() {
    while (queued() > 0 && !ready_.empty()) {
      std::size_t ni = ready_.begin()->second;
      Node& n = nodes_[ni];
      std::uint64_t chunk =
          std::max<std::uint64_t>(1, std::min<std::uint64_t>(n.capacity / 2 + 1, max_task_batch_));
      std::uint64_t k = std::min({n.free(), queued(), chunk});
      std::size_t bytes = 64;
      for (std::uint64_t i = 0; i < k; ++i) bytes += items_[cursor_ + i].payload.size() + 12;
      Writer w = proto::begin(proto::kTasks, 0, 3, bytes);
      w.str(service_).array(static_cast<std::uint32_t>(k));
      for (std::uint64_t i = 0; i < k; ++i)
        w.array(2).u64(base_ + cursor_ + i).bin(items_[cursor_ + i].payload);
      w.u64(0);
      zmq::message_t m = w.finish();
      zmqu::SendStatus st = zmqu::send_routed(back_, n.rid, m);
      if (st != zmqu::SendStatus::kOk) {
        unplace(ni);  // full or gone: none until it speaks again
        continue;
      }
      cursor_ += k;
      n.inflight += k;
      place(ni);
    }
  }

  void respond(Session& s, const Item& it, const proto::Result1& r) {
    std::size_t size = it.user_data.size() + r.fault_code.size() + r.data.size() + 24;
    if (s.out.empty() || s.out.back().count >= kPerResponseMessage ||
        s.out.back().body.size() + size > proto::kMaxMessageBytes) {
      Chunk& k = s.out.emplace_back();
      k.body = proto::begin(proto::kResponses, 0, 3, std::max<std::size_t>(4096, 128 + size));
      k.body.str(s.id).str(s.client_id);
      k.count_at = k.body.array32_placeholder();
    }
    Chunk& k = s.out.back();
    proto::write_response_item(k.body, it.request_id, it.user_data, r.fault_code, r.data);
    ++k.count;
  }

  // Whole messages under the client's window, once a round.
  void flush() {
    for (auto& kv : sessions_) {
      Session& s = kv.second;
      while (!s.out.empty() && s.unacked_out + s.out.front().count <= kResponseWindow) {
        Chunk& k = s.out.front();
        k.body.patch_array32(k.count_at, k.count);
        zmq::message_t m = k.body.finish();
        if (zmqu::send_routed(front_, s.rid, m) != zmqu::SendStatus::kOk) break;
        s.unacked_out += k.count;
        s.out.pop_front();
      }
    }
  }

  // ---- clients ------------------------------------------------------------------

  void on_client(std::vector<zmq::message_t>& frames) {
    Envelope env;
    if (!decode_envelope(frames[1].data(), frames[1].size(), &env).ok()) return;
    std::string rid = rid_of(frames[0]);
    const std::uint64_t corr = env.corr;
    switch (env.type) {
      case proto::kHello:
      case proto::kPing:
        send(front_, rid, proto::encode_hello_ok(corr, "zgrid bare head", instance_, 0));
        return;
      case proto::kStatus: {
        proto::GridStatus g;
        g.nodes = nodes_.size();
        g.workers = nodes_.size();
        g.sessions = sessions_.size();
        g.instance = instance_;
        g.journal = "none";
        g.role = "single";
        g.heartbeat_ms = interval_;
        send(front_, rid, proto::encode_grid_status(corr, g));
        return;
      }
      case proto::kCreateSession: {
        proto::CreateSession m;
        if (!proto::decode_create_session(env, &m).ok()) break;
        std::uint32_t ord = next_session_++;
        Session& s = sessions_[ord];
        s.ord = ord;
        s.id = "bare-" + std::to_string(ord);
        session_by_id_[s.id] = ord;
        service_ = std::string(m.service);  // one stream at a time: the tasks name it
        send(front_, rid, proto::encode_session_info(corr, {s.id, m.service, false}));
        return;
      }
      case proto::kOpenClient: {
        proto::OpenClient m;
        if (!proto::decode_open_client(env, &m).ok()) break;
        Session* s = session(m.session_id);
        if (!s) break;
        s->client_id = m.client_id;
        s->rid = rid;
        send(front_, rid, proto::encode_client_opened(corr, {s->id, s->client_id, 0}));
        return;
      }
      case proto::kSend:
        if (on_send(frames, env, rid)) return;
        break;
      case proto::kFlush:
      case proto::kEndRequests:
        send(front_, rid, proto::encode_ok(corr));
        return;
      case proto::kRespAck: {
        proto::ClientRef m;
        if (!proto::decode_client_ref(env, &m).ok()) return;
        if (Session* s = session(m.session_id)) s->unacked_out -= std::min(s->unacked_out, m.value);
        return;
      }
      case proto::kClose: {
        proto::Close m;
        if (!proto::decode_close(env, &m).ok()) break;
        auto it = session_by_id_.find(m.session_id);
        if (it != session_by_id_.end()) {
          sessions_.erase(it->second);
          session_by_id_.erase(it);
        }
        if (sessions_.empty()) {
          // Nothing left to answer: its requests go (ids of this run are
          // never reused, so late results are dropped).
          base_ += items_.size();
          items_.clear();
          frames_.clear();
          cursor_ = 0;
        }
        send(front_, rid, proto::encode_ok(corr));
        return;
      }
      default:
        break;
    }
    send(front_, rid,
         proto::encode_error(corr, Status::InvalidArgument("the bare head does not serve this")));
  }

  // Keeps the frame (the queued items are views into it) and acknowledges
  // it, or holds the ack while the queue is above the head's high-water mark.
  bool on_send(std::vector<zmq::message_t>& frames, Envelope& env, const std::string& rid) {
    proto::Send m;
    if (!proto::decode_send(env, &m).ok()) return false;
    Session* s = session(m.session_id);
    if (!s) return false;
    const std::uint64_t corr = env.corr;
    const void* at = frames[1].data();
    zmq::message_t& kept =
        frames_.emplace_back(base_ + items_.size() + m.items.size(), std::move(frames[1])).second;
    // A small frame lives inside its zmq::message_t: views into it do not
    // survive the move; read it again where it is kept.
    if (kept.data() != at && (!decode_envelope(kept.data(), kept.size(), &env).ok() ||
                              !proto::decode_send(env, &m).ok()))
      return false;
    proto::Ack a;
    a.session_id = s->id;
    a.client_id = s->client_id;
    a.first_seq = m.first_seq;
    a.count = m.items.size();
    a.first_request_id = s->next_request_id;
    for (const proto::SendItem& it : m.items)
      items_.push_back({s->ord, false, s->next_request_id++, it.user_data, it.payload});
    zmq::message_t ack = proto::encode_ack(corr, a);
    if (queued() > kQueueHwm || !held_acks_.empty())
      held_acks_.push_back({rid, std::move(ack)});
    else
      send(front_, rid, std::move(ack));
    return true;
  }

  void forget_answered() {
    while (cursor_ > 0 && items_.front().answered) {
      items_.pop_front();
      ++base_;
      --cursor_;
    }
    while (!frames_.empty() && frames_.front().first <= base_) frames_.pop_front();
  }

  void release_acks() {
    while (!held_acks_.empty() && queued() <= kQueueHwm) {
      send(front_, held_acks_.front().first, std::move(held_acks_.front().second));
      held_acks_.pop_front();
    }
  }

  const std::uint64_t max_task_batch_;
  const std::string instance_ = "bare" + std::to_string(getpid());
  zmq::context_t ctx_;
  zmq::socket_t front_, back_;
  std::string frontend_ep_, backend_ep_;
  std::uint64_t interval_ = kHeartbeatMs;
  std::vector<Node> nodes_;
  std::unordered_map<std::string, std::size_t> node_by_rid_;
  std::set<std::pair<std::uint64_t, std::size_t>> ready_;  // nodes with free credit: load, index
  std::unordered_map<std::uint32_t, Session> sessions_;
  std::unordered_map<std::string, std::uint32_t> session_by_id_;
  std::uint32_t next_session_ = 1;
  std::string service_ = "echo";  // the service of the latest session (what its tasks name)
  // The requests from the oldest unanswered one on: task id = base_ +
  // index; those from cursor_ on are queued. Answered ones leave from the
  // front, and the `send` frames they viewed with them, so memory stays as
  // warm as the head's.
  std::deque<Item> items_;
  std::uint64_t base_ = 1;
  std::size_t cursor_ = 0;
  std::deque<std::pair<std::uint64_t, zmq::message_t>> frames_;  // [task id past its last, frame]
  std::deque<std::pair<std::string, zmq::message_t>> held_acks_;
  proto::Results results_;  // reused
};

}  // namespace

int run_bare_head(int argc, char** argv) {
  std::string frontend = "tcp://127.0.0.1:0", backend = "tcp://127.0.0.1:0", ep_file;
  std::uint64_t max_task_batch = 4'096;  // zgrid-head's default
  for (int i = 1; i + 1 < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--frontend") frontend = argv[++i];
    if (a == "--backend") backend = argv[++i];
    if (a == "--endpoints-file") ep_file = argv[++i];
    if (a == "--max-task-batch") max_task_batch = std::stoull(argv[++i]);
  }
  std::signal(SIGTERM, on_stop);
  std::signal(SIGINT, on_stop);
  // Freed memory stays in the process, as the CLI keeps it (client/zgrid.cpp):
  // with glibc's defaults (trim above 128 KiB) the heap shrank and grew
  // again between messages and page faults were a tenth of this process's
  // CPU (perf), a cost no design needs to pay. zgrid-head keeps the defaults
  // and pays it.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  BareHead h(max_task_batch);
  if (!h.start(frontend, backend, ep_file)) return 2;
  h.run();
  return 0;
}

}  // namespace zgrid::bench
