#include "head/node_index.hpp"

#include <algorithm>

#include "common/service_spec.hpp"

namespace zgrid::head {

void NodeIndex::mark(const NodeState& n) {
  auto [it, added] = places_.try_emplace(n.ordinal);
  Place& p = it->second;
  if (added) {
    p.group = group_of(n);
    if (++groups_[p.group].members == 1) offered_stale_ = true;
    p.key.node = &n;
    p.key.ordinal = n.ordinal;
  }
  if (Idle idle = idle_of(n); idle != p.idle) {
    count_idle(p.group, p.idle, -1);
    count_idle(p.group, idle, +1);
    p.idle = idle;
  }
  if (!p.dirty) {
    p.dirty = true;
    dirty_.push_back(n.ordinal);
  }
}

void NodeIndex::erase(const NodeState& n, Millis now) {
  auto it = places_.find(n.ordinal);
  if (it == places_.end()) return;
  const Place& p = it->second;
  Group& g = groups_[p.group];
  if (p.in_ready) g.ready.erase(p.key);
  count_idle(p.group, p.idle, -1);
  if (--g.members == 0) {
    g.vacated_at = now;
    offered_stale_ = true;
  }
  places_.erase(it);  // a stale entry in dirty_ finds no place and is skipped
}

void NodeIndex::count_idle(std::size_t group, Idle idle, int delta) {
  Group& g = groups_[group];
  if (idle == Idle::kQuarantined) g.quarantined += static_cast<std::size_t>(delta);
  if (idle == Idle::kDraining) g.draining += static_cast<std::size_t>(delta);
}

void NodeIndex::refresh() {
  for (std::uint64_t ord : dirty_) {
    auto it = places_.find(ord);
    if (it == places_.end()) continue;
    Place& p = it->second;
    p.dirty = false;
    const NodeState& n = *p.key.node;
    auto& ready = groups_[p.group].ready;
    bool want = eligible(n);
    if (p.in_ready && want && p.key.inflight == n.inflight && p.key.capacity == n.capacity)
      continue;
    if (p.in_ready) {
      // Re-key without an allocation: the set's node is moved, not remade.
      auto nh = ready.extract(p.key);
      p.key.inflight = n.inflight;
      p.key.capacity = n.capacity;
      if (want) {
        nh.value() = p.key;
        ready.insert(std::move(nh));
      }
    } else if (want) {
      p.key.inflight = n.inflight;
      p.key.capacity = n.capacity;
      ready.insert(p.key);
    }
    p.in_ready = want;
  }
  dirty_.clear();
}

std::size_t NodeIndex::group_of(const NodeState& n) {
  std::vector<std::string> stateful;
  for (const auto& ad : n.service_info)
    if (ad.sessions) stateful.push_back(ad.advertised);
  std::string sig;
  for (const auto& s : n.services) sig.append(s).push_back('\n');
  sig.push_back('\0');
  for (const auto& s : stateful) sig.append(s).push_back('\n');
  auto [it, added] = group_by_signature_.try_emplace(sig, groups_.size());
  if (added) {
    groups_.push_back(Group{n.services, std::move(stateful), {}});
    match_cache_[0].clear();  // a new group may match any service
    match_cache_[1].clear();
  }
  return it->second;
}

const std::vector<std::size_t>& NodeIndex::matching(std::string_view service, bool sessions) {
  auto& cache = match_cache_[sessions ? 1 : 0];
  auto it = cache.find(std::string(service));  // heterogeneous lookup needs C++20 hashing
  if (it != cache.end()) return it->second;
  std::vector<std::size_t> out;
  auto wanted = spec::parse(service);  // checked at creation; a journal of old may hold others
  if (wanted.ok()) {
    auto offers = [&](const std::vector<std::string>& list) {
      return std::any_of(list.begin(), list.end(),
                         [&](const std::string& adv) { return spec::matches(*wanted, adv); });
    };
    for (std::size_t g = 0; g < groups_.size(); ++g)
      if (offers(groups_[g].services) && (!sessions || offers(groups_[g].stateful)))
        out.push_back(g);
  }
  // Bounded: a client naming endless services must not grow it without end.
  if (cache.size() > 4096) cache.clear();
  return cache.emplace(std::string(service), std::move(out)).first->second;
}

NodeIndex::Offer NodeIndex::offer(std::string_view service, bool sessions) {
  Offer o;
  for (std::size_t gi : matching(service, sessions)) {
    const Group& g = groups_[gi];
    o.nodes += g.members;
    o.quarantined += g.quarantined;
    o.draining += g.draining;
    o.vacated_at = std::max(o.vacated_at, g.vacated_at);
  }
  return o;
}

const std::string& NodeIndex::offered_list() {
  if (!offered_stale_) return offered_list_;
  std::vector<std::string_view> names;
  for (const Group& g : groups_)
    if (g.members > 0) names.insert(names.end(), g.services.begin(), g.services.end());
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  constexpr std::size_t kNamed = 8;
  offered_list_.clear();
  for (std::size_t i = 0; i < names.size() && i < kNamed; ++i)
    offered_list_.append(i ? ", " : "").append(names[i]);
  if (names.size() > kNamed)
    offered_list_ += ", and " + std::to_string(names.size() - kNamed) + " more";
  if (names.empty()) offered_list_ = "nothing";
  offered_stale_ = false;
  return offered_list_;
}

const NodeState* NodeIndex::pick(std::string_view service, bool need_idle, bool need_sessions) {
  refresh();
  const Key* best = nullptr;
  ByLoad less;
  for (std::size_t g : matching(service, need_sessions)) {
    const auto& ready = groups_[g].ready;
    if (ready.empty()) continue;
    const Key& front = *ready.begin();
    if (need_idle && front.inflight > 0) continue;
    if (!best || less(front, *best)) best = &front;
  }
  return best ? best->node : nullptr;
}

}  // namespace zgrid::head
