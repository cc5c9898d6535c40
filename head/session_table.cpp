#include "head/session_table.hpp"

#include <algorithm>
#include <cassert>
#include <tuple>

#include "common/util.hpp"

namespace zgrid::head {

// ---- Session ----

void Session::seal() {
  if (state_ != proto::SessionState::kOpen) return;
  state_ = proto::SessionState::kSealed;
  changed();
}

void Session::cancel() {
  if (state_ != proto::SessionState::kOpen && state_ != proto::SessionState::kSealed) return;
  state_ = proto::SessionState::kCancelled;
  changed();
}

void Session::restore_state(proto::SessionState st) {
  state_ = st;
  changed();
}

Client* Session::find_client(const std::string& client_id) {
  auto it = client_index_.find(client_id);
  return it == client_index_.end() ? nullptr : &clients_[it->second];
}

std::uint32_t Session::add_client(Client c, std::uint64_t sent, bool ended, bool removed) {
  auto ci = static_cast<std::uint32_t>(clients_.size());
  c.sent_ = sent;
  c.ended_ = ended;
  c.removed_ = removed;
  if (ended) committed_ += sent;
  if (removed) {
    requests_removed_ += sent;
    ++clients_removed_;
  }
  client_index_[c.id] = ci;
  clients_.push_back(std::move(c));
  changed();
  return ci;
}

void Session::commit_client(std::uint32_t ci) {
  Client& c = clients_[ci];
  if (c.ended_) return;
  c.ended_ = true;
  committed_ += c.sent_;
}

void Session::remove_client(std::uint32_t ci) {
  Client& c = clients_[ci];
  if (c.removed_) return;
  assert(done_ >= c.done_ && faulted_ >= c.faulted_);
  std::deque<Request> keep;
  for (auto& r : queue_)
    if (r.client != ci) keep.push_back(std::move(r));
  queue_.swap(keep);
  // Answers already recorded for it are taken back: removed means removed.
  done_ -= c.done_;
  faulted_ -= c.faulted_;
  c.removed_ = true;
  requests_removed_ += c.sent_;
  ++clients_removed_;
  changed();
}

void Session::count_sent(std::uint32_t ci, std::uint64_t n) {
  clients_[ci].sent_ += n;
}

void Session::uncount_sent(std::uint32_t ci, std::uint64_t n) {
  assert(clients_[ci].sent_ >= n && !clients_[ci].ended_);
  clients_[ci].sent_ -= n;
}

void Session::raise_sent(std::uint32_t ci, std::uint64_t sent) {
  Client& c = clients_[ci];
  if (sent <= c.sent_) return;
  if (c.removed_) requests_removed_ += sent - c.sent_;
  if (c.ended_) committed_ += sent - c.sent_;
  c.sent_ = sent;
  changed();
}

void Session::accept(std::uint32_t ci, std::vector<Request>&& accepted) {
  for (auto& r : accepted) queue_.push_back(std::move(r));
  clients_[ci].sent_ += accepted.size();
  total_ += accepted.size();
  changed();
}

void Session::add_batch(BatchRef b, std::uint64_t record_bytes) {
  total_ += b.n;  // a removed client's requests count in total and in removed
  journal_bytes_ += record_bytes;
  next_request_id_ = std::max(next_request_id_, b.first_id + b.n);
  changed();
  if (b.n == 0) return;
  bool load = !clients_[b.client].removed_;
  if (batches_.empty() || batches_.back().first_id < b.first_id) {
    if (load) unloaded_.push_back(batches_.size());
    batches_.push_back(std::move(b));
    return;
  }
  // Found late (a reopened journal): in its place, the indexes after it moved.
  auto at = std::upper_bound(batches_.begin(), batches_.end(), b.first_id,
                             [](std::uint64_t v, const BatchRef& x) { return v < x.first_id; });
  auto pos = static_cast<std::size_t>(at - batches_.begin());
  batches_.insert(at, std::move(b));
  for (auto& i : unloaded_)
    if (i >= pos) ++i;
  if (load) unloaded_.insert(std::lower_bound(unloaded_.begin(), unloaded_.end(), pos), pos);
}

void Session::add_journal_bytes(std::uint64_t n) {
  journal_bytes_ += n;
  changed();
}

bool Session::requeue_in_order(Request r) {
  auto at = std::lower_bound(queue_.begin(), queue_.end(), r.id,
                             [](const Request& q, std::uint64_t id) { return q.id < id; });
  if (at != queue_.end() && at->id == r.id) {
    if (at->user_data.empty()) at->user_data = std::move(r.user_data);  // the fuller copy
    return false;
  }
  r.solo = false;
  r.replay = false;
  queue_.insert(at, std::move(r));
  return true;
}

std::deque<Request> Session::take_queue() {
  std::deque<Request> q;
  q.swap(queue_);
  return q;
}

Session::Recount Session::begin_recount() {
  Recount r;
  r.bits.swap(answered_bits_);
  r.done = done_;
  r.faulted = faulted_;
  for (auto& c : clients_) {
    r.by_client.emplace_back(c.done_, c.faulted_);
    c.done_ = c.faulted_ = 0;
  }
  done_ = faulted_ = 0;
  changed();
  return r;
}

void Session::undo_recount(Recount&& r) {
  answered_bits_.swap(r.bits);
  done_ = r.done;
  faulted_ = r.faulted;
  for (std::size_t i = 0; i < r.by_client.size() && i < clients_.size(); ++i)
    std::tie(clients_[i].done_, clients_[i].faulted_) = r.by_client[i];
  changed();
}

void Session::unload_all() {
  unloaded_.clear();
  for (std::size_t i = 0; i < batches_.size(); ++i)
    if (!clients_[batches_[i].client].removed_) unloaded_.push_back(i);
}

const Client* Session::client_of(std::uint64_t id) const {
  auto it = std::upper_bound(batches_.begin(), batches_.end(), id,
                             [](std::uint64_t v, const BatchRef& b) { return v < b.first_id; });
  if (it == batches_.begin()) return nullptr;
  --it;
  if (id >= it->first_id + it->n) return nullptr;
  return &clients_[it->client];
}

bool Session::check() const {
  std::uint64_t running = 0, done = 0, faulted = 0, removed = 0, removed_clients = 0, committed = 0;
  for (const Client& c : clients_) {
    running += c.running_;
    if (c.removed_) {
      removed += c.sent_;
      ++removed_clients;
    } else {
      done += c.done_;
      faulted += c.faulted_;
    }
    if (c.ended_) committed += c.sent_;
  }
  bool ok = running == running_ && done == done_ && faulted == faulted_ &&
            removed == requests_removed_ && removed_clients == clients_removed_ &&
            committed == committed_ && contributed_ == contribution() &&
            client_index_.size() == clients_.size();
  for (std::size_t i : unloaded_) ok = ok && i < batches_.size();
  return ok;
}

// ---- SessionTable ----

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
  if (id.empty()) {
    do id = random_id128();
    while (tombstones_.count(id) || sessions_.count(id));  // never reused
  }
  auto s = std::make_unique<Session>(++next_ordinal_, std::move(id), owner);
  Session& ref = *s;
  ref.key_load_ = &loads_[ref.owner];  // a node's address is stable until it is erased
  by_ordinal_[ref.ordinal] = &ref;
  sessions_[ref.id] = std::move(s);
  ref.changed();
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
  if (!s.token_.empty()) {
    auto it = tokens_.find(token_key(s.owner, s.token_));
    if (it != tokens_.end() && it->second == s.ordinal) tokens_.erase(it);
  }
  s.token_ = std::move(token);
  if (!s.token_.empty()) tokens_[token_key(s.owner, s.token_)] = s.ordinal;
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
  add(*s->key_load_, s->contributed_, -1);
  if (s->key_load_->sessions == 0) loads_.erase(s->owner);  // no session points at it now
  by_ordinal_.erase(s->ordinal);
  sessions_.erase(s->id);
}

const KeyLoad& SessionTable::load(const std::string& key) const {
  auto it = loads_.find(key);
  return it == loads_.end() ? kNoLoad : it->second;
}

bool SessionTable::verify() const {
  std::unordered_map<std::string, KeyLoad> fresh;
  for (const auto& kv : sessions_) {
    if (!kv.second->check()) return false;
    add(fresh[kv.second->owner], kv.second->contribution(), +1);
  }
  return fresh == loads_;
}

bool SessionTable::complete(const Session& s) {
  if (s.rescan_pending) return false;  // lost answers are being recomputed
  for (const auto& c : s.clients())
    if (!c.ended() && !c.removed()) return false;
  return s.answered() + s.requests_removed() >= s.total() && s.committing() == 0;
}

SessionTable::Sweep SessionTable::sweep(Millis now, Millis session_idle_timeout_ms,
                                        Millis retention_ms) {
  Sweep out;
  for (auto& kv : sessions_) {
    Session& s = *kv.second;
    for (std::uint32_t ci = 0; ci < s.clients().size(); ++ci) {
      const Client& c = s.client(ci);
      if (c.ended() || c.removed() || c.removing || c.running() > 0 ||
          !c.delivery().held_acks.empty())
        continue;
      if (now - c.last_activity < s.client_idle_timeout_ms || now < c.retry_removal_at) continue;
      out.idle_clients.emplace_back(&s, ci);
    }
    if (s.durable && retention_ms > 0) {
      // Complete means something was committed and everything is answered;
      // a session that becomes incomplete again (a new client) starts over.
      if (!complete(s) || s.clients().empty())
        s.completed_at_ = 0;
      else if (s.completed_at_ == 0)
        s.completed_at_ = now;
      else if (now - s.completed_at_ >= retention_ms && s.purging == 0 && now >= s.retry_purge_at)
        out.retention_over.push_back(&s);
    }
    bool is_complete = !s.clients().empty() && complete(s);
    if (is_complete && !s.complete_seen_) out.completed.push_back(&s);
    s.complete_seen_ = is_complete;
    bool idle = now - s.last_activity >= session_idle_timeout_ms;
    if (!s.durable && idle && s.queue().empty() && s.running() == 0) {
      bool attached = false;
      for (const auto& c : s.clients())
        if (!c.removed() && now - c.last_activity < session_idle_timeout_ms) attached = true;
      if (!attached) out.idle_sessions.push_back(&s);
    }
  }
  return out;
}

}  // namespace zgrid::head
