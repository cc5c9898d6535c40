// The Service interface and registry.
//
// A service is a plain C++ class: request bytes in, result bytes or a fault
// out. The node creates one instance per worker thread (so an instance never
// runs two requests at once and need not be thread-safe) and catches every
// exception a service throws, turning it into a per-request fault.
//
// Adding a service touches only services/: implement Service, then register a
// factory in builtin.cpp (or load it as a plug-in, see docs/services.md).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zgrid::svc {

// Fault codes a service may return (docs/protocol.md, "Faults").
inline constexpr std::string_view kInvalidArgument = "invalid_argument";
inline constexpr std::string_view kServiceError = "service_error";
inline constexpr std::string_view kRetryable = "retryable";  // the head runs it again

// Where a service writes its answer. The node reuses one Output per worker, so
// `data` keeps its capacity between requests.
struct Output {
  std::string data;        // the result, or the fault message
  std::string fault_code;  // empty: success

  void reset() {
    data.clear();
    fault_code.clear();
  }
  void fault(std::string_view code, std::string_view message) {
    fault_code.assign(code);
    data.assign(message);
  }
};

class Service {
 public:
  virtual ~Service() = default;
  // Handles one request. May throw: the host turns exceptions into faults.
  virtual void handle(std::string_view request, Output& out) = 0;
};

using Factory = std::function<std::unique_ptr<Service>()>;

// Thread safety: fill it before the workers start; read-only afterwards.
class Registry {
 public:
  void add(std::string name, Factory factory) { factories_[std::move(name)] = std::move(factory); }
  const Factory* find(std::string_view name) const {
    auto it = factories_.find(std::string(name));
    return it == factories_.end() ? nullptr : &it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : factories_) out.push_back(kv.first);
    return out;
  }

 private:
  std::map<std::string, Factory> factories_;
};

// Adds factorize, echo, sleep and fail.
void register_builtins(Registry& registry);

}  // namespace zgrid::svc
