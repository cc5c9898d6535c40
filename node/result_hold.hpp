// The node's hold on results: the I/O thread's, between the workers' PUSHes
// and the head.
//
// A worker flushes its result buffer after every run and says whether it
// has more work claimed already ("more": its next results come soon). Such
// a message waits here at most kHoldMs, so the results of tasks that finish
// close together — on one worker or several — reach the head back to back,
// one wake-up of the head and the client instead of one each. A message
// without "more" (its worker found nothing left to claim) sends everything
// held at once, so a lone task's answer never waits; so does the deadline,
// whatever the workers are running (a long task never holds a finished
// one back by more than kHoldMs).
//
// Threads: the I/O thread's alone. Invariant: every held message belongs to
// generation `gen_` (a message of another generation sends or drops those
// first).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "common/clock.hpp"

namespace zgrid::node {

class ResultHold {
 public:
  static constexpr Millis kHoldMs = 5;

  // A worker's results message of `generation`, `more` as the worker said;
  // appends to `*send` what must go to the head now, in order (the held
  // ones first).
  void add(std::uint64_t generation, bool more, zmq::message_t body, Millis now,
           std::vector<zmq::message_t>* send) {
    if (!held_.empty() && generation != gen_) take_all(send);
    if (held_.empty()) {
      gen_ = generation;
      since_ = now;
    }
    held_.push_back(std::move(body));
    if (!more || now - since_ >= kHoldMs) take_all(send);
  }
  // Milliseconds until the held messages are due (a large number when none).
  Millis due_in(Millis now) const {
    if (held_.empty()) return 1'000'000;
    return std::max<Millis>(0, since_ + kHoldMs - now);
  }
  // Appends the held messages to `*send` when they are due.
  void take_due(Millis now, std::vector<zmq::message_t>* send) {
    if (!held_.empty() && now - since_ >= kHoldMs) take_all(send);
  }
  void take_all(std::vector<zmq::message_t>* send) {
    for (auto& m : held_) send->push_back(std::move(m));
    held_.clear();
  }
  std::uint64_t generation() const { return gen_; }
  bool empty() const { return held_.empty(); }

 private:
  std::vector<zmq::message_t> held_;
  std::uint64_t gen_ = 0;
  Millis since_ = 0;  // when the oldest held message came
};

}  // namespace zgrid::node
