#include "node/instances.hpp"

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
