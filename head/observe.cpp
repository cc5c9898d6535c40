#include "head/observe.hpp"

#include <algorithm>
#include <iterator>

#include "common/clock.hpp"
#include "common/protocol.hpp"
#include "common/util.hpp"

namespace zgrid::head {

namespace {
constexpr std::string_view kOtherFault = "other";
// The name part of "name[@version][/operation]".
std::string_view name_part(std::string_view service) {
  return service.substr(0, service.find_first_of("@/"));
}
}  // namespace

const std::vector<std::string_view>& fault_labels() {
  // The codes the head and nodes answer with (docs/protocol.md, "Faults");
  // retryable, task_timeout and not_run are never recorded as answers.
  static const std::vector<std::string_view> labels{
      proto::fault::kCancelled,       proto::fault::kDataLoss,
      proto::fault::kInvalidArgument, proto::fault::kRetryLimitExceeded,
      proto::fault::kServiceError,    proto::fault::kTimeout,
      proto::fault::kUnknownService,  kOtherFault};
  return labels;
}

std::string_view fault_label(std::string_view code) {
  for (std::string_view l : fault_labels())
    if (l == code) return l;
  return kOtherFault;
}

void ServiceStats::count_fault(std::string_view code, std::uint64_t n) {
  std::string_view label = fault_label(code);
  auto it = faulted.find(label);
  if (it == faulted.end()) it = faulted.emplace(std::string(label), 0).first;
  it->second += n;
}

void Observed::offered(const std::vector<std::string>& names) {
  for (const std::string& s : names)
    if (offered_.size() < kMaxOffered && valid_name(s)) offered_.emplace(name_part(s));
}

ServiceStats& Observed::service(const std::string& name) {
  if (auto it = services.find(name); it != services.end()) return it->second;
  if (valid_name(name) && name != kOtherService) {
    if (offered_.count(name_part(name))) {
      if (offered_entries_ < kMaxOfferedServices) {
        ++offered_entries_;
        return services[name];
      }
    } else if (unoffered_entries_ < kMaxUnofferedServices) {
      ++unoffered_entries_;
      return services[name];
    }
  }
  return services[std::string(kOtherService)];
}

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
