// `submit`: a whole small session in one message (docs/protocol.md,
// "One-message sessions"). What create_session, open_client, one flushed
// send, end_requests and close(seal) would do, with one reply and, for a
// durable session, one synced journal write instead of five.
#include "head/client_handlers.hpp"

#include <memory>

#include "common/util.hpp"
#include "head/journal_records.hpp"

namespace zgrid::head {

namespace {

proto::Submitted submitted_of(const Session& s, const proto::Ack& ack) {
  return {{s.id, s.service, s.durable, s.state(), s.stateful},
          ack.first_request_id,
          ack.count,
          ack.statuses};
}

}  // namespace

Status ClientHandlers::on_submit(const Call& call) {
  proto::Submit m;
  ZG_RETURN_IF_ERROR(proto::decode_submit(call.env, &m));
  std::string cid(m.client_id);
  if (!valid_name(cid))
    return Status::InvalidArgument("client id must be 1..64 printable characters");
  ZG_RETURN_IF_ERROR(
      check_key_quotas(call.peer_key, m.create.durable, m.items.size(), call.frame.size()));
  ZG_ASSIGN_OR_RETURN(Session * created, new_session(call, m.create));
  Session& s = *created;
  // Sealed from the start: no other client can join it. Not complete before
  // its client has ended (for a durable session: once the write is synced).
  s.seal();
  Client fresh;
  fresh.id = cid;
  fresh.rid = call.rid;
  fresh.last_activity = ctx_.now;
  Client& c = s.client(s.add_client(std::move(fresh)));
  proto::Ack ack;
  ack.session_id = s.id;
  ack.client_id = c.id;
  ack.first_seq = 1;
  std::vector<Request> accepted = accept_items(s, c, m.items, &ack);
  if (s.durable)
    return on_submit_durable(call, s, c, std::move(ack), std::move(accepted), m.wait_ms);
  std::uint64_t n = accepted.size();
  s.accept(0, std::move(accepted));
  s.commit_client(0);
  c.acked_seq = c.accepted_seq;
  ctx_.stats_of(s).accepted += n;
  r_.tasks.activate(&s);
  note_committed(s);
  // With wait_ms, the reply waits for the answers and carries them, when
  // they fit one `responses` message: one message to the client instead of
  // the reply, the responses and their resp_ack.
  const std::uint64_t fits =
      std::min<std::uint64_t>(Outbox::kMaxPerMessage, ctx_.o.response_window);
  if (m.wait_ms > 0 && n > 0 && n <= fits) {
    Millis wait = std::min<Millis>(static_cast<Millis>(m.wait_ms), ParkedFetches::kMaxWaitMs);
    r_.outbox.hold_submitted(c, {call.env.corr, submitted_of(s, ack), n, ctx_.now + wait});
    return Status::OK();
  }
  reply_(call.rid, proto::encode_submitted(call.env.corr, submitted_of(s, ack)));
  // Sealed: it leaves memory once its responses are delivered (at once
  // when it has none).
  r_.lifecycle.maybe_retire(s);
  return Status::OK();
}

// The session record (sealed), the batch (the received frame as it is) and
// its client, ended and flushed, in one synced write — one 'M' record when
// the frame is small, else 'S', 'R', 'I' and 'C' — nothing of it is used
// before. A failed write forgets the session and says why.
Status ClientHandlers::on_submit_durable(const Call& call, Session& s, Client& c, proto::Ack ack,
                                         std::vector<Request> accepted, std::uint64_t wait_ms) {
  std::uint64_t n = accepted.size();
  JournalOp op;
  std::uint64_t record_bytes = 0;
  const bool one_record = r_.durable.one_record_fits(call.frame.size());
  if (one_record) {
    // Small: the session, its client, its batch and the batch's index in
    // one 'M' record (journal format v3) rather than four keys.
    OneMessageRecord m;
    m.session = Durable::session_record(s);
    m.client_id = c.id;
    m.acked_seq = c.accepted_seq;
    m.sent = n;
    m.max_id = c.max_id;
    m.n = n;
    m.statuses = ack.statuses;
    m.first_request_id = ack.first_request_id;
    m.send_frame = std::string_view(call.frame.data<char>(), call.frame.size());
    op.puts.emplace_back(jkey::session(jkey::kOneMessage, s.id), m.encode());
    if (n > 0)
      record_bytes = op.puts.back().second.size();
    else
      s.add_journal_bytes(op.puts.back().second.size());
  } else {
    Durable::put_session(op, s);
  }
  if (n > 0 && !one_record) {
    RequestRecord rr{ack.statuses, ack.first_request_id,
                     std::string_view(call.frame.data<char>(), call.frame.size())};
    op.puts.emplace_back(jkey::numbered(jkey::kRequests, s.id, ack.first_request_id), rr.encode());
    record_bytes = op.puts.back().second.size();
    IndexRecord ir{n, c.id, record_bytes};
    op.puts.emplace_back(jkey::numbered(jkey::kIndex, s.id, ack.first_request_id), ir.encode());
  }
  if (!one_record) Durable::put_client(op, s, c, c.accepted_seq, n, c.max_id, true, false);
  BatchRef b;
  b.first_id = ack.first_request_id;
  b.n = static_cast<std::uint32_t>(n);
  b.client = 0;
  b.one_record = one_record;
  b.mem = std::move(accepted);
  if (one_record && n > 0 && !s.stateful)
    return submit_durable_early(call, s, std::move(op), std::move(ack), std::move(b), record_bytes,
                                wait_ms);
  auto batch = std::make_shared<BatchRef>(std::move(b));
  r_.durable.submit(std::move(op), [this, ord = s.ordinal, rid = call.rid, corr = call.env.corr,
                                    ack = std::move(ack), batch, record_bytes,
                                    wait_ms](bool ok, const std::string& err) {
    Session* s = r_.sessions.by_ordinal(ord);
    if (!s) return;  // purged meanwhile
    if (!ok) {
      reply_error(rid, corr, Durable::write_failed(err));
      r_.lifecycle.drop(*s);
      return;
    }
    ctx_.crash.reach("before-ack");
    Client& c = s->client(0);
    c.acked_seq = c.accepted_seq;
    c.flushed_id = c.max_id;
    s->count_sent(0, batch->n);
    s->commit_client(0);
    const std::uint64_t n = batch->n;
    batch_synced(*s, std::move(*batch), record_bytes);
    note_committed(*s);
    reply_submitted(rid, corr, *s, submitted_of(*s, ack), wait_ms, n);
    ctx_.fetches_to_wake.push_back(s->id);  // complete at once when it has no request
  });
  return Status::OK();
}

// A small one-message session (one 'M' record, stateless): its requests
// start at once, before its write is synced, and answers that come back
// before the journal takes the write join it (Durable::submit_session_write):
// the session and its answers are then one synced write, and the fetch that
// follows the reply finds them written. The reply still waits for the
// write, and no answer is counted or served before it: a write that fails
// (or a crash before it) leaves no session, although its requests may have
// run — as when any reply is lost, at least once (docs/protocol.md).
Status ClientHandlers::submit_durable_early(const Call& call, Session& s, JournalOp op,
                                            proto::Ack ack, BatchRef b, std::uint64_t record_bytes,
                                            std::uint64_t wait_ms) {
  const std::uint64_t n = b.n;
  r_.durable.submit_session_write(
      s.ordinal, std::move(op),
      [this, ord = s.ordinal, rid = call.rid, corr = call.env.corr, ack = std::move(ack), n,
       wait_ms](bool ok, const std::string& err) {
        Session* s = r_.sessions.by_ordinal(ord);
        if (!s) return;  // purged meanwhile
        if (!ok) {
          reply_error(rid, corr, Durable::write_failed(err));
          r_.lifecycle.drop(*s);  // what runs of it now finds no session
          return;
        }
        ctx_.crash.reach("before-ack");
        ctx_.stats_of(*s).accepted += n;
        // What did not fit in the window is dropped from memory: the journal has it now.
        for (std::size_t i : s->unloaded()) s->drop_batch_mem(i);
        note_committed(*s);
        reply_submitted(rid, corr, *s, submitted_of(*s, ack), wait_ms, n);
      });
  Client& c = s.client(0);
  c.acked_seq = c.accepted_seq;
  c.flushed_id = c.max_id;
  s.count_sent(0, b.n);
  s.commit_client(0);
  s.add_batch(std::move(b), record_bytes);
  r_.lifecycle.load_ready(s);  // from memory (b.mem): nothing is read before the write
  return Status::OK();
}

}  // namespace zgrid::head
