// Every room of the head wired as the reactor wires them, over an in-memory
// journal, for in-process tests of the durable, tasks, lifecycle and client
// handler rooms: no sockets, no threads. Replies to clients are recorded.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "head/client_handlers.hpp"
#include "head/context.hpp"
#include "head/distributor.hpp"
#include "head/durable.hpp"
#include "head/inflight_table.hpp"
#include "head/journal_store.hpp"
#include "head/lifecycle.hpp"
#include "head/node_table.hpp"
#include "head/outbox.hpp"
#include "head/security.hpp"
#include "head/session_table.hpp"
#include "head/tasks.hpp"

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

class Rooms {
 public:
  explicit Rooms(HeadOptions o = TestOptions()) : ctx(std::move(o)) { ctx.now = 1'000; }

  // Gives the head a journal (a MemoryJournal the test keeps a pointer to).
  void open_journal(std::unique_ptr<MemoryJournal> j = std::make_unique<MemoryJournal>()) {
    journal = j.get();
    RecoveryReport report;
    ASSERT_TRUE(durable.open(std::move(j), &report).ok());
    lifecycle.recovered();
  }

  NodeState& add_node(const std::string& id, std::uint64_t capacity = 8,
                      std::vector<std::string> services = {"factorize@1"}) {
    proto::Register m;
    m.node_id = id;
    m.host.assign(1, 'h');
    m.workers = capacity;
    m.capacity = capacity;
    m.services = std::move(services);
    NodeState& n = nodes.add(std::string("rid-").append(id), m, ctx.now);
    tasks.activate_all();
    return n;
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

  // One dispatch round, as the reactor runs it, with every send succeeding.
  // Returns the messages sent (node ordinal, tasks).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> dispatch() {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> sent;
    dist.begin();
    auto ask = [this](std::uint64_t ord) { return lifecycle.turn_of(ord); };
    while (auto a = dist.next(ask, nodes.all(), nodes.index())) {
      Session* s = sessions.by_ordinal(a->session);
      NodeState& n = *nodes.find(a->node);
      Tasks::Prepared p = tasks.prepare(n, *s, a->count);
      tasks.sent(n, *s, p);
      sent.emplace_back(n.ordinal, p.count);
    }
    return sent;
  }

  // The journal's completions delivered, as the reactor's poll would.
  void complete_writes() { durable.on_completions(); }

  // A client message handled as the reactor hands it over.
  Status call(zmq::message_t msg, const std::string& rid = "rid-c",
              const std::string& peer_key = "") {
    Envelope env;
    EXPECT_TRUE(decode_envelope(msg.data(), msg.size(), &env).ok());
    return handlers.handle(Call{rid, peer_key, msg, env});
  }
  // The latest reply (an envelope decoded from it points into it).
  const Reply& last_reply() const {
    static const Reply none;
    EXPECT_FALSE(replies.empty());
    return replies.empty() ? none : replies.back();
  }

  HeadContext ctx;
  zmq::context_t zmq_ctx{0};
  Security security{ctx.o, zmq_ctx};
  SessionTable sessions;
  NodeTable nodes{ctx.o.heartbeat_ms, ctx.o.heartbeat_misses};
  InflightTable inflight;
  Distributor dist{ctx.o.max_task_batch};
  Outbox outbox{{ctx.o.response_window, ctx.o.response_queue_max, ctx.o.queue_hwm}};
  Durable durable{ctx, sessions};
  Tasks tasks{ctx, sessions, nodes, inflight, dist, outbox, durable};
  Lifecycle lifecycle{ctx, sessions, tasks, durable, outbox};
  std::vector<Reply> replies;
  ClientHandlers handlers{ctx,
                          {sessions, nodes, outbox, security, durable, tasks, lifecycle},
                          [this](const std::string& rid, zmq::message_t body) {
                            replies.push_back({rid, body.to_string()});
                          }};
  MemoryJournal* journal = nullptr;
};

// The tasks in flight on `n`, by task id.
inline std::vector<std::uint64_t> TasksOn(InflightTable& t, std::uint64_t node) {
  std::vector<std::uint64_t> ids;
  for (auto& [id, f] : t.release_node(node)) ids.push_back(id);
  return ids;
}

}  // namespace zgrid::head::testing
