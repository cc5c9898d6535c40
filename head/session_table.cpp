#include "head/session_table.hpp"

#include "common/util.hpp"

namespace zgrid::head {

namespace {
const KeyLoad kNoLoad{};

void add(KeyLoad& to, const KeyLoad& c, int sign) {
  auto f = [sign](std::uint64_t& a, std::uint64_t b) { a = sign > 0 ? a + b : a - b; };
  f(to.sessions, c.sessions);
  f(to.open, c.open);
  f(to.queued, c.queued);
  f(to.journal_bytes, c.journal_bytes);
}
}  // namespace

Session* SessionTable::find(const std::string& id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

Session* SessionTable::by_ordinal(std::uint64_t ordinal) {
  auto it = by_ordinal_.find(ordinal);
  return it == by_ordinal_.end() ? nullptr : it->second;
}

Session& SessionTable::create(const std::string& owner, std::string id) {
  auto s = std::make_unique<Session>();
  s->ordinal = ++next_ordinal_;
  if (id.empty()) {
    do id = random_id128();
    while (tombstones_.count(id) || sessions_.count(id));  // never reused
  }
  s->id = std::move(id);
  s->owner = owner;
  Session& ref = *s;
  ref.key_load = &loads_[ref.owner];  // a node's address is stable until it is erased
  by_ordinal_[ref.ordinal] = &ref;
  sessions_[ref.id] = std::move(s);
  touch(ref);
  return ref;
}

namespace {
std::string token_key(const std::string& owner, const std::string& token) {
  return owner + '\n' + token;  // a Z85 key never holds a newline
}
}  // namespace

Session* SessionTable::by_token(const std::string& owner, const std::string& token) {
  if (token.empty()) return nullptr;
  auto it = tokens_.find(token_key(owner, token));
  return it == tokens_.end() ? nullptr : by_ordinal(it->second);
}

void SessionTable::set_token(Session& s, std::string token) {
  if (!s.token.empty()) {
    auto it = tokens_.find(token_key(s.owner, s.token));
    if (it != tokens_.end() && it->second == s.ordinal) tokens_.erase(it);
  }
  s.token = std::move(token);
  if (!s.token.empty()) tokens_[token_key(s.owner, s.token)] = s.ordinal;
}

void SessionTable::remember_gone(const Session& s, bool purged, Millis now) {
  if (!gone_ids_.emplace(s.id, Gone{s.owner, now, purged}).second) return;
  gone_.push_back(s.id);
  while (!gone_.empty() &&
         (gone_.size() > kGoneKept || now - gone_ids_[gone_.front()].at > kGoneKeptMs)) {
    gone_ids_.erase(gone_.front());
    gone_.pop_front();
  }
}

int SessionTable::gone_lately(const std::string& id, const std::string& owner, Millis now) const {
  auto it = gone_ids_.find(id);
  if (it == gone_ids_.end() || it->second.owner != owner || now - it->second.at > kGoneKeptMs)
    return 0;
  return it->second.purged ? 2 : 1;
}

void SessionTable::drop(Session* s) {
  set_token(*s, {});
  add(*s->key_load, s->contributed, -1);
  if (s->key_load->sessions == 0) loads_.erase(s->owner);  // no session points at it now
  by_ordinal_.erase(s->ordinal);
  sessions_.erase(s->id);
}

KeyLoad SessionTable::contribution(const Session& s) {
  std::uint64_t settled = s.answered() + s.running + s.requests_removed;
  return KeyLoad{1, s.state == proto::SessionState::kOpen ? 1u : 0u,
                 s.total > settled ? s.total - settled : 0, s.journal_bytes};
}

void SessionTable::touch(Session& s) {
  KeyLoad now = contribution(s);
  if (now == s.contributed) return;
  KeyLoad& l = *s.key_load;
  add(l, s.contributed, -1);
  add(l, now, +1);
  s.contributed = now;
}

const KeyLoad& SessionTable::load(const std::string& key) const {
  auto it = loads_.find(key);
  return it == loads_.end() ? kNoLoad : it->second;
}

bool SessionTable::verify() const {
  std::unordered_map<std::string, KeyLoad> fresh;
  for (const auto& kv : sessions_) add(fresh[kv.second->owner], contribution(*kv.second), +1);
  return fresh == loads_;
}

bool SessionTable::complete(const Session& s) {
  if (s.rescan_pending) return false;  // lost answers are being recomputed
  for (const auto& c : s.clients)
    if (!c.ended && !c.removed) return false;
  return s.answered() + s.requests_removed >= s.total && s.committing == 0;
}

SessionTable::Sweep SessionTable::sweep(Millis now, Millis session_idle_timeout_ms,
                                        Millis retention_ms) {
  Sweep out;
  for (auto& kv : sessions_) {
    Session& s = *kv.second;
    for (std::uint32_t ci = 0; ci < s.clients.size(); ++ci) {
      const Client& c = s.clients[ci];
      if (c.ended || c.removed || c.removing || c.running > 0 || !c.held_acks.empty()) continue;
      if (now - c.last_activity < s.client_idle_timeout_ms || now < c.retry_removal_at) continue;
      out.idle_clients.emplace_back(&s, ci);
    }
    if (s.durable && retention_ms > 0) {
      // Complete means something was committed and everything is answered;
      // a session that becomes incomplete again (a new client) starts over.
      if (!complete(s) || s.clients.empty())
        s.completed_at = 0;
      else if (s.completed_at == 0)
        s.completed_at = now;
      else if (now - s.completed_at >= retention_ms && s.purging == 0 && now >= s.retry_purge_at)
        out.retention_over.push_back(&s);
    }
    bool is_complete = !s.clients.empty() && complete(s);
    if (is_complete && !s.complete_seen) out.completed.push_back(&s);
    s.complete_seen = is_complete;
    bool idle = now - s.last_activity >= session_idle_timeout_ms;
    if (!s.durable && idle && s.queue.empty() && s.running == 0) {
      bool attached = false;
      for (const auto& c : s.clients)
        if (!c.removed && now - c.last_activity < session_idle_timeout_ms) attached = true;
      if (!attached) out.idle_sessions.push_back(&s);
    }
  }
  return out;
}

}  // namespace zgrid::head
