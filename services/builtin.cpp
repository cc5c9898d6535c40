// The built-in services: factorize (the sample), running_sum (stateful
// sessions), and echo, sleep and fail for tests.
#include <algorithm>
#include <chrono>
#include <cstdint>
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

// A stateful service (sessions only). Each request is one decimal integer
// (optional leading '-', surrounding whitespace allowed); the answer is the
// sum of the session's integers so far, this one included. A bad request or
// an overflow faults invalid_argument and leaves the sum as it was, so a
// replay of the same requests always gives the same answers.
class RunningSum final : public Service {
 public:
  Status open_session(std::string_view session_key) override {
    (void)session_key;
    in_session_ = true;
    sum_ = 0;
    return Status::OK();
  }
  void close_session() override { in_session_ = false; }

  void handle(std::string_view request, Output& out) override {
    if (!in_session_)
      return out.fault(kInvalidArgument,
                       "running_sum needs a stateful session (zgrid submit --stateful)");
    std::int64_t n = 0;
    if (const char* why = parse(request, &n)) return out.fault(kInvalidArgument, why);
    std::int64_t next = 0;
    if (__builtin_add_overflow(sum_, n, &next))
      return out.fault(kInvalidArgument,
                       "the running sum would overflow a 64-bit integer (request ignored)");
    sum_ = next;
    out.data = std::to_string(sum_);
  }

  // Parses a decimal int64; returns why not, or nullptr.
  static const char* parse(std::string_view s, std::int64_t* out) {
    auto space = [](char c) {
      return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
    };
    while (!s.empty() && space(s.front())) s.remove_prefix(1);
    while (!s.empty() && space(s.back())) s.remove_suffix(1);
    bool negative = !s.empty() && s.front() == '-';
    if (negative) s.remove_prefix(1);
    constexpr const char* kNotInteger =
        "running_sum takes one decimal integer per request (e.g. 42 or -7)";
    if (s.empty()) return kNotInteger;
    // Accumulated negatively: the range of int64 is larger on that side.
    std::int64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return kNotInteger;
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_sub_overflow(v, c - '0', &v))
        return "integer out of the 64-bit range";
    }
    if (!negative && __builtin_sub_overflow(std::int64_t{0}, v, &v))
      return "integer out of the 64-bit range";
    *out = v;
    return nullptr;
  }

 private:
  bool in_session_ = false;  // pooled (per-call) instances are never opened
  std::int64_t sum_ = 0;
};

}  // namespace

void Registry::add(std::string name, Factory factory, bool run_inline) {
  ServiceInfo info;
  info.name = std::move(name);
  info.run_inline = run_inline;
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
  // Microsecond computations: a lone one may run on the node's I/O thread.
  registry.add(
      "factorize", [] { return std::make_unique<Factorize>(); }, /*run_inline=*/true);
  registry.add(
      "echo", [] { return std::make_unique<Echo>(); }, /*run_inline=*/true);
  registry.add("sleep", [] { return std::make_unique<Sleep>(); });
  registry.add("fail", [] { return std::make_unique<Fail>(); });
  ServiceInfo sum;
  sum.name = "running_sum";
  sum.sessions = true;
  sum.make = []() -> Result<std::unique_ptr<Service>> {
    return std::unique_ptr<Service>(std::make_unique<RunningSum>());
  };
  (void)registry.add(std::move(sum));
}

}  // namespace zgrid::svc
