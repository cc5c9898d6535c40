#include "head/outbox.hpp"

#include <algorithm>

#include "common/protocol.hpp"

namespace zgrid::head {

void Outbox::add(Session& s, Client& c, std::uint64_t request_id, std::string_view user_data,
                 std::string_view fault_code, std::string_view data) {
  std::size_t size = user_data.size() + fault_code.size() + data.size() + 24;
  std::uint64_t per_message = std::min<std::uint64_t>(kMaxPerMessage, limits_.response_window);
  Client::Delivery& d = of(c);
  if (d.out.empty() || d.out.back().finished || d.out.back().count >= per_message ||
      d.out.back().body.size() + size > kMaxMessageBytes) {
    OutChunk& k = d.out.emplace_back();
    k.body = proto::begin(proto::kResponses, 0, 3, std::max<std::size_t>(4096, 128 + size));
    k.body.str(s.id).str(c.id);
    k.count_at = k.body.array32_placeholder();
  }
  OutChunk& k = d.out.back();
  proto::write_response_item(k.body, request_id, user_data, fault_code, data);
  ++k.count;
  ++d.out_count;
  ++pending(s);
  responses_pending_ = true;
}

void Outbox::acked(Client& c, std::uint64_t n) {
  Client::Delivery& d = of(c);
  d.unacked_out -= std::min(d.unacked_out, n);
  if (!d.out.empty()) responses_pending_ = true;
}

void Outbox::forget(Session& s, Client& c) {
  Client::Delivery& d = of(c);
  if (d.submitted) {
    d.submitted.reset();  // the session left: its client's call times out
    --submits_held_;
  }
  pending(s) -= d.out_count;
  d.out_count = 0;
  d.out.clear();
}

void Outbox::drop_held_acks(Session& s) {
  for (auto& c : s.clients()) of(c).held_acks.clear();
}

void Outbox::hold(Client& c, HeldAck ack) {
  of(c).held_acks.push_back(std::move(ack));
  acks_held_ = true;
}

void Outbox::hold_submitted(Client& c, HeldSubmitted reply) {
  Client::Delivery& d = of(c);
  if (!d.submitted) ++submits_held_;
  d.submitted = std::move(reply);
}

bool Outbox::release_submitted(Session& s, Client& c, Millis now, const Send& send) {
  Client::Delivery& d = of(c);
  HeldSubmitted& h = *d.submitted;
  const bool whole = d.out_count == h.expect && d.out.size() == 1 && d.unacked_out == 0;
  // Answers over one message (4 MiB) cannot go with it: the reply goes now.
  if (!whole && now < h.deadline && d.out.size() <= 1) return false;
  zmq::message_t m;
  if (whole) {
    // The chunk's items as they were encoded: [sid, cid, items] in a
    // `responses` body; the reply carries the items alone.
    OutChunk& k = d.out.front();
    std::size_t from = k.count_at + 5;  // after the array32 header
    m = proto::encode_submitted(h.corr, h.reply, true,
                                std::string_view(k.body.data() + from, k.body.size() - from),
                                k.count);
  } else {
    m = proto::encode_submitted(h.corr, h.reply);
  }
  zmqu::SendStatus st = send(c.rid, m);
  if (st == zmqu::SendStatus::kWouldBlock) return false;  // again at the next flush
  if (whole && st == zmqu::SendStatus::kOk) {
    // Delivered with the reply: no resp_ack comes for them.
    pending(s) -= d.out_count;
    d.out_count = 0;
    d.out.clear();
  }
  d.submitted.reset();
  --submits_held_;
  c.last_activity = now;
  return true;
}

void Outbox::release_acks(SessionTable& sessions, Millis now, const Send& send) {
  acks_held_ = false;
  for (auto& kv : sessions.all()) {
    Session& s = *kv.second;
    for (auto& c : s.clients()) {
      std::deque<HeldAck>& held = of(c).held_acks;
      while (!held.empty() && s.queue().size() <= limits_.queue_hwm) {
        HeldAck& h = held.front();
        zmq::message_t m = proto::encode_ack(h.corr, h.ack);
        (void)send(c.rid, m);  // a client that left needs no reply
        held.pop_front();
        c.last_activity = now;  // back-pressure is not idleness
      }
      if (!held.empty()) {
        acks_held_ = true;
        c.last_activity = now;
      }
    }
  }
}

Outbox::Flushed Outbox::flush(SessionTable& sessions, Millis now, const Send& send) {
  Flushed out;
  if (acks_held_) release_acks(sessions, now, send);
  if (!responses_pending_ && submits_held_ == 0) return out;
  responses_pending_ = false;
  for (auto& kv : sessions.all()) {
    Session& s = *kv.second;
    if (s.out_pending() == 0) {
      if (submits_held_ == 0) continue;
      bool held = false;
      for (const auto& c : s.clients()) held = held || c.delivery().submitted.has_value();
      if (!held) continue;
    }
    bool waiting = false;
    for (auto& c : s.clients()) {
      Client::Delivery& d = of(c);
      if (d.submitted && !release_submitted(s, c, now, send)) {
        waiting = true;  // its answers wait for the reply they go with
        continue;
      }
      // Whole chunks only (each is at most the window): one message each.
      while (!d.out.empty() && d.unacked_out + d.out.front().count <= limits_.response_window) {
        OutChunk& k = d.out.front();
        if (!k.finished) {
          k.body.patch_array32(k.count_at, k.count);
          k.ready = k.body.finish();
          k.finished = true;
        }
        zmqu::SendStatus st = send(c.rid, k.ready);
        if (st != zmqu::SendStatus::kOk) {
          // Slow (would block) or gone: keep them; the client may come back
          // with a new connection, and idle removal bounds the wait.
          if (st == zmqu::SendStatus::kWouldBlock) responses_pending_ = true;
          break;
        }
        d.unacked_out += k.count;
        d.out_count -= k.count;
        pending(s) -= k.count;
        d.out.pop_front();
      }
    }
    if (s.out_pending() <= limits_.response_queue_max / 2) out.may_resume.push_back(&s);
    if (s.out_pending() == 0 && !waiting) out.delivered.push_back(&s);
  }
  return out;
}

}  // namespace zgrid::head
