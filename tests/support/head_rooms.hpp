// The head's rooms as the daemon wires them (head/rooms.hpp: the same
// construction, entries, round and tick), over an in-memory journal, for
// in-process tests of the durable, tasks, lifecycle and client handler
// rooms: no sockets, no threads. What the rooms send is recorded; a send to
// a node can be made to block or fail.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/zmq_util.hpp"
#include "head/journal_store.hpp"
#include "head/rooms.hpp"

namespace zgrid::head::testing {

inline HeadOptions TestOptions() {
  HeadOptions o;
  o.max_retries = 2;
  o.heartbeat_ms = 1000;
  o.durable_window = 64;
  return o;
}

struct Reply {
  std::string rid;
  std::string body;
  std::uint64_t order = 0;  // its place among every message sent, to clients and nodes
  // The reply decoded: its type, correlation id and fields (which point
  // into this Reply: keep it alive while reading them).
  Envelope envelope() const {
    Envelope e;
    EXPECT_TRUE(decode_envelope(body.data(), body.size(), &e).ok());
    return e;
  }
  std::uint32_t type() const { return envelope().type; }
  // For an error reply: its code name and message.
  proto::Error error() const {
    Envelope e = envelope();
    proto::Error err;
    EXPECT_TRUE(proto::decode_error(e, &err).ok());
    return err;
  }
};

// What the rooms sent, and what a send to a node answers: the tests' HeadIo
// (the daemon's sends on its ROUTER sockets).
struct RoomsWire {
  zmq::context_t zmq_ctx{0};
  std::vector<Reply> replies;   // to clients, in order
  std::vector<Reply> to_nodes;  // to nodes, sent (not blocked or failed), in order
  // A send to the node on this connection answers this instead of kOk
  // (kWouldBlock: its queue is full; kUnreachable: it is gone).
  std::map<std::string, zmqu::SendStatus> node_send;
  std::uint64_t sends = 0;  // messages sent so far, both ways (Reply::order)

  HeadIo io() {
    return HeadIo{[this](const std::string& rid, zmq::message_t& body) {
                    auto it = node_send.find(rid);
                    auto st = it == node_send.end() ? zmqu::SendStatus::kOk : it->second;
                    if (st == zmqu::SendStatus::kOk)
                      to_nodes.push_back({rid, body.to_string(), ++sends});
                    return st;
                  },
                  [this](const std::string& rid, zmq::message_t& body) {
                    replies.push_back({rid, body.to_string(), ++sends});
                    return zmqu::SendStatus::kOk;
                  }};
  }
};

// The rooms (HeadRooms: ctx, sessions, nodes, tasks, lifecycle, durable,
// handlers, ...) with the recording wire, and shortcuts for tests.
class Rooms : public RoomsWire, public HeadRooms {
 public:
  explicit Rooms(HeadOptions o = TestOptions()) : HeadRooms(o, zmq_ctx, io()) { ctx.now = 1'000; }

  // Gives the head a journal (a MemoryJournal the test keeps a pointer to).
  void open_journal(std::unique_ptr<MemoryJournal> j = std::make_unique<MemoryJournal>()) {
    journal = j.get();
    ASSERT_TRUE(HeadRooms::open_journal(std::move(j)).ok());
  }

  // A node registered through the node entry, on connection "rid-<id>".
  NodeState& add_node(const std::string& id, std::uint64_t capacity = 8,
                      std::vector<std::string> services = {"factorize@1"}) {
    proto::Register m;
    m.node_id = id;
    m.host.assign(1, 'h');
    m.workers = capacity;
    m.capacity = capacity;
    m.services = std::move(services);
    Status st = node(proto::encode_register(1, m), std::string("rid-").append(id));
    EXPECT_TRUE(st.ok()) << st.ToString();
    NodeState* n = nodes.find_id(id);
    EXPECT_NE(n, nullptr);
    return *n;
  }

  // A node message handled as the reactor hands it over.
  Status node(zmq::message_t msg, const std::string& rid) {
    std::vector<zmq::message_t> frames;
    frames.emplace_back(rid.data(), rid.size());
    frames.push_back(std::move(msg));
    return on_node(frames, zmqu::RecvStatus::kOk);
  }
  // A node's results: (task id, fault code; empty: done) with data "ok" or "why".
  Status results(const NodeState& n,
                 const std::vector<std::pair<std::uint64_t, std::string>>& items) {
    Writer w = proto::begin(proto::kResults, 0, 1);
    w.array(static_cast<std::uint32_t>(items.size()));
    for (const auto& [id, fault] : items) {
      w.array(3).u64(id);
      if (fault.empty())
        w.nil();
      else
        w.str(fault);
      w.bin(fault.empty() ? "ok" : "why");
    }
    return node(w.finish(), n.rid);
  }

  // A session with one client "c" and `n` queued requests (payload "p<i>").
  Session& session(bool durable_session, std::uint64_t n = 0,
                   const std::string& service = "factorize") {
    Session& s = sessions.create("");
    s.service = service;
    s.durable = durable_session;
    s.client_idle_timeout_ms = 60'000;
    s.last_activity = ctx.now;
    Client c;
    c.id = "c";
    c.rid = "rid-c";
    c.last_activity = ctx.now;
    c.accepted_seq = c.acked_seq = n;
    c.max_id = n;
    if (durable_session) c.flushed_id = n;
    const std::uint32_t ci = s.add_client(std::move(c));
    std::vector<Request> reqs;
    for (std::uint64_t i = 0; i < n; ++i) {
      Request r;
      r.id = s.new_request_id();
      r.client = ci;
      r.payload = std::string(1, 'p').append(std::to_string(i));
      reqs.push_back(std::move(r));
    }
    if (durable_session && n > 0) {  // as if journaled in one batch and loaded
      s.count_sent(ci, n);
      s.add_batch(BatchRef{1, static_cast<std::uint32_t>(n), ci, {}}, 0);
      for (auto& r : reqs) s.load(std::move(r));
      s.loaded(0);
    } else {
      s.accept(ci, std::move(reqs));
    }
    tasks.activate(&s);
    return s;
  }

  // One dispatch round of the rooms (HeadRooms::dispatch). Returns the task
  // messages sent (node ordinal, tasks); those that blocked or failed are
  // not among them.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> dispatch() {
    std::size_t from = to_nodes.size();
    HeadRooms::dispatch();
    return tasks_sent(from);
  }
  // What follows the reactor's drains: answers written, a dispatch round,
  // the outbox flushed, parked fetches woken. Returns the task messages sent.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> round() {
    std::size_t from = to_nodes.size();
    finish_round();
    return tasks_sent(from);
  }
  // The task messages among to_nodes[from...]: (node ordinal, tasks).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> tasks_sent(std::size_t from) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> sent;
    for (std::size_t i = from; i < to_nodes.size(); ++i) {
      Envelope e = to_nodes[i].envelope();
      if (e.type != proto::kTasks) continue;
      proto::Tasks t;
      EXPECT_TRUE(proto::decode_tasks(e, &t).ok());
      std::uint64_t ord = 0;
      for (auto& [o, n] : nodes.all())
        if (n.rid == to_nodes[i].rid) ord = o;
      sent.emplace_back(ord, t.items.size());
    }
    return sent;
  }

  // The journal's completions delivered, as the reactor's poll would.
  void complete_writes() { on_journal_completions(); }

  // A client message handled as the reactor hands it over: through the
  // client entry, or with `peer_key` (as if proved with CURVE) through its
  // second half. An error is replied (see replies) and returned.
  Status call(zmq::message_t msg, const std::string& rid = "rid-c",
              const std::string& peer_key = "") {
    if (peer_key.empty()) {
      std::vector<zmq::message_t> frames;
      frames.emplace_back(rid.data(), rid.size());
      frames.push_back(std::move(msg));
      return on_client(frames, zmqu::RecvStatus::kOk);
    }
    Envelope env;
    EXPECT_TRUE(decode_envelope(msg.data(), msg.size(), &env).ok());
    return on_client_call(Call{rid, peer_key, msg, env});
  }
  // The latest reply (an envelope decoded from it points into it).
  const Reply& last_reply() const {
    static const Reply none;
    EXPECT_FALSE(replies.empty());
    return replies.empty() ? none : replies.back();
  }

  MemoryJournal* journal = nullptr;
};

// The tasks in flight on `n`, by task id.
inline std::vector<std::uint64_t> TasksOn(InflightTable& t, std::uint64_t node) {
  std::vector<std::uint64_t> ids;
  for (auto& [id, f] : t.release_node(node)) ids.push_back(id);
  return ids;
}

}  // namespace zgrid::head::testing
