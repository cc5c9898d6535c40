// Interactive `ack`s held briefly so that they travel with the next message
// to the same client instead of alone.
//
// A lone interactive request's batch is acknowledged, then answered a few
// hundred microseconds later: two messages, and the client wakes for each
// (its ZeroMQ I/O thread and its caller's thread, on a machine whose cores
// the head and the node need at that moment). Held here, the ack goes out
// right before whatever the head sends that client next — its responses,
// a reply — so both reach it in one read, or alone once it has waited
// kHoldMs. The order of everything sent to one connection is kept: every
// send to a client goes through release(rid) first.
//
// Only acks of interactive batches that back-pressure does not hold are
// held (durable acks say "committed" and go at once). Threads: the
// reactor's alone.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "common/clock.hpp"

namespace zgrid::head {

class AckHold {
 public:
  static constexpr Millis kHoldMs = 1;

  void hold(const std::string& rid, zmq::message_t body, Millis now) {
    held_.push_back({rid, std::move(body), now});
  }
  bool empty() const { return held_.empty(); }
  // Sends what is held for `rid`, in order (before anything else goes to it).
  template <typename Send>
  void release(const std::string& rid, Send&& send) {
    release_if([&](const Held& h) { return h.rid == rid; }, send);
  }
  // Sends what has waited kHoldMs (in order per connection: held in order).
  template <typename Send>
  void release_due(Millis now, Send&& send) {
    release_if([&](const Held& h) { return now - h.since >= kHoldMs; }, send);
  }

 private:
  struct Held {
    std::string rid;
    zmq::message_t body;
    Millis since = 0;
  };
  template <typename Pred, typename Send>
  void release_if(Pred&& pred, Send& send) {
    if (held_.empty()) return;
    std::size_t keep = 0;
    for (std::size_t i = 0; i < held_.size(); ++i) {
      if (pred(held_[i]))
        send(held_[i].rid, held_[i].body);
      else if (keep++ != i)
        held_[keep - 1] = std::move(held_[i]);
    }
    held_.resize(keep);
  }
  std::vector<Held> held_;  // in the order held
};

}  // namespace zgrid::head
