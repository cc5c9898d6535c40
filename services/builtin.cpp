// The built-in services: factorize (the sample), and echo, sleep and fail for tests.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/service_spec.hpp"
#include "services/factorize_kernel.hpp"
#include "services/service.hpp"

namespace zgrid::svc {

namespace {

// Input: an unsigned 64-bit integer in decimal. Output: "p1 * p2 * ..." in
// ascending order ("1" for 1). Anything else is an invalid_argument fault.
class Factorize final : public Service {
 public:
  void handle(std::string_view request, Output& out) override {
    auto n = factor::parse_u64(request);
    if (!n) {
      out.fault(kInvalidArgument, "not an integer in 1..18446744073709551615");
      return;
    }
    std::uint64_t f[factor::kMaxFactors];
    int count = factor::factorize(*n, f);
    out.data.resize(21 * factor::kMaxFactors);
    out.data.resize(factor::format_factors(*n, f, count, out.data.data()));
  }
};

class Echo final : public Service {
 public:
  void handle(std::string_view request, Output& out) override { out.data.assign(request); }
};

// Milliseconds in 0..600000, or nothing.
std::optional<std::uint64_t> parse_ms(std::string_view s) {
  auto ms = s == "0" ? std::optional<std::uint64_t>(0) : factor::parse_u64(s);
  if (!ms || *ms > 600'000) return std::nullopt;
  return ms;
}

// Input: milliseconds to sleep (0..600000). Output: the input. Gives up early
// when the node cancels the request (it ran past its task timeout).
class Sleep final : public Service {
 public:
  void handle(std::string_view request, Output& out) override {
    auto ms = parse_ms(request);
    if (!ms) {
      out.fault(kInvalidArgument, "sleep takes milliseconds in 0..600000");
      return;
    }
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(*ms);
    while (!out.cancelled()) {
      auto left = until - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) break;
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(5)));
    }
    out.data.assign(request);
  }
};

// Test service. Input "ok:TEXT" answers TEXT; "fault:CODE" faults with CODE;
// "throw" throws; "retry" asks to be retried; "crash" calls abort() (kills
// the node: used to prove poison isolation); "hang:MS" sleeps MS
// milliseconds ignoring cancellation (a call that cannot be interrupted:
// its worker is stuck). Anything else is echoed.
class Fail final : public Service {
 public:
  void handle(std::string_view request, Output& out) override {
    if (request.rfind("ok:", 0) == 0) {
      out.data.assign(request.substr(3));
    } else if (request.rfind("fault:", 0) == 0) {
      out.fault(request.substr(6), "requested fault");
    } else if (request == "throw") {
      throw std::runtime_error("requested exception");
    } else if (request == "retry") {
      out.fault(kRetryable, "requested retry");
    } else if (request == "crash") {
      std::abort();
    } else if (request.rfind("hang:", 0) == 0) {
      auto ms = parse_ms(request.substr(5));
      if (!ms) return out.fault(kInvalidArgument, "hang takes milliseconds in 0..600000");
      std::this_thread::sleep_for(std::chrono::milliseconds(*ms));
      out.data.assign(request);
    } else {
      out.data.assign(request);
    }
  }
};

}  // namespace

void Registry::add(std::string name, Factory factory) {
  ServiceInfo info;
  info.name = std::move(name);
  info.make = [f = std::move(factory)]() -> Result<std::unique_ptr<Service>> { return f(); };
  (void)add(std::move(info));  // built-in names are distinct
}

Status Registry::add(ServiceInfo info) {
  for (const auto& s : services_)
    if (s.name == info.name && s.version == info.version)
      return Status::InvalidArgument("service " + spec::advertised(info.name, info.version) +
                                     " is registered twice (" + s.source + " and " + info.source +
                                     ")");
  services_.push_back(std::move(info));
  return Status::OK();
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> out;
  for (const auto& s : services_) out.push_back(spec::advertised(s.name, s.version));
  return out;
}

void register_builtins(Registry& registry) {
  registry.add("factorize", [] { return std::make_unique<Factorize>(); });
  registry.add("echo", [] { return std::make_unique<Echo>(); });
  registry.add("sleep", [] { return std::make_unique<Sleep>(); });
  registry.add("fail", [] { return std::make_unique<Fail>(); });
}

}  // namespace zgrid::svc
