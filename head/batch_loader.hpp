// Loading a durable session's journaled request batches back into its
// queue: only flushed batches, only up to the durable window (a session of
// millions of requests costs a few bytes per batch in memory), skipping
// requests already answered and clients removed.
//
// Policy for a batch that cannot be read (docs/operations.md, "Journal read
// errors"): unreadable for now (I/O error) stops the loading and is reported
// (the reactor tries again in a second); corrupt or missing is reported as
// lost (the reactor answers its unanswered requests `data_loss`) and the
// loading goes on. Works on any JournalReader; not thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "head/journal_store.hpp"
#include "head/state.hpp"

namespace zgrid::head {

// Reads batch `b` of session `s` from the journal into requests (those not
// answered, unless `with_answered`). Unavailable: cannot be read now;
// DataLoss: missing or corrupt.
Status read_batch(const JournalReader& j, const Session& s, const BatchRef& b,
                  std::vector<Request>* out, bool with_answered = false);

struct LoadRule {
  std::uint64_t window = std::numeric_limits<std::uint64_t>::max();  // queue length to stop at
  bool flushed_only = true;  // false: every batch (a cancel answers them all)
};

struct LoadOutcome {
  std::uint64_t loaded = 0;                       // requests added to the queue
  std::vector<std::pair<BatchRef, Status>> lost;  // taken out: their requests cannot run
  // Per lost batch: its damage is reported (counted, logged) for the first
  // time. Set by Durable::load; a batch found again on a reload is not.
  std::vector<bool> lost_first;
  Status unreadable;  // not OK: loading stopped at a batch to retry
};

// Moves requests of `s`'s unloaded batches into its queue, by `rule`. A
// stateful session's are loaded strictly in id order (a batch not yet
// flushed stops the loading), and its answered requests that ran go to its
// history, for replay.
LoadOutcome load_batches(const JournalReader& j, Session& s, const LoadRule& rule);

}  // namespace zgrid::head
