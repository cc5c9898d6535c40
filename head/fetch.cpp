#include "head/fetch.hpp"

#include <algorithm>

#include "head/journal_records.hpp"
#include "head/session_table.hpp"

namespace zgrid::head {

namespace {
constexpr std::size_t kMaxPageBytes = 4u << 20;
constexpr std::uint64_t kMaxPageItems = 16384;
}  // namespace

FetchPage build_fetch_page(const JournalReader& j, const Session& s, const proto::Fetch& f,
                           std::uint64_t corr) {
  FetchPage page;
  std::uint64_t cursor = std::max<std::uint64_t>(1, f.cursor);
  std::uint64_t max = std::clamp<std::uint64_t>(f.max, 1, kMaxPageItems);
  auto it = j.cursor(jkey::session(jkey::kAnswers, s.id));
  if (!it) {
    page.reply =
        proto::encode_error(corr, Status::Unavailable("the journal is being reopened; try again"));
    return page;
  }
  auto key_number = [&] { return jkey::number_of(it->key()); };
  it->seek(jkey::numbered(jkey::kAnswers, s.id, cursor));
  if (!it->valid() || key_number() > cursor) {
    // The record before may hold the cursor in its middle.
    if (it->raw_valid())
      it->prev();
    else
      it->seek_to_last();
    if (!it->valid()) it->seek(jkey::numbered(jkey::kAnswers, s.id, cursor));
  }
  // Items are encoded as they are read (views into the record, valid until
  // the cursor moves).
  Writer w = proto::begin(proto::kFetchReply, corr, 3, 64 << 10);
  std::size_t count_at = w.array32_placeholder();
  std::uint32_t count = 0;
  std::uint64_t next = cursor;
  std::size_t bytes = 0;
  bool full = false, stopped = false;
  bool all_clients = s.clients_removed() == 0;  // else each item's client is checked
  for (; it->valid() && !full; it->next()) {
    std::uint64_t seq = key_number();
    std::string_view v;
    if (Status st = it->value(&v); !st.ok()) {
      if (JournalReader::is_corruption(st)) {
        // Its answers are lost: skipped here, recomputed by the reactor.
        page.corrupt_keys.emplace_back(it->key());
        continue;
      }
      page.read_error = true;
      if (count == 0) {
        page.reply = proto::encode_error(
            corr, Status::Unavailable("cannot read the responses of session " + s.id + " now (" +
                                      st.message() + "); try again"));
        return page;
      }
      stopped = true;  // serve what was read; the next fetch tries again
      break;
    }
    std::uint32_t n = 0;
    std::size_t header = 0;
    if (all_clients && seq == next && array_header(v, &n, &header) && count + n <= max &&
        bytes + v.size() <= kMaxPageBytes) {
      w.raw(v.substr(header));
      count += n;
      next = seq + n;
      bytes += v.size();
      continue;
    }
    if (array_header(v, &n, &header) && seq + n <= cursor) continue;
    std::uint64_t items = 0;
    (void)for_each_answer(v, &items, [&](const AnswerItem& a) {
      std::uint64_t at = seq++;
      if (at < cursor || !a.intact) return true;
      std::size_t size = a.user_data.size() + a.fault.size() + a.data.size() + 24;
      if (count >= max || (bytes + size > kMaxPageBytes && count > 0)) {
        full = true;
        return false;
      }
      next = at + 1;
      // Responses of a removed client (or of none known) are not served.
      const Client* c = s.client_of(a.request_id);
      if (c == nullptr || c->removed()) return true;
      proto::write_response_item(w, a.request_id, a.user_data, a.fault, a.data);
      ++count;
      bytes += size;
      return true;
    });
    if (full) break;
  }
  bool done = !full && !stopped && !it->valid() && SessionTable::complete(s);
  if (count == 0 && !done && f.wait_ms > 0 && next == cursor) {
    page.ready = false;
    return page;
  }
  w.patch_array32(count_at, count);
  page.count = count;
  page.items_begin = count_at + 5;  // after the array32 header
  page.items_end = w.size();
  page.done = done;
  w.u64(next).boolean(done);
  page.reply = w.finish();
  return page;
}

std::vector<ParkedFetch> ParkedFetches::take(const std::string& sid, Millis now) {
  std::vector<ParkedFetch> out;
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (now >= it->deadline || (!sid.empty() && it->fetch.session_id == sid)) {
      out.push_back(std::move(*it));
      it = parked_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace zgrid::head
