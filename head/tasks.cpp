#include "head/tasks.hpp"

#include <algorithm>
#include <optional>

#include "common/codec.hpp"
#include "common/log.hpp"
#include "common/service_spec.hpp"

namespace zgrid::head {

namespace {
constexpr const char* kLog = "head";
}  // namespace

void Tasks::answer(Session& s, Request& r, std::string_view fault_code, std::string_view data) {
  Client& c = s.client(r.client);
  if (c.removed()) return;  // removed with its client: the answer is discarded
  if (s.purging > 0) {
    // A purge is being written: recording this would re-create its keys.
    // Should the purge fail, the request runs again.
    if (s.stateful) return answer_lost(s, r);
    s.requeue_front(std::move(r));
    return;
  }
  if (s.durable) {
    if (s.is_answered(r.id)) return;  // recorded once, whatever arrives twice
    durable_.record(s, std::move(r), fault_code, data);
    return;
  }
  s.count_answer(r.client, fault_code.empty());
  count_answer(s, fault_code);
  outbox_.add(s, c, r.id, r.user_data, fault_code, data);
}

void Tasks::recorded(Session& s, std::vector<Answer>& answers, bool ok) {
  if (s.stateful && !ok && !answers.empty()) {
    // The instance ran them in order: a fresh one replays its history and
    // records these answers on the way.
    for (auto& a : answers)
      if (!s.client(a.request.client).removed()) answer_lost(s, a.request);
    ctx_.fetches_to_wake.push_back(s.id);
    return;
  }
  for (auto& a : answers) {
    Client& c = s.client(a.request.client);
    if (!ok) {
      // Not recorded: it runs again once the journal is back.
      requeue(s, std::move(a.request), false);
      continue;
    }
    if (c.removed() || !s.record_answer(a.request.id, a.request.client, a.fault.empty())) continue;
    count_answer(s, a.fault);
  }
  ctx_.fetches_to_wake.push_back(s.id);
}

// The head's and the service's counters of an answer the session counted.
void Tasks::count_answer(Session& s, std::string_view fault_code) {
  ServiceStats& st = ctx_.stats_of(s);
  if (fault_code.empty()) {
    ++ctx_.counters.done;
    ++st.done;
  } else {
    ++ctx_.counters.faulted;
    st.count_fault(fault_code);  // a bounded label set: the raw code stays in the response
  }
}

void Tasks::requeue(Session& s, Request r, bool charge, int max_retries, std::string_view why) {
  if (charge) ++r.tries;
  if (max_retries < 0) max_retries = ctx_.o.max_retries;
  if (static_cast<int>(r.tries) > max_retries) {
    ZG_LOG(kWarn, kLog, "retry limit reached session=" + s.id + " request=" + std::to_string(r.id));
    answer(s, r, proto::fault::kRetryLimitExceeded,
           "request " + std::string(why) + " " + std::to_string(r.tries) +
               (r.tries == 1 ? " time" : " times") + " (max retries " +
               std::to_string(max_retries) + ")");
    return;
  }
  if (s.state() == proto::SessionState::kCancelled) {
    answer(s, r, proto::fault::kCancelled, "session cancelled before this request ran");
    return;
  }
  ++ctx_.stats_of(s).retried;
  s.requeue_front(std::move(r));
  activate(&s);
}

void Tasks::requeue_in_order(Session& s, Request r) {
  if (s.requeue_in_order(std::move(r))) activate(&s);
}

void Tasks::answer_lost(Session& s, Request& r) {
  auto h =
      std::lower_bound(in(s).history.begin(), in(s).history.end(), r.id,
                       [](const StatefulInstance::Ran& x, std::uint64_t id) { return x.id < id; });
  if (h == in(s).history.end() || h->id != r.id) {
    requeue_in_order(s, std::move(r));  // it never ran: it runs now
    return;
  }
  h->record = true;
  h->user_data = std::move(r.user_data);
  restart_instance(s, "the answer of request " + std::to_string(r.id) + " was not recorded");
}

void Tasks::forget_client(Session& s, std::uint32_t ci) {
  if (!s.stateful) return;
  auto gone = std::remove_if(in(s).history.begin(), in(s).history.end(),
                             [ci](const StatefulInstance::Ran& h) { return h.client == ci; });
  if (gone == in(s).history.end()) return;
  // Replays leave its requests out from now on, as after a restart (their
  // batches are deleted): a fresh instance keeps the state consistent.
  in(s).history.erase(gone, in(s).history.end());
  in(s).replayed = 0;
  restart_instance(s, "a client's requests were removed");
}

void Tasks::pin(NodeState& n, Session& s) {
  if (in(s).pinned == n.ordinal && in(s).instance_no > 0) return;
  end_instance(s);
  ++in(s).instance_no;
  in(s).pinned = n.ordinal;
  in(s).replayed = 0;
  if (!in(s).history.empty()) {
    std::string line = "stateful session " + s.id + ": fresh instance " + s.instance_key() +
                       " on node " + n.id + " replays " + std::to_string(in(s).history.size()) +
                       " requests";
    ZG_LOG(kInfo, kLog, line);
    ctx_.event("session_replay", s.id, std::move(line));
  }
}

void Tasks::end_instance(Session& s) {
  if (!s.stateful || in(s).pinned == 0) return;
  if (nodes_.find(in(s).pinned)) ctx_.instance_ends.emplace_back(in(s).pinned, s.instance_key());
  in(s).pinned = 0;
}

void Tasks::restart_instance(Session& s, std::string_view why) {
  if (in(s).pinned == 0) return;  // the next one is fresh anyway
  ZG_LOG(kWarn, kLog,
         "stateful session " + s.id + ": instance " + s.instance_key() + " restarted (" +
             std::string(why) + ")");
  end_instance(s);
}

void Tasks::on_replayed(Session& s, const InFlight& f, std::string_view fault_code,
                        std::string_view data) {
  // A replay of an instance since given up (the rest of its message): dropped.
  if (in(s).pinned == 0 || f.request.instance != in(s).instance_no) return;
  if (fault_code == proto::fault::kNotRun) return;  // not started: sent again
  if (fault_code == proto::fault::kRetryable || fault_code == proto::fault::kTaskTimeout) {
    // The replay could not rebuild the state. Charged to the request that
    // waits for it, so a replay that always fails ends in faults, not a loop.
    restart_instance(s, "a replay ran past its timeout or its run died");
    if (!s.queue().empty()) {
      Request r = s.take_front();
      requeue(s, std::move(r), true, f.svc_max_retries, "could not be reached by replay");
    }
    return;
  }
  if (in(s).instance_no == 0 || in(s).replayed >= in(s).history.size()) return;
  StatefulInstance::Ran& h = in(s).history[in(s).replayed];
  if (h.id != f.request.id) return;
  ++in(s).replayed;
  if (h.record) {  // its answer was lost: this replay's is recorded
    h.record = false;
    Request r;
    r.id = h.id;
    r.client = h.client;
    r.user_data = std::move(h.user_data);
    r.payload = h.payload;
    answer(s, r, fault_code, data);
  }
}

Tasks::Prepared Tasks::prepare(const NodeState& n, const Session& s, std::uint64_t k) const {
  if (s.stateful) {
    // The next request, or the next replays: those go many to a message
    // (the node runs a stateful message's tasks in order on one worker), so
    // rebuilding an instance costs a round trip per chunk, not per request.
    Prepared p;
    p.replay = in(s).replayed < in(s).history.size();
    std::vector<std::string_view> payloads;
    std::size_t bytes = 128;
    if (p.replay) {
      // Within the node's free credit, like any work.
      const std::size_t most =
          std::max<std::size_t>(1, std::min<std::size_t>(kMaxReplayChunk, n.free()));
      for (std::size_t i = in(s).replayed; i < in(s).history.size() && payloads.size() < most;
           ++i) {
        std::size_t b = in(s).history[i].payload.size() + 12;
        if (!payloads.empty() && bytes + b > kMaxMessageBytes) break;
        bytes += b;
        payloads.push_back(in(s).history[i].payload);
      }
    } else {
      payloads.push_back(s.queue().front().payload);
      bytes += payloads.back().size();
    }
    p.count = payloads.size();
    const proto::ServiceAd* ad = registration_on(n, s.service);
    p.timeout = task_timeout_for(s, ad);
    p.svc_retries = ad ? static_cast<int>(ad->max_retries) : -1;
    Writer w = proto::begin(proto::kTasks, 0, 4, bytes);
    w.str(s.service).array(static_cast<std::uint32_t>(payloads.size()));
    for (std::size_t i = 0; i < payloads.size(); ++i)
      w.array(2).u64(next_task_id_ + i).bin(payloads[i]);
    w.u64(static_cast<std::uint64_t>(p.timeout)).str(s.instance_key());
    p.body = w.finish();
    return p;
  }
  std::size_t bytes = 64;
  for (std::uint64_t i = 0; i < k; ++i) {
    std::size_t b = s.queue()[i].payload.size() + 12;
    if (i > 0 && bytes + b > kMaxMessageBytes) {  // stay under the frame limit
      k = i;
      break;
    }
    bytes += b;
  }
  Prepared p;
  p.count = k;
  // What the service's registration on this node says about timeouts and retries.
  const proto::ServiceAd* ad = registration_on(n, s.service);
  p.timeout = task_timeout_for(s, ad);
  p.svc_retries = ad ? static_cast<int>(ad->max_retries) : -1;
  Writer w = proto::begin(proto::kTasks, 0, 3, bytes);
  w.str(s.service).array(static_cast<std::uint32_t>(k));
  for (std::uint64_t i = 0; i < k; ++i) w.array(2).u64(next_task_id_ + i).bin(s.queue()[i].payload);
  w.u64(static_cast<std::uint64_t>(p.timeout));
  p.body = w.finish();
  return p;
}

void Tasks::sent(NodeState& n, Session& s, const Prepared& p) {
  std::uint64_t k = p.count, first_task = next_task_id_;
  next_task_id_ += k;
  // The node times each task from when a worker starts it. Should it never
  // report, the head's bound: every task queued there ahead of these, and
  // these, run one after another to their timeout, plus a grace.
  Millis backstop = 0;
  if (p.timeout > 0) {
    Millis serial = static_cast<Millis>(std::min<std::uint64_t>(n.inflight + k, 1'000'000));
    backstop = ctx_.now + std::min<Millis>(p.timeout, kMaxBackstopUnit) * serial +
               std::max<Millis>(kBackstopGrace, 2 * std::max(n.heartbeat_ms, ctx_.o.heartbeat_ms) *
                                                    ctx_.o.heartbeat_misses);
  }
  inflight_.add_batch(first_task, k, n.ordinal, backstop);
  for (std::uint64_t i = 0; p.replay && i < k; ++i) {
    const StatefulInstance::Ran& h = in(s).history[in(s).replayed + i];
    Request r;
    r.id = h.id;
    r.client = h.client;
    r.payload = h.payload;
    r.replay = true;
    r.instance = in(s).instance_no;
    s.start_replay(r.client);
    inflight_.add(first_task + i, s.ordinal, ctx_.now, p.svc_retries, std::move(r));
  }
  for (std::uint64_t i = 0; !p.replay && i < k; ++i) {
    Request r = s.start_front();
    r.instance = in(s).instance_no;
    inflight_.add(first_task + i, s.ordinal, ctx_.now, p.svc_retries, std::move(r));
  }
  n.inflight += p.count;
  nodes_.touch(n);
}

void Tasks::on_results(NodeState& node, const proto::Results& m) {
  InFlight taken;  // one for the loop: each task's request is moved in
  InFlight* f = &taken;
  bool released = false;
  for (const proto::Result1& r : m.items) {
    if (!inflight_.release(r.task_id, node.ordinal, f)) continue;  // late, duplicate or foreign
    // The node's count here, its place in the node index once for the message.
    --node.inflight;
    released = true;
    Session* s = settle(*f, nullptr);
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
    if (f->request.replay) {
      on_replayed(*s, *f, r.fault_code, r.data);
      continue;
    }
    if (s->stateful && (in(*s).pinned == 0 || f->request.instance != in(*s).instance_no)) {
      // Ran on an instance since given up (an answer before it was not
      // recorded): the fresh instance runs it again, in order.
      requeue_in_order(*s, std::move(f->request));
      continue;
    }
    ctx_.stats_of(*s).latency.observe(static_cast<double>(ctx_.now - f->started) / 1000.0);
    if (s->stateful &&
        (r.fault_code == proto::fault::kRetryable || r.fault_code == proto::fault::kTaskTimeout))
      restart_instance(*s, "a run died or ran past its task timeout");
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
    if (s->stateful && ran_on_instance(r.fault_code) &&
        f->request.id > (in(*s).history.empty() ? 0 : in(*s).history.back().id)) {
      // The instance ran it: a fresh one replays it.
      in(*s).history.push_back({f->request.id, f->request.client, f->request.payload});
      in(*s).replayed = in(*s).history.size();
    }
    answer(*s, f->request, r.fault_code, r.data);
  }
  if (released) nodes_.touch(node);
  check_quarantine(node);
}

// A node whose requests fault far more often than its peers' gets no new
// work (its in-flight work finishes); `zgrid nodes` shows it.
void Tasks::check_quarantine(NodeState& n) {
  double rate = 0, peer_rate = 0;
  if (!nodes_.check_quarantine(n, &rate, &peer_rate)) return;
  std::string line = "node quarantined node=" + n.id + " host=" + n.host +
                     " fault_rate=" + std::to_string(rate) + " peers=" + std::to_string(peer_rate);
  ZG_LOG(kError, kLog, line);
  ctx_.event("node_quarantined", n.id, std::move(line));
}

void Tasks::recheck_quarantine() {
  std::vector<std::uint64_t> suspects;
  for (const auto& [ord, n] : nodes_.all())
    if (n.bad > 0 && !n.quarantined) suspects.push_back(ord);
  for (std::uint64_t ord : suspects)
    if (NodeState* n = nodes_.find(ord)) check_quarantine(*n);
}

void Tasks::lose_node(std::uint64_t ordinal, NodeLoss why) {
  NodeState* n = nodes_.find(ordinal);
  if (!n) return;
  bool alone = n->inflight == 1;
  bool graceful = why == NodeLoss::kLeft;
  auto lost = nodes_.lose(ordinal, inflight_, ctx_.now);
  // Newest first: each goes to the front of its queue, so the order holds.
  for (auto it = lost->orphans.rbegin(); it != lost->orphans.rend(); ++it) {
    InFlight& f = it->second;
    Session* s = settle(f, nullptr);       // the node goes as a whole
    if (!s || f.request.replay) continue;  // a replay: the fresh instance starts over
    if (!graceful && !alone) f.request.solo = true;
    requeue(*s, std::move(f.request), !graceful && alone, f.svc_max_retries, "lost");
  }
  std::string line = std::string("node lost node=") + lost->node.id + " host=" + lost->node.host +
                     " reason=" + loss_name(why) +
                     " requeued=" + std::to_string(lost->orphans.size());
  ZG_LOG(kWarn, kLog, line);
  ++ctx_.observed.nodes_lost[loss_name(why)];
  if (!graceful) ctx_.observed.node_lost(lost->node.id, ctx_.now);
  ctx_.event(graceful ? "node_left" : "node_lost", lost->node.id, std::move(line));
}

// The backstop of node-enforced task timeouts: only sends with a task
// timeout have one.
void Tasks::check_backstops() {
  for (auto& [t, f] : inflight_.release_overdue(ctx_.now)) {
    NodeState* n = nodes_.find(f.node);
    Session* s = settle(f, n);
    if (!s) continue;
    if (f.request.replay) {
      on_replayed(*s, f, proto::fault::kTaskTimeout, {});  // restarts it, charges the waiting one
      continue;
    }
    if (s->stateful) restart_instance(*s, "its node never reported a task");
    ZG_LOG(kWarn, kLog,
           "node " + (n ? n->id : std::string("?")) + " never reported task " + std::to_string(t) +
               " past its timeout: treated as lost session=" + s->id +
               " request=" + std::to_string(f.request.id));
    requeue(*s, std::move(f.request), true, f.svc_max_retries, "lost");
  }
}

Session* Tasks::settle(const InFlight& f, NodeState* n) {
  if (n) {
    --n->inflight;
    nodes_.touch(*n);
  }
  Session* s = sessions_.by_ordinal(f.session);
  if (!s) return nullptr;
  s->settle(f.request.client);
  if (s->stateful) activate(s);  // its next request may go now
  return s;
}

const proto::ServiceAd* Tasks::registration_on(const NodeState& n, const std::string& service) {
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

Millis Tasks::task_timeout_for(const Session& s, const proto::ServiceAd* ad) const {
  if (s.task_timeout_ms > 0) return s.task_timeout_ms;
  const auto& per_service = ctx_.o.service_task_timeout_ms;
  auto st = per_service.find(s.service);
  if (st == per_service.end()) {  // "name@2/op" also takes name's
    if (auto sp = spec::parse(s.service); sp.ok()) st = per_service.find(std::string(sp->name));
  }
  if (st != per_service.end()) return st->second;
  if (ad && ad->task_timeout_ms > 0)
    return static_cast<Millis>(std::min<std::uint64_t>(ad->task_timeout_ms, proto::kMaxDurationMs));
  return ctx_.o.task_timeout_ms;
}

}  // namespace zgrid::head
