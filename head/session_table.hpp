// The sessions: by id and by ordinal, the ids of purged sessions
// (tombstones), the load of each client key kept as sessions change (quotas
// in O(1)), and the idle sweep's verdicts.
//
// What must hold: each key's load is the sum of its sessions'
// contributions (Session::contribution). A session keeps its own share up to
// date in each of its methods that changes a counter or its state (the
// table gives it its key's entry when it makes it), so no caller has to
// remember anything. verify() recomputes every key's load and checks each
// session's own invariants (Session::check): debug builds run it each
// tick, as the test suite's heads do in every build.
//
// Not thread-safe: the reactor thread alone uses it. Sessions are owned here;
// a Session* stays valid until drop().
#pragma once

#include <cstdint>
#include <deque>
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

  // create_session tokens (docs/protocol.md, "Resent requests"): the
  // session of `owner` made under `token`, or nullptr. One entry per
  // session that has a token, dropped with the session.
  Session* by_token(const std::string& owner, const std::string& token);
  // Gives `s` its token (at creation, or when recovered from the journal).
  void set_token(Session& s, std::string token);
  std::size_t tokens() const { return tokens_.size(); }

  // Interactive sessions that left lately (retired once delivered, or
  // purged), so that a resent close, end_requests or flush that reaches the
  // head after the first copy made the session leave is answered as the
  // first was, not "unknown session". At most kGoneKept entries, each kept
  // at most kGoneKeptMs.
  // `purged`: it was purged, not retired.
  void remember_gone(const Session& s, bool purged, Millis now);
  // Whether session `id` of `owner` left lately: 0 no, 1 retired, 2 purged.
  int gone_lately(const std::string& id, const std::string& owner, Millis now) const;
  std::size_t gone_kept() const { return gone_ids_.size(); }
  static constexpr std::size_t kGoneKept = 16'384;
  static constexpr Millis kGoneKeptMs = 600'000;

  // A new session of `owner` under a fresh random id (never one in use or
  // purged), or under `id` when recovered from the journal.
  Session& create(const std::string& owner, std::string id = {});
  // Forgets a session (results arriving later are dropped).
  void drop(Session* s);

  // The load of a key (zeros for a key with no session). O(1).
  const KeyLoad& load(const std::string& key) const;
  // Recomputes every key's load from its sessions and checks each session
  // (Session::check): true when all hold. O(sessions + clients).
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
  Map sessions_;
  std::unordered_map<std::uint64_t, Session*> by_ordinal_;
  std::set<std::string> tombstones_;
  std::unordered_map<std::string, std::uint64_t> tokens_;  // owner + '\n' + token -> ordinal
  struct Gone {
    std::string owner;
    Millis at = 0;
    bool purged = false;
  };
  std::deque<std::string> gone_;  // their ids, oldest first (ids are never reused)
  std::unordered_map<std::string, Gone> gone_ids_;  // the same, by id
  std::unordered_map<std::string, KeyLoad> loads_;
  std::uint64_t next_ordinal_ = 0;
};

}  // namespace zgrid::head
