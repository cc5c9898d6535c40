#include "head/observe.hpp"

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

}  // namespace zgrid::head
