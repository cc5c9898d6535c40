#include "services/host.hpp"

#include <algorithm>

#include "common/protocol.hpp"
#include "common/service_spec.hpp"

namespace zgrid::svc {

Host::Lease::~Lease() {
  {
    std::lock_guard<std::mutex> lock(h_->mu);
    h_->idle.push_back(s_);
  }
  h_->cv.notify_one();
}

Result<std::unique_ptr<Host>> Host::start(const Registry& registry,
                                          const std::vector<std::string>& filter, int workers) {
  std::unique_ptr<Host> host(new Host());
  std::vector<bool> used(filter.size(), false);
  std::vector<spec::ServiceSpec> wanted;
  for (const auto& f : filter) {
    ZG_ASSIGN_OR_RETURN(spec::ServiceSpec s, spec::parse(f));
    wanted.push_back(s);
  }
  for (const ServiceInfo& info : registry.services()) {
    std::string adv = spec::advertised(info.name, info.version);
    bool keep = filter.empty();
    for (std::size_t i = 0; i < wanted.size(); ++i)
      if (spec::matches(wanted[i], adv)) keep = used[i] = true;
    if (!keep) continue;
    auto h = std::make_unique<Hosted>();
    h->info = info;
    h->advertised = adv;
    int n = info.concurrency > 0 ? std::min(info.concurrency, workers) : workers;
    for (int i = 0; i < std::max(1, n); ++i) {
      auto inst = info.make();
      if (!inst.ok())
        return Status::InvalidArgument("service " + adv + " (" + info.source +
                                       ") cannot start: " + inst.status().message());
      h->idle.push_back(inst->get());
      h->instances.push_back(std::move(inst).value());
    }
    host->services_.push_back(std::move(h));
  }
  for (std::size_t i = 0; i < filter.size(); ++i)
    if (!used[i]) {
      std::string have;
      for (const auto& n : registry.names()) have += (have.empty() ? "" : ", ") + n;
      return Status::InvalidArgument("unknown service '" + filter[i] + "' (this node has: " + have +
                                     ")");
    }
  return host;
}

Host::~Host() {
  // Instances go first (plug-in shutdown, exec workers stopped), then the
  // ServiceInfo factories holding the last references to plug-in libraries.
  for (auto& h : services_) h->instances.clear();
}

std::vector<std::string> Host::advertised() const {
  std::vector<std::string> out;
  for (const auto& h : services_) out.push_back(h->advertised);
  return out;
}

Host::Resolved Host::resolve(std::string_view text) const {
  Resolved r;
  auto s = spec::parse(text);
  if (!s.ok()) {
    r.fault_code = "invalid_argument";
    r.message = s.status().message();
    return r;
  }
  for (const auto& h : services_) {
    if (!spec::matches(*s, h->advertised)) continue;
    if (r.service == nullptr ||
        spec::compare_versions(h->info.version, r.service->info.version) > 0)
      r.service = h.get();
  }
  if (r.service == nullptr) {
    r.fault_code = proto::fault::kUnknownService;
    r.message = "this node does not run " + std::string(text);
    return r;
  }
  const auto& ops = r.service->info.operations;
  if (s->operation.empty()) {
    if (!ops.empty()) r.operation = ops.front();
  } else if (ops.empty() || std::find(ops.begin(), ops.end(), s->operation) != ops.end()) {
    r.operation = std::string(s->operation);
  } else {
    std::string list;
    for (const auto& o : ops) list += (list.empty() ? "" : ", ") + o;
    r.fault_code = "invalid_argument";
    r.message = "service " + r.service->advertised + " has no operation '" +
                std::string(s->operation) + "' (it has: " + list + ")";
    r.service = nullptr;
  }
  return r;
}

Host::Lease Host::lease(Hosted& h) {
  std::unique_lock<std::mutex> lock(h.mu);
  h.cv.wait(lock, [&] { return !h.idle.empty(); });
  Service* s = h.idle.back();
  h.idle.pop_back();
  return Lease(h, s);
}

void Host::cancel_all() {
  for (auto& h : services_)
    for (auto& inst : h->instances) inst->cancel();
}

}  // namespace zgrid::svc
