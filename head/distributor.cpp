#include "head/distributor.hpp"

#include <algorithm>
#include <iterator>

#include "common/service_spec.hpp"

namespace zgrid::head {

void Distributor::activate(std::uint64_t session, const std::string& owner) {
  if (!active_.insert(session).second) return;
  KeyTurns& t = turns_[owner];
  t.sessions.push_back(session);
  if (!t.in_ring) {
    t.in_ring = true;
    ring_.push_back(owner);
  }
}

std::uint64_t Distributor::chunk_for(const NodeState& n) const {
  return std::max<std::uint64_t>(1, std::min<std::uint64_t>(n.capacity / 2 + 1, max_task_batch_));
}

bool Distributor::offers_sessions(const NodeState& n, std::string_view service) {
  auto wanted = spec::parse(service);
  if (!wanted.ok()) return false;
  return std::any_of(n.service_info.begin(), n.service_info.end(), [&](const proto::ServiceAd& a) {
    return a.sessions && spec::matches(*wanted, a.advertised);
  });
}

const NodeState* Distributor::stateful_node(const SessionTurn& t, const NodeMap& nodes,
                                            NodeIndex& index) {
  if (t.pinned != 0) {
    auto it = nodes.find(t.pinned);
    if (it != nodes.end() && !it->second.quarantined && !it->second.draining) {
      const NodeState& n = it->second;
      return n.blocked || n.free() == 0 ? nullptr : &n;  // its instance is there: wait for it
    }
  }
  return index.pick(t.service, t.solo, true);  // a fresh instance, replaying
}

void Distributor::begin() {
  round_over_ = ring_.empty();
  pass_left_ = ring_.size();
  waited_.clear();
  progress_ = false;
}

// Passes over the ring until a whole pass serves nobody. A key served goes
// to the back; keys that waited in a pass go back to the front, in order,
// when it ends, so they keep their places.
std::optional<Assignment> Distributor::next(const Ask& ask, const NodeMap& nodes,
                                            NodeIndex& index) {
  if (nodes.empty()) round_over_ = true;
  while (!round_over_) {
    if (pass_left_ == 0 || ring_.empty()) {
      ring_.insert(ring_.begin(), std::make_move_iterator(waited_.begin()),
                   std::make_move_iterator(waited_.end()));
      waited_.clear();
      if (!progress_ || ring_.empty()) {
        round_over_ = true;
        break;
      }
      pass_left_ = ring_.size();
      progress_ = false;
    }
    --pass_left_;
    std::string key = std::move(ring_.front());
    ring_.pop_front();
    KeyTurns& turns = turns_[key];
    std::optional<Assignment> a = serve_key(turns, ask, nodes, index);
    if (turns.sessions.empty()) {
      turns_.erase(key);
    } else if (a) {
      progress_ = true;
      ring_.push_back(std::move(key));
      return a;
    } else {
      waited_.push_back(std::move(key));
    }
  }
  return std::nullopt;
}

std::optional<Assignment> Distributor::serve_key(KeyTurns& turns, const Ask& ask,
                                                 const NodeMap& nodes, NodeIndex& index) {
  std::size_t n = turns.sessions.size();
  std::deque<std::uint64_t> waiting;  // put back at the front, in order, after the loop
  std::optional<Assignment> served;
  for (std::size_t j = 0; j < n && !served; ++j) {
    std::uint64_t ord = turns.sessions.front();
    turns.sessions.pop_front();
    SessionTurn t = ask(ord);
    switch (t.state) {
      case SessionTurn::State::kReady: {
        const NodeState* node =
            t.stateful ? stateful_node(t, nodes, index) : index.pick(t.service, t.solo, false);
        if (node == nullptr) {
          waiting.push_back(ord);
          break;
        }
        std::uint64_t k = t.solo || t.stateful
                              ? 1
                              : std::min<std::uint64_t>({node->free(), t.queued, chunk_for(*node)});
        turns.sessions.push_back(ord);
        served = Assignment{ord, node->ordinal, k};
        break;
      }
      case SessionTurn::State::kWaiting:
        waiting.push_back(ord);
        break;
      case SessionTurn::State::kIdle:
      case SessionTurn::State::kPaused:
        active_.erase(ord);
        break;
    }
  }
  turns.sessions.insert(turns.sessions.begin(), waiting.begin(), waiting.end());
  return served;
}

}  // namespace zgrid::head
