// The head's rooms wired together, once: every room constructed in the
// order they depend on each other, and the reactor's work on them — a
// client message, a node message, the journal's completions, the round
// after each poll (answers written, a dispatch round, the outbox flushed,
// parked fetches woken), and the tick (heartbeats, silent nodes, sweeps).
//
// The daemon (head/head.cpp) owns the sockets, the poll, the lease, the
// listener guard, the snapshot and the HTTP listener, and hands each
// message it receives to the entries here; the in-process tests
// (tests/support/head_rooms.hpp) hand theirs to the same entries, so a test
// runs the wiring the daemon runs. What leaves the rooms goes through a
// HeadIo: the daemon's ROUTER sockets, or a test's recorder.
//
// Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.hpp"
#include "common/zmq_util.hpp"
#include "head/ack_hold.hpp"
#include "head/client_handlers.hpp"
#include "head/context.hpp"
#include "head/distributor.hpp"
#include "head/durable.hpp"
#include "head/inflight_table.hpp"
#include "head/journal_store.hpp"
#include "head/lifecycle.hpp"
#include "head/node_table.hpp"
#include "head/options.hpp"
#include "head/outbox.hpp"
#include "head/security.hpp"
#include "head/session_table.hpp"
#include "head/tasks.hpp"

namespace zgrid::head {

// Where the rooms' messages go. Each sends [routing id][body] without
// blocking and says how it went (zmqu::send_routed's statuses); on failure
// the body is left intact. Set once: one indirect call per message sent.
struct HeadIo {
  using Send = Outbox::Send;
  Send to_node;    // the node port (tasks, replies to nodes, heartbeats, bye)
  Send to_client;  // the client port (replies, responses, acknowledgements)
};

class HeadRooms {
 public:
  // `zctx`: the context of the ZAP handler and the journal's completion
  // socket; it must outlive the rooms.
  HeadRooms(const HeadOptions& o, zmq::context_t& zctx, HeadIo io);
  HeadRooms(const HeadRooms&) = delete;  // the rooms hold references to each other
  HeadRooms& operator=(const HeadRooms&) = delete;

  // ---- the journal --------------------------------------------------------------
  // Opens the LevelDB journal (Durable::open) and acts on what recovery found.
  Status open_journal(zmq::context_t& zctx, std::function<bool()> may_write,
                      std::function<bool()> may_commit, std::uint64_t takeover_gap);
  // The same over a store of the caller's (tests: MemoryJournal).
  Status open_journal(std::unique_ptr<JournalStore> store);
  // The journal's completions: the callbacks of finished ops, in order.
  void on_journal_completions() { durable.on_completions(); }

  // ---- messages (frames: [routing id][body], as received) ------------------------
  // A client message: decoded, checked and handled; an error is replied
  // (to undecodable junk within a per-peer budget) and returned.
  Status on_client(std::vector<zmq::message_t>& frames, zmqu::RecvStatus rs);
  // Its second half: a decoded message from a connection that proved
  // `call.peer_key` (with CURVE) handled; an error is replied and returned.
  Status on_client_call(const Call& call);
  // A node message: register, heartbeat, results, bye; an error is replied
  // and returned.
  Status on_node(std::vector<zmq::message_t>& frames, zmqu::RecvStatus rs);

  // ---- the reactor's round and tick -------------------------------------------------
  // From here to finish_round(), replies to clients wait in order and go
  // after the round's dispatch: a request's task leaves before its batch's
  // `ack`, so a lone request does not wait for the ack's send (the reactor
  // calls it before draining the client socket; tests may leave it off).
  void defer_client_replies() { defer_replies_ = true; }
  // Whether acks wait to travel with a client's next message (the reactor
  // polls within AckHold::kHoldMs meanwhile).
  bool acks_held() const { return !acks_.empty(); }
  // What follows the drains of each poll round: this round's durable answers
  // written, a dispatch round, the deferred replies sent, the outbox
  // flushed, parked fetches woken.
  void finish_round();
  // One dispatch round (head/distributor.hpp): each assignment is sent
  // before the next is asked for; a node whose queue is full is marked
  // blocked until it speaks again, one that cannot be reached is lost.
  void dispatch();
  // The timers: throughput, the journal's health events, heartbeats to the
  // nodes and silent nodes lost, the lifecycle's sweeps, fetches whose wait
  // is over; with the verify_tables hook, the tables' checks (abort on drift).
  Status tick(Millis now);
  // Stop: every node is told, so it reconnects instead of waiting out its
  // missed heartbeats.
  void bye_nodes();
  // A connection on the node port closed (libzmq's descriptor `fd`): the
  // node registered on it is sent its heartbeat answer at the next ticks,
  // for an interval; one whose connection is gone cannot be sent to and is
  // lost (unreachable) at once rather than after its missed heartbeats. A
  // descriptor reused by a live node's connection costs it a heartbeat.
  void on_node_disconnected(int fd, Millis now) {
    suspects_.push_back({fd, now + ctx.o.heartbeat_ms});
  }

  // ---- for the reactor's standby answers --------------------------------------------
  // Counts a message that could not be decoded or broke the protocol.
  void bad_message(std::uint64_t& port_count) {
    ++ctx.counters.bad_messages;
    ++port_count;
  }
  // A peer that keeps sending undecodable bytes gets at most kErrorBudget
  // error replies per second; the rest are only counted, so a flooder costs
  // the head a decode, not an encode and a send as well.
  bool error_budget(const std::string& rid);

  // The rooms (docs/architecture.md), in the order they depend on each other.
  HeadContext ctx;
  Security security;  // keys, ZAP, owners
  SessionTable sessions;
  NodeTable nodes;
  InflightTable inflight;  // every task on a node
  Distributor dist;        // who gets work next
  Outbox outbox;
  Durable durable;  // the journal, its reads and writes
  Tasks tasks;
  Lifecycle lifecycle;
  ClientHandlers handlers;

 private:
  // A node message being handled: who sent it (node: nullptr until it
  // registers), and what.
  struct NodeCall {
    const std::string& rid;
    NodeState* node;
    Envelope& env;
    const zmq::message_t& frame;
  };
  using NodeHandler = Status (HeadRooms::*)(const NodeCall&);
  // The node's message to on_<name>, from the table (common/messages.def);
  // an unknown type is a protocol error, and a message the table says needs
  // a registered node, from one the head does not know, is not_found.
  Status dispatch_node(const NodeCall& c);
  // One handler per ZG_NODE row of common/messages.def (rooms.cpp).
#define ZG_NODE(Enum, name, number, direction, reply, needs) Status on_##name(const NodeCall& c);
#include "common/messages.def"
  void send_tasks(NodeState& n, Session& s, std::uint64_t k);
  // Stateful instances no longer needed: their nodes free them. A node that
  // misses this frees them when it registers again.
  void end_instances();
  void probe_suspects(Millis now);
  void flush_clients();
  // Parked fetches of the sessions the rooms reported changed.
  void wake_fetches();
  void reply_node(const std::string& rid, zmq::message_t body) {
    (void)io_.to_node(rid, body);  // a peer that left needs no reply
  }
  // `ack`: an interactive batch's ack (held after the round: acks_).
  void reply_client(const std::string& rid, zmq::message_t body, bool ack = false) {
    if (defer_replies_)
      deferred_.push_back({rid, std::move(body), ack});
    else
      (void)to_client(rid, body);
  }
  // Every send to a client: what acks_ holds for it goes first.
  zmqu::SendStatus to_client(const std::string& rid, zmq::message_t& body) {
    acks_.release(rid,
                  [this](const std::string& r, zmq::message_t& m) { (void)io_.to_client(r, m); });
    return io_.to_client(rid, body);
  }
  void send_deferred_replies();

  HeadIo io_;
  AckHold acks_;  // interactive acks on their way with the client's next message
  bool defer_replies_ = false;
  struct Deferred {
    std::string rid;
    zmq::message_t body;
    bool ack = false;
  };
  std::vector<Deferred> deferred_;  // replies held to the round's end
  std::unordered_map<std::string, std::pair<Millis, int>> error_budget_;  // by routing id
  Millis last_hb_ms_ = 0, rate_mark_ms_ = 0;
  std::vector<std::pair<int, Millis>> suspects_;  // closed node connections: fd, probe until
  std::uint64_t rate_mark_count_ = 0;
  bool journal_healthy_ = true;

  static constexpr int kErrorBudget = 100;  // error replies per peer per second for junk
};

}  // namespace zgrid::head
