// The node's hold on results: the I/O thread's, between the workers' PUSHes
// and the head.
//
// A worker flushes its result buffer after every run and says whether it
// has more work claimed already ("more": its next results come soon). Such
// a message waits here at most kHoldMs, so the results of tasks that finish
// close together — on one worker or several — reach the head in ONE
// `results` message: one message, one wake-up of the head and one pass of
// its in-flight table instead of one each. A message without "more" (its
// worker found nothing left to claim) makes everything held due at once, so
// a lone task's answer never waits; so does the deadline, whatever the
// workers are running (a long task never holds a finished one back by more
// than kHoldMs).
//
// The due messages are MERGED (take_all): their items concatenated under
// one header, in the order they came, as long as the merged message stays
// within docs/protocol.md "Limits" — 4 MiB of items (kMaxItemBytes) and
// kMaxBatchItems items; a message that would pass either starts the next
// one. A message alone goes unchanged (no copy), and so does one that is
// not a results message this node built (never expected: a safety net).
// The items of a merged message may answer tasks of several task messages,
// which the head takes as they come (docs/protocol.md, "Nodes").
//
// Why 1 ms (it was 5): held results are credit the head cannot give back
// yet, and the adaptive credit is about 5 ms of work per worker
// (node/credit.hpp), so a 5 ms hold let a stream of millisecond tasks drain
// the node's queue. Measured with one real node (2 workers): 2,000 tasks
// of 1 ms went in 1.13-1.21 s with 1 ms (3.5 tasks per results message),
// 1.24-1.27 s with 2 ms (4.5), 1.22-1.41 s with 5 ms (6.1); 1,000,000 echo
// micro-tasks went in 150-240 results messages with any of them (the
// workers' own buffers, a message per run of up to 2 ms, do that merging).
// The clock counts whole milliseconds, so the hold is 0 to 1 ms. It is
// only ever paid by results whose worker has more work claimed — a stream
// — never by a lone task.
//
// Threads: the I/O thread's alone. Invariant: every held message belongs to
// generation `gen_` (a message of another generation sends or drops those
// first).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"

namespace zgrid::node {

class ResultHold {
 public:
  static constexpr Millis kHoldMs = 1;
  // One outgoing batch (docs/protocol.md "Limits").
  static constexpr std::size_t kMaxItemBytes = 4u << 20;
  static constexpr std::size_t kMaxItems = proto::kMaxBatchItems;

  // A worker's results message of `generation`, `more` as the worker said;
  // appends to `*send` what must go to the head now (the held ones merged
  // first, in order).
  void add(std::uint64_t generation, bool more, zmq::message_t body, Millis now,
           std::vector<zmq::message_t>* send) {
    hold(generation, more, std::move(body), now, send);
    if (due_now_) take_all(send);
  }
  // The same, but what is due now stays until take_due() (the I/O thread
  // reads every worker message of a pass first: they all go in one).
  void hold(std::uint64_t generation, bool more, zmq::message_t body, Millis now,
            std::vector<zmq::message_t>* send) {
    if (!held_.empty() && generation != gen_) take_all(send);
    if (held_.empty()) {
      gen_ = generation;
      since_ = now;
    }
    Held h;
    const std::string_view items = items_of(body, &h.count);
    h.at = items.data() ? static_cast<std::size_t>(items.data() - body.data<char>()) : 0;
    h.bytes = items.size();
    h.body = std::move(body);
    held_.push_back(std::move(h));
    ++received_;
    if (!more || now - since_ >= kHoldMs) due_now_ = true;
  }
  // Milliseconds until the held messages are due (a large number when none).
  Millis due_in(Millis now) const {
    if (held_.empty()) return 1'000'000;
    if (due_now_) return 0;
    return std::max<Millis>(0, since_ + kHoldMs - now);
  }
  // Appends the held messages to `*send` when they are due.
  void take_due(Millis now, std::vector<zmq::message_t>* send) {
    if (!held_.empty() && (due_now_ || now - since_ >= kHoldMs)) take_all(send);
  }
  // Appends every held message to `*send`, merged as far as the limits allow.
  void take_all(std::vector<zmq::message_t>* send) {
    std::size_t i = 0;
    while (i < held_.size()) {
      // [i, j): the next merged message.
      std::size_t j = i + 1, bytes = held_[i].bytes, count = held_[i].count;
      if (held_[i].mergeable())
        while (j < held_.size() && held_[j].mergeable() &&
               bytes + held_[j].bytes <= kMaxItemBytes && count + held_[j].count <= kMaxItems) {
          bytes += held_[j].bytes;
          count += held_[j].count;
          ++j;
        }
      if (j == i + 1) {
        send->push_back(std::move(held_[i].body));
      } else {
        Writer w = proto::begin(proto::kResults, 0, 1, 32 + bytes);
        w.array(static_cast<std::uint32_t>(count));
        for (std::size_t k = i; k < j; ++k) w.raw(held_[k].items());
        send->push_back(w.finish());
      }
      ++sent_;
      i = j;
    }
    held_.clear();
    due_now_ = false;
  }
  std::uint64_t generation() const { return gen_; }
  bool empty() const { return held_.empty(); }
  // Workers' messages taken, and results messages made of them.
  std::uint64_t received() const { return received_; }
  std::uint64_t sent() const { return sent_; }

  // The items of a `results` message this node built (begin(kResults, 0,
  // 1), then one array header): their bytes, *count of them. Anything else:
  // a null view (the message is sent as it is).
  static std::string_view items_of(const zmq::message_t& m, std::size_t* count) {
    static const std::string prefix = proto::begin(proto::kResults, 0, 1).finish_string();
    *count = 0;
    const auto* p = static_cast<const unsigned char*>(m.data());
    const std::size_t n = m.size();
    if (n <= prefix.size() || std::memcmp(p, prefix.data(), prefix.size()) != 0) return {};
    std::size_t at = prefix.size(), header = 1;
    const unsigned tag = p[at];
    if ((tag & 0xf0) == 0x90) {
      *count = tag & 0x0f;
    } else if (tag == 0xdc && n >= at + 3) {
      header = 3;
      *count = (std::size_t{p[at + 1]} << 8) | p[at + 2];
    } else if (tag == 0xdd && n >= at + 5) {
      header = 5;
      *count = (std::size_t{p[at + 1]} << 24) | (std::size_t{p[at + 2]} << 16) |
               (std::size_t{p[at + 3]} << 8) | p[at + 4];
    } else {
      return {};
    }
    if (*count == 0) return {};
    return {reinterpret_cast<const char*>(p) + at + header, n - at - header};
  }

 private:
  struct Held {
    zmq::message_t body;
    // Its items: `bytes` from offset `at` (an offset: a small message's
    // bytes live inside the message_t and move with it), `count` of them.
    std::size_t at = 0, bytes = 0, count = 0;
    bool mergeable() const { return count > 0; }
    std::string_view items() const { return {body.data<char>() + at, bytes}; }
  };
  std::vector<Held> held_;
  std::uint64_t gen_ = 0;
  Millis since_ = 0;      // when the oldest held message came
  bool due_now_ = false;  // a message said nothing more was coming, or came past the deadline
  std::uint64_t received_ = 0, sent_ = 0;
};

}  // namespace zgrid::node
