#include "head/batch_loader.hpp"

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "head/journal_records.hpp"

namespace zgrid::head {

Status read_batch(const JournalReader& j, const Session& s, const BatchRef& b,
                  std::vector<Request>* out, bool with_answered) {
  std::string v;
  std::string key = b.one_record ? jkey::session(jkey::kOneMessage, s.id)
                                 : jkey::numbered(jkey::kRequests, s.id, b.first_id);
  Status st = j.get(key, &v);
  if (st.code() == Code::kNotFound)
    return Status::DataLoss("request batch " + jkey::describe(key) + " is missing");
  if (!st.ok()) return st;
  RequestRecord rec;
  bool decoded = false;
  if (b.one_record) {
    OneMessageRecord m;
    decoded = OneMessageRecord::decode(v, &m);
    rec = {m.statuses, m.first_request_id, m.send_frame};
  } else {
    decoded = RequestRecord::decode(v, &rec);
  }
  Envelope env;
  if (!decoded || rec.first_request_id != b.first_id ||
      !decode_envelope(rec.send_frame.data(), rec.send_frame.size(), &env).ok())
    return Status::DataLoss("request batch " + jkey::describe(key) + " is corrupt");
  // The frame is the client's `send`, or the `submit` that made a whole
  // session in one message: both carry their items in the same layout.
  proto::Send send;
  proto::Submit submit;
  const std::vector<proto::SendItem>* items = nullptr;
  if (env.type == proto::kSubmit && proto::decode_submit(env, &submit).ok())
    items = &submit.items;
  else if (env.type == proto::kSend && proto::decode_send(env, &send).ok())
    items = &send.items;
  if (items == nullptr)
    return Status::DataLoss("request batch " + jkey::describe(key) + " is corrupt");
  std::uint64_t id = b.first_id;
  for (std::size_t i = 0; i < items->size(); ++i) {
    if (!rec.statuses.empty() && (i >= rec.statuses.size() || rec.statuses[i] != 0)) continue;
    if (with_answered || !s.is_answered(id)) {
      Request q;
      q.id = id;
      q.client = b.client;
      q.user_data.assign((*items)[i].user_data);
      q.payload.assign((*items)[i].payload);
      out->push_back(std::move(q));
    }
    ++id;
  }
  return Status::OK();
}

LoadOutcome load_batches(const JournalReader& j, Session& s, const LoadRule& rule) {
  LoadOutcome out;
  for (std::size_t at = 0; at < s.unloaded().size() && s.queue().size() < rule.window;) {
    const std::size_t bi = s.unloaded()[at];
    const BatchRef& b = s.batches()[bi];
    const Client& c = s.client(b.client);
    if (c.removed()) {
      s.loaded(at);
      continue;
    }
    if (rule.flushed_only && b.first_id + b.n - 1 > c.flushed_id) {  // not flushed: it waits
      if (s.stateful) break;  // and so do the requests after it
      ++at;
      continue;
    }
    std::vector<Request> reqs;
    if (!b.mem.empty()) {
      reqs = s.take_batch_mem(bi);
      s.drop_batch_mem(bi);
    } else if (Status st = read_batch(j, s, b, &reqs, s.stateful); !st.ok()) {
      if (!JournalReader::is_corruption(st)) {
        out.unreadable = st;
        break;
      }
      out.lost.emplace_back(BatchRef{b.first_id, b.n, b.client, {}, b.one_record}, st);
      s.loaded(at);
      continue;
    }
    for (auto& r : reqs) {
      if (s.is_answered(r.id)) {
        // Recovered: what the lost instance ran, its fresh one replays.
        s.ran_before(std::move(r));
        continue;
      }
      s.load(std::move(r));
      ++out.loaded;
    }
    s.loaded(at);
  }
  return out;
}

}  // namespace zgrid::head
