// Responses on their way to interactive clients, and acknowledgements held
// back by back-pressure.
//
// Responses are encoded at answer time into per-client chunks (one
// `responses` message each) and sent while the client's window allows
// (--response-window responses sent and not yet acknowledged). A session
// whose clients fall behind by more than --response-queue-max is paused by
// the reactor; flush() reports when it may resume. Acknowledgements of a
// session queued above --queue-hwm are held, so the client's send window
// closes and head memory stays bounded.
//
// The outbox sends through a function it is given (the frontend socket in
// the head, a recorder in tests) and knows nothing of the distributor.
// Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/zmq_util.hpp"
#include "head/session_table.hpp"
#include "head/state.hpp"

namespace zgrid::head {

class Outbox {
 public:
  using Send = std::function<zmqu::SendStatus(const std::string& rid, zmq::message_t& body)>;

  struct Limits {
    std::uint64_t response_window = 65'536;     // per client: sent, not acknowledged
    std::uint64_t response_queue_max = 65'536;  // per session: queued before it pauses
    std::uint64_t queue_hwm = 200'000;          // per session: queued before acks are held
  };
  static constexpr std::size_t kMaxMessageBytes = 4u << 20;  // one `responses` message
  static constexpr std::uint64_t kMaxPerMessage = 4096;      // responses in one message

  explicit Outbox(Limits limits) : limits_(limits) {}

  // Queues one response of session `s` for its client `c`.
  void add(Session& s, Client& c, std::uint64_t request_id, std::string_view user_data,
           std::string_view fault_code, std::string_view data);
  // The client acknowledged `n` responses: its window opens again.
  void acked(Client& c, std::uint64_t n);
  // Drops what is queued for a removed client.
  void forget(Session& s, Client& c);
  // Drops the acknowledgements held for a session's clients (it leaves).
  void drop_held_acks(Session& s);
  // True when a session queued this far beyond its clients must pause.
  bool must_pause(const Session& s) const { return s.out_pending() > limits_.response_queue_max; }

  // Back-pressure: whether `c`'s acknowledgement of a batch must wait, and
  // keeping it until release().
  bool must_hold(const Session& s, const Client& c) const {
    return s.queue().size() > limits_.queue_hwm || !c.delivery().held_acks.empty();
  }
  void hold(Client& c, HeldAck ack);
  // An interactive submit with wait_ms (docs/protocol.md, "One-message
  // sessions"): its reply waits until every answer is queued for `c`, then
  // goes with them in it (they need no resp_ack), or alone at the deadline
  // (the answers then follow as responses). `reply.expect` must fit one
  // `responses` message (kMaxPerMessage and the window).
  void hold_submitted(Client& c, HeldSubmitted reply);

  struct Flushed {
    std::vector<Session*> may_resume;  // caught up to half the pause mark: activate if queued
    std::vector<Session*> delivered;   // nothing left queued for its clients
  };
  // Sends held acknowledgements whose sessions drained below the mark, then
  // every whole chunk the windows allow. A client whose connection would
  // block keeps its chunks (sent again on a later flush).
  Flushed flush(SessionTable& sessions, Millis now, const Send& send);

  // Whether some response may be sendable, or a held submit reply is due
  // (the reactor polls faster meanwhile).
  bool responses_pending() const { return responses_pending_ || submits_held_ > 0; }

 private:
  // What only the outbox writes (Client::OutboxKey).
  static Client::Delivery& of(Client& c) { return c.delivery(Client::OutboxKey{}); }
  static std::uint64_t& pending(Session& s) { return s.out_pending(Client::OutboxKey{}); }
  void release_acks(SessionTable& sessions, Millis now, const Send& send);
  // Sends c's held submit reply when its answers are all queued (with them,
  // taken out of the queue) or its deadline passed (alone); false while it
  // must wait (then none of c's responses may go).
  bool release_submitted(Session& s, Client& c, Millis now, const Send& send);

  const Limits limits_;
  bool responses_pending_ = false;  // some chunk may be sendable
  bool acks_held_ = false;          // some client has held acknowledgements
  std::size_t submits_held_ = 0;    // clients with a held submit reply
};

}  // namespace zgrid::head
