// Rebuilding the head's durable state from its journal: at start
// (recover_sessions) and after the journal was reopened following a failed
// write (reconcile_sessions), when the journal may hold more than the head
// believes. Works on any JournalReader (the LevelDB journal; MemoryJournal
// in tests) and a SessionTable; what it finds that the reactor must act on
// (corrupt response records, answers to count) is reported, not acted on.
//
// Policies (docs/operations.md, "Journal read errors"): a session, client or
// index record that cannot be read stops the start (DataLoss naming it; the
// operator can purge that session offline); a corrupt response record is
// skipped and reported (its requests run again).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "head/journal_store.hpp"
#include "head/session_table.hpp"

namespace zgrid::head {

struct AnswerCounts {
  std::uint64_t done = 0, faulted = 0;
  std::map<std::string, std::uint64_t, std::less<>> faulted_by_code;
};

struct RecoveryReport {
  // Response records found corrupt: their answers are lost (recomputed).
  std::vector<std::pair<Session*, std::string>> corrupt_answers;
  // Reconcile: records the journal held although their write had reported
  // failure, and the answers among them, newly counted.
  std::uint64_t fixed = 0;
  AnswerCounts counted;
  // The same per session, with the requests of batches newly taken in: for
  // the per-service counters (head/observe.hpp).
  struct Taken {
    std::uint64_t requests = 0;
    AnswerCounts answers;
  };
  std::map<Session*, Taken> taken;
};

// Walks the records of one kind (all sessions, or one session's range),
// their values read and checked. A record that cannot be read stops the
// walk with its error, except corrupt response records ('A'): those go to
// `corrupt` and are skipped.
using RecordFn =
    std::function<Status(std::string_view key, std::string_view sid, std::string_view value)>;
Status scan_records(const JournalReader& j, const std::string& prefix, const RecordFn& fn,
                    const std::function<void(std::string_view key)>& corrupt = {});

// The error that stops a start at a corrupt session, client or index record.
Status corrupt_record(std::string_view key);

// Marks the answers of one response record as recorded, each request once,
// and counts them in the session and its client (a removed client's are
// skipped). Adds to *added what was new; false if an item was corrupt (the
// others are still applied).
bool apply_answer_record(Session& s, std::string_view key, std::string_view v, AnswerCounts* added);

// Rebuilds sessions, clients, counters, the batch index and tombstones.
// `now` is the monotonic clock (deadlines, idle timers restart), `wall_now`
// Unix seconds. Batches of requests not yet answered are listed in each
// session's `unloaded`; loading them is the reactor's.
Status recover_sessions(const JournalReader& j, SessionTable& t, Millis now, std::int64_t wall_now,
                        RecoveryReport* report);

// Brings every durable session up to what the journal holds: higher
// acknowledged sequences, batches it did not know, answers it did not count.
Status reconcile_sessions(const JournalReader& j, SessionTable& t, RecoveryReport* report);

}  // namespace zgrid::head
