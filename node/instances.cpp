#include "node/instances.hpp"

#include <span>
#include <utility>

namespace zgrid::node {

void advertise(const svc::Host& host, std::vector<std::string>* services,
               std::vector<proto::ServiceAd>* ads) {
  for (const auto& h : host.services()) {
    services->push_back(h->advertised);
    proto::ServiceAd ad;
    ad.advertised = h->advertised;
    ad.task_timeout_ms = static_cast<std::uint64_t>(h->info.task_timeout_ms);
    ad.max_retries = h->info.max_retries;
    ad.sessions = h->info.sessions;
    ads->push_back(std::move(ad));
  }
}

namespace {
constexpr std::size_t kMaxFaultCode = 64;
}  // namespace

void Instances::run(svc::Service* instance, const Resolved& svc, const proto::Task& t,
                    svc::Output& out) const {
  out.reset();
  if (svc.service == nullptr) {
    out.fault(svc.fault_code, svc.message);
    return;
  }
  try {
    instance->run(svc.operation, t.payload, out);
  } catch (const std::exception& e) {
    out.fault(svc::kServiceError, e.what());
  } catch (...) {
    out.fault(svc::kServiceError, "unknown exception");
  }
  finish(out);
}

void Instances::run_pipelined(svc::Service* instance, const Resolved& svc,
                              const std::vector<std::string_view>& payloads,
                              std::vector<svc::Output>& out,
                              const std::function<void(std::size_t)>& done) const {
  const std::size_t n = payloads.size();
  for (std::size_t i = 0; i < n; ++i) out[i].reset();
  std::size_t next = 0;  // the first task not answered
  auto answered = [&](std::size_t i) {
    finish(out[i]);
    next = i + 1;
    done(i);
  };
  while (next < n) {
    const std::size_t from = next;
    std::function<void(std::size_t)> shifted = [&answered, from](std::size_t i) {
      answered(from + i);
    };
    try {
      instance->run_pipelined(svc.operation, std::span(payloads).subspan(from),
                              std::span(out).subspan(from, n - from), shifted);
      // A service that returned before answering them all broke the
      // contract: the rest fault rather than go missing.
      while (next < n) {
        out[next].fault(svc::kServiceError, "the service returned without answering");
        answered(next);
      }
    } catch (const std::exception& e) {
      out[next].fault(svc::kServiceError, e.what());
      answered(next);
    } catch (...) {
      out[next].fault(svc::kServiceError, "unknown exception");
      answered(next);
    }
  }
}

void Instances::finish(svc::Output& out) const {
  if (out.data.size() > proto::kMaxPayload)
    out.fault(svc::kServiceError, "result larger than the payload limit");
  // Test hook (ZGRID_NODE_TEST_FAULTY=1): a broken node, for quarantine tests.
  if (faulty_) out.fault(svc::kServiceError, "this node is broken (test hook)");
  // Fault codes are short names on the wire.
  if (out.fault_code.size() > kMaxFaultCode) out.fault_code.resize(kMaxFaultCode);
}

void Instances::run_session(const Resolved& svc, std::string_view key, std::uint64_t generation,
                            const proto::Task& t, svc::Output& out) const {
  if (svc.service == nullptr) return run(nullptr, svc, t, out);
  auto lease = host_.session(*svc.service, key, generation);
  if (!lease.ok()) {
    out.reset();
    out.fault(lease.status().code() == Code::kUnavailable ? svc::kRetryable : svc::kServiceError,
              lease.status().message());
    return;
  }
  run(lease->get(), svc, t, out);
}

}  // namespace zgrid::node
