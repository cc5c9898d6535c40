#include "head/observe.hpp"

#include <algorithm>
#include <iterator>

#include "common/clock.hpp"

namespace zgrid::head {

void EventRing::add(std::string_view kind, std::string_view subject, std::string message) {
  Event e;
  e.seq = next_seq_++;
  e.time_ms = wall_millis();
  e.kind = kind;
  e.subject = subject;
  e.message = std::move(message);
  events_.push_back(std::move(e));
  while (events_.size() > kCapacity) events_.pop_front();
}

void Observed::node_lost(const std::string& id, Millis now) {
  if (lost_at.size() >= kMaxLost && !lost_at.count(id)) {
    auto oldest =
        std::min_element(lost_at.begin(), lost_at.end(),
                         [](const auto& a, const auto& b) { return a.second < b.second; });
    lost_at.erase(oldest);
  }
  lost_at[id] = now;
}

void Observed::prune_lost(Millis now) {
  for (auto it = lost_at.begin(); it != lost_at.end();)
    it = now - it->second > kLostWindowMs ? lost_at.erase(it) : std::next(it);
}

}  // namespace zgrid::head
