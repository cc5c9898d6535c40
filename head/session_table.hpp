// The sessions: by id and by ordinal, the ids of purged sessions
// (tombstones), the load of each client key kept as sessions change (quotas
// in O(1)), and the idle sweep's verdicts.
//
// What must hold: after the reactor changes a session's counters (total,
// done, faulted, running, removed, journal_bytes) or state it calls touch()
// before it next checks a quota; verify() recomputes every key's load to
// check that (the test suite's heads run it on every tick).
//
// Not thread-safe: the reactor thread alone uses it. Sessions are owned here;
// a Session* stays valid until drop().
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "head/state.hpp"

namespace zgrid::head {

class SessionTable {
 public:
  using Map = std::unordered_map<std::string, std::unique_ptr<Session>>;

  const Map& all() const { return sessions_; }
  std::size_t size() const { return sessions_.size(); }
  Session* find(const std::string& id);
  Session* by_ordinal(std::uint64_t ordinal);

  bool purged(const std::string& id) const { return tombstones_.count(id) > 0; }
  void add_tombstone(const std::string& id) { tombstones_.insert(id); }

  // A new session of `owner` under a fresh random id (never one in use or
  // purged), or under `id` when recovered from the journal.
  Session& create(const std::string& owner, std::string id = {});
  // Forgets a session (results arriving later are dropped).
  void drop(Session* s);

  // The load of a key (zeros for a key with no session). O(1).
  const KeyLoad& load(const std::string& key) const;
  // A session's counters or state changed: bring its key's load up to date. O(1).
  void touch(Session& s);
  // Recomputes every key's load from its sessions: true when all match.
  bool verify() const;

  // Everything done, as far as the session can tell: every client committed
  // (or removed), every request answered and every answer synced.
  static bool complete(const Session& s);

  struct Sweep {
    std::vector<std::pair<Session*, std::uint32_t>> idle_clients;  // to remove, with their requests
    std::vector<Session*> idle_sessions;   // interactive, idle, nothing left: to close
    std::vector<Session*> retention_over;  // durable, complete past --retention: to purge
    std::vector<Session*> completed;       // complete since the last sweep (an event each)
  };
  // What the idle timers say at `now`. Marks when each durable session was
  // first seen complete (retention counts from then).
  Sweep sweep(Millis now, Millis session_idle_timeout_ms, Millis retention_ms);

 private:
  static KeyLoad contribution(const Session& s);

  Map sessions_;
  std::unordered_map<std::uint64_t, Session*> by_ordinal_;
  std::set<std::string> tombstones_;
  std::unordered_map<std::string, KeyLoad> loads_;
  std::uint64_t next_ordinal_ = 0;
};

}  // namespace zgrid::head
