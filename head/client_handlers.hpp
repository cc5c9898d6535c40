// What the head does with each client message (docs/protocol.md): sessions
// created, attached, closed and purged; clients opened; batches accepted
// (journaled first for a durable session); flush and commit; fetch with
// parked waiters; status, nodes, sessions and drain.
//
// A handler takes the message as a Call (who sent it, and what) and either
// replies (through the Reply it was given: the frontend socket in the head)
// or returns an error status for the reactor to send as an error reply. A
// reply that needs a journal write is sent from the write's completion.
// Uses the tables and the Tasks, Lifecycle and Durable rooms; nothing below
// calls back into it. Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "common/codec.hpp"
#include "common/status.hpp"
#include "head/context.hpp"
#include "head/durable.hpp"
#include "head/fetch.hpp"
#include "head/lifecycle.hpp"
#include "head/node_table.hpp"
#include "head/outbox.hpp"
#include "head/security.hpp"
#include "head/session_table.hpp"
#include "head/status_rows.hpp"
#include "head/tasks.hpp"

namespace zgrid::head {

// One client message being handled: who sent it, and what.
struct Call {
  const std::string& rid;       // routing id of the connection it came on
  const std::string& peer_key;  // with CURVE: the key it proved it holds (Z85); else empty
  const zmq::message_t& frame;  // the body as received (a durable batch is journaled as is)
  Envelope& env;                // decoded; its fields are read by the handler
};

class ClientHandlers {
 public:
  using Reply = std::function<void(const std::string& rid, zmq::message_t body)>;

  struct Rooms {
    SessionTable& sessions;
    NodeTable& nodes;
    Outbox& outbox;
    Security& security;
    Durable& durable;
    Tasks& tasks;
    Lifecycle& lifecycle;
  };
  // `reply`: every reply; `ack`: the `ack` of an interactive batch that
  // back-pressure does not hold (it may wait to travel with the client's
  // next message: head/ack_hold.hpp).
  ClientHandlers(HeadContext& ctx, const Rooms& rooms, Reply reply, Reply ack)
      : ctx_(ctx), r_(rooms), reply_(std::move(reply)), ack_(std::move(ack)) {}

  // Handles one message; an error is the caller's to send back.
  Status handle(const Call& call);
  // Answers parked fetches of session `sid` that now have something to say
  // (or, with sid empty, any whose wait is over).
  void wake_fetches(const std::string& sid);
  bool fetches_parked() const { return !parked_.empty(); }

  static constexpr std::string_view kVersion = "zgrid 0.1 (protocol v1)";

 private:
  // One handler per client message of common/messages.def: on_<name>, in
  // this file's .cpp unless noted (on_submit: head/client_submit.cpp).
  // handle() finds it in a table made from the same list.
  using Handler = Status (ClientHandlers::*)(const Call&);
#define ZG_CLIENT(Enum, name, number, reply) Status on_##name(const Call& call);
#include "common/messages.def"

  Status resent_create(const Call& call, const proto::CreateSession& m, Session& s);
  static constexpr std::size_t kMaxCreateWaiters = 64;
  Result<Session*> new_session(const Call& call, const proto::CreateSession& m);
  Status on_submit_durable(const Call& call, Session& s, Client& c, proto::Ack ack,
                           std::vector<Request> accepted, std::uint64_t wait_ms);
  Status submit_durable_early(const Call& call, Session& s, JournalOp op, proto::Ack ack,
                              BatchRef b, std::uint64_t record_bytes, std::uint64_t wait_ms);
  // A durable submit's write is synced: `submitted` now or, with wait_ms,
  // with every answer once they are committed (parked as a fetch meanwhile;
  // without them at the deadline).
  void reply_submitted(const std::string& rid, std::uint64_t corr, const Session& s,
                       proto::Submitted sub, std::uint64_t wait_ms, std::uint64_t n);
  // A parked fetch (or durable submit with wait): answered if it has
  // something to say, else parked again.
  void serve_parked(ParkedFetch p);
  void submitted(const Call& call, Session& s, const proto::Ack& ack);
  Status check_stateful(const std::string& service) const;
  Status on_send_durable(const Call& call, Session& s, Client& c, proto::Ack ack,
                         std::vector<Request> accepted, bool flush);
  // A durable batch is synced: counted, kept as a journal reference, and
  // loaded to run as far as the window allows.
  void batch_synced(Session& s, BatchRef batch, std::uint64_t record_bytes);
  Status flush_or_end(const Call& call, bool end);
  // A requests page stops adding batches past this (a frame is 8 MiB).
  static constexpr std::size_t kMaxRequestsReplyBytes = 4u << 20;
  void reply_hello(const Call& call);

  // The session for a client's request: unknown, or someone else's, is an error.
  Status find_owned(const std::string& sid, const std::string& key, Session** s);
  Status session_not_found(const std::string& id) const;
  // Finds the caller's client and binds it to the connection the call came
  // on (a reconnecting client arrives with a new routing id); the call counts
  // as activity of the client and its session.
  Status bind_client(const Call& call, const std::string& sid, const std::string& cid, Session** s,
                     Client** c);
  std::vector<Request> accept_items(Session& s, Client& c,
                                    const std::vector<proto::SendItem>& items, proto::Ack* ack);
  // Per-key caps on queued requests and journal bytes (0: none).
  Status check_key_quotas(const std::string& owner, bool durable, std::size_t adding,
                          std::size_t frame_bytes) const;
  proto::SessionStatus status_of(const Session& s) const;
  void note_committed(const Session& s);
  StatusSources sources() const {
    return {ctx_, r_.sessions, r_.nodes, r_.durable, r_.security};
  }
  // Replies `ok` or the write's error to a call answered from a completion.
  Durable::OpDone reply_when_done(const std::string& rid, std::uint64_t corr);
  void reply_error(const std::string& rid, std::uint64_t corr, const Status& st) {
    reply_(rid, proto::encode_error(corr, st));
  }

  HeadContext& ctx_;
  Rooms r_;
  Reply reply_;
  Reply ack_;
  ParkedFetches parked_;  // fetches waiting for responses (head/fetch.hpp)

  static constexpr Millis kLiveWindowMs = 10'000;
};

}  // namespace zgrid::head
