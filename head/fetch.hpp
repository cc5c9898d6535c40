// Fetching a durable session's results: pages of synced response records
// from the journal, and fetches parked until there is something to say.
//
// A page is read from the journal alone (what it holds was synced), so a
// fetch never sees a response that could still be lost. What the reading
// found (corrupt records, read errors) is reported; the reactor acts on it.
// Not thread-safe: the reactor thread alone uses it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "head/journal_store.hpp"
#include "head/state.hpp"

namespace zgrid::head {

struct FetchPage {
  bool ready = true;     // false: nothing yet, not complete, and the caller may wait
  zmq::message_t reply;  // FetchReply, or an error reply to send as it is
  std::vector<std::string> corrupt_keys;  // response records found corrupt: answers lost
  bool read_error = false;                // a record could not be read now (counted)
  // A FetchReply's items: `count` of them, encoded, in reply bytes
  // [items_begin, items_end); `done`: the session is complete and they are
  // all there is from the cursor on (a submit's answers can go whole).
  std::uint32_t count = 0;
  std::size_t items_begin = 0, items_end = 0;
  bool done = false;
};

// Builds the reply to `f` for session `s` from its response records in `j`.
// At most 16,384 responses and about 4 MiB per page; a record wholly inside
// the page is copied as it is (its items are response items already).
// Responses of removed clients are skipped.
FetchPage build_fetch_page(const JournalReader& j, const Session& s, const proto::Fetch& f,
                           std::uint64_t corr);

struct ParkedFetch {
  std::string rid;
  std::uint64_t corr = 0;
  proto::Fetch fetch;
  Millis deadline = 0;  // answered then, with whatever there is
  // A durable submit with wait_ms: its reply, sent with every answer once
  // the session is complete, or without them at the deadline.
  std::optional<proto::Submitted> submitted;
};

class ParkedFetches {
 public:
  static constexpr Millis kMaxWaitMs = 30'000;
  void park(ParkedFetch p) { parked_.push_back(std::move(p)); }
  bool empty() const { return parked_.empty(); }
  std::size_t size() const { return parked_.size(); }
  // Takes out the fetches of session `sid` (none when empty) and every one
  // whose wait is over at `now`; the caller answers them or parks them again.
  std::vector<ParkedFetch> take(const std::string& sid, Millis now);

 private:
  std::vector<ParkedFetch> parked_;
};

}  // namespace zgrid::head
