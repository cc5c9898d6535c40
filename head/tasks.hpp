// A request's way through the grid once it is queued: out to a node as a
// task (prepare, sent), back as a result, answered (to its client's outbox,
// or to the journal's answer round for a durable session), or run again
// (requeue) when its node was lost, it ran past its task timeout, or its
// node handed it back; faulted once it has used up its tries.
//
// It owns the task ids and keeps every counter of a request's move in step:
// the in-flight table, the node's and session's running counts, the
// answered counts. Sessions with queued work are activated in the
// distributor. It sends nothing: the reactor sends what prepare() encodes.
// Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/protocol.hpp"
#include "head/context.hpp"
#include "head/distributor.hpp"
#include "head/durable.hpp"
#include "head/inflight_table.hpp"
#include "head/node_table.hpp"
#include "head/outbox.hpp"
#include "head/session_table.hpp"
#include "head/state.hpp"

namespace zgrid::head {

class Tasks {
 public:
  Tasks(HeadContext& ctx, SessionTable& sessions, NodeTable& nodes, InflightTable& inflight,
        Distributor& dist, Outbox& outbox, Durable& durable)
      : ctx_(ctx),
        sessions_(sessions),
        nodes_(nodes),
        inflight_(inflight),
        dist_(dist),
        outbox_(outbox),
        durable_(durable) {}

  // The session has queued work: the distributor may give it a turn.
  void activate(Session* s) {
    if (!s->queue().empty()) dist_.activate(s->ordinal, s->owner);
  }
  // Something every session may have waited for (a node joined, credit grew).
  void activate_all() {
    for (auto& kv : sessions_.all()) activate(kv.second.get());
  }

  // Records the answer of one request: interactive ones go to their client's
  // outbox; durable ones to the journal's round, counted once recorded.
  void answer(Session& s, Request& r, std::string_view fault_code, std::string_view data);
  // The answers of a durable round were written (ok) or not (they run again).
  void recorded(Session& s, std::vector<Answer>& answers, bool ok);
  // Puts a request back at the front of its session's queue (it runs next),
  // or faults it when it has used up its tries. `max_retries` >= 0: the
  // service's registration overrides the head's. `why` says what charged it
  // ("lost", "ran past its task timeout") for the fault message.
  void requeue(Session& s, Request r, bool charge, int max_retries = -1,
               std::string_view why = "lost");

  // A `tasks` message with up to `k` requests from the front of `s`'s queue
  // for node `n` (fewer when they would not fit in one frame). A stateful
  // session's is one request for its instance: the next replay, else the
  // front of its queue (call pin() first).
  struct Prepared {
    zmq::message_t body;
    std::uint64_t count = 0;
    Millis timeout = 0;    // the task timeout the node enforces (0: none)
    int svc_retries = -1;  // the service's registered max retries (-1: the head's)
    bool replay = false;   // stateful: history[replayed], not the queue's front
  };
  // Stateful: the session's instance lives on `n` from now on; a move from
  // another node starts a fresh instance there, which replays the history.
  void pin(NodeState& n, Session& s);
  // Stateful: the instance is no longer needed (session complete or gone):
  // its node is told; the next request (if any) gets a fresh instance.
  void end_instance(Session& s);
  // Stateful: client `ci` was removed; its requests leave the history.
  void forget_client(Session& s, std::uint32_t ci);
  Prepared prepare(const NodeState& n, const Session& s, std::uint64_t k) const;
  // The message was sent: its requests are in flight on `n`.
  void sent(NodeState& n, Session& s, const Prepared& p);

  // A node's results: each task settled, answered or run again.
  void on_results(NodeState& node, const proto::Results& m);
  // A node died, left or went silent: its in-flight work goes back to the
  // queues (poison isolation: a crash is charged to a request only when the
  // node held it alone; requests of a lost batch run alone from now on).
  void lose_node(std::uint64_t ordinal, NodeLoss why);
  // Tasks a node never reported within their backstop: a lost run (charged).
  void check_backstops();
  // Every heartbeat: nodes whose faults all arrived before their peers had
  // done enough to compare with are judged again.
  void recheck_quarantine();

  // The registration of the highest version of `service` that node `n`
  // hosts (its task timeout and retries), or nullptr.
  static const proto::ServiceAd* registration_on(const NodeState& n, const std::string& service);
  // The task timeout of a session's tasks on a node: the session's, else the
  // head's for the service, else the service's registration, else the head's.
  Millis task_timeout_for(const Session& s, const proto::ServiceAd* ad) const;

 private:
  // A session's stateful instance: Tasks' alone to write (Session::TasksKey).
  static StatefulInstance& in(Session& s) { return s.instance(Session::TasksKey{}); }
  static const StatefulInstance& in(const Session& s) { return s.instance(); }
  // The head's and the service's counters of an answer the session counted.
  void count_answer(Session& s, std::string_view fault_code);
  // A task left the in-flight table: the counters of its node (when still
  // known), session and client. Its session, or nullptr when purged.
  Session* settle(const InFlight& f, NodeState* n);
  void check_quarantine(NodeState& n);
  // Stateful: the instance's state is suspect (a run died or timed out, or
  // an answer was not recorded): a fresh one replays from the first request.
  void restart_instance(Session& s, std::string_view why);
  // Stateful: puts a request back in its id-ordered place in the queue (a
  // copy already there stays).
  void requeue_in_order(Session& s, Request r);
  // Stateful: the answer of `r` could not be recorded. If its instance ran
  // it, a fresh instance replays the history and records it on the way;
  // else it runs (in order).
  void answer_lost(Session& s, Request& r);
  // Stateful: a result of a replay.
  void on_replayed(Session& s, const InFlight& f, std::string_view fault_code,
                   std::string_view data);

  HeadContext& ctx_;
  SessionTable& sessions_;
  NodeTable& nodes_;
  InflightTable& inflight_;
  Distributor& dist_;
  Outbox& outbox_;
  Durable& durable_;
  std::uint64_t next_task_id_ = 1;

  // Task-timeout backstop: per task queued ahead at most this much (a
  // week), plus a grace for the node's report to arrive.
  static constexpr Millis kMaxBackstopUnit = 7 * 86'400'000LL;
  static constexpr Millis kBackstopGrace = 5'000;
  // Pushed batches stay well under the 8 MiB frame limit.
  static constexpr std::size_t kMaxMessageBytes = 4u << 20;
  // Replays to a fresh stateful instance per message.
  static constexpr std::size_t kMaxReplayChunk = 1024;
};

}  // namespace zgrid::head
