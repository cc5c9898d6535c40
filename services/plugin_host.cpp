#include "services/plugin_host.hpp"

#include <dlfcn.h>
#include <zgrid/service.h>

#include <cstddef>
#include <cstring>
#include <memory>

#include "common/protocol.hpp"
#include "common/service_spec.hpp"

// The host's side of the output: what the plug-in set during one handle().
struct zgrid_output {
  zgrid::svc::Output* out = nullptr;
  int results = 0, faults = 0;
  bool too_large = false;
  bool bad_code = false;
};

namespace zgrid::svc {

namespace {

constexpr std::size_t kMaxFaultMessage = 64 << 10;

void host_set_result(zgrid_output* o, const void* data, size_t len) {
  if (o == nullptr) return;
  ++o->results;
  if (len > proto::kMaxPayload) {
    o->too_large = true;
    return;
  }
  if (len > 0 && data == nullptr) {
    o->bad_code = true;
    return;
  }
  o->out->data.assign(static_cast<const char*>(data), len);
}

bool valid_fault_code(const char* code) {
  if (code == nullptr) return false;
  std::size_t n = strnlen(code, 65);
  if (n == 0 || n > 64) return false;
  for (std::size_t i = 0; i < n; ++i) {
    char c = code[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

void host_set_fault(zgrid_output* o, const char* code, const char* message) {
  if (o == nullptr) return;
  ++o->faults;
  if (!valid_fault_code(code)) {
    o->bad_code = true;
    return;
  }
  o->out->fault_code.assign(code);
  o->out->data.assign(message != nullptr ? message : "",
                      message != nullptr ? strnlen(message, kMaxFaultMessage) : 0);
}

const zgrid_host_api kHostApi = {ZGRID_SERVICE_ABI_VERSION, &host_set_result, &host_set_fault};

// The version 2 descriptor starts with the version 1 fields, laid out alike.
static_assert(offsetof(zgrid_service_v2, shutdown) == offsetof(zgrid_service_v1, shutdown));
static_assert(offsetof(zgrid_service_v2, session_open) >= sizeof(zgrid_service_v1));

// The plug-in's functions, copied from its descriptor (version 1 or 2).
struct Entry {
  void* (*init)(const char*, char*, size_t) = nullptr;
  int (*handle)(void*, const char*, const uint8_t*, size_t, zgrid_output*,
                const zgrid_host_api*) = nullptr;
  void (*shutdown)(void*) = nullptr;
  // Both set or both null (version 1: null).
  int (*session_open)(void*, const char*, char*, size_t) = nullptr;
  void (*session_close)(void*) = nullptr;
};

// dlclose when the last user goes.
struct Library {
  void* handle = nullptr;
  Entry entry;
  std::string path;
  ~Library() {
    if (handle != nullptr) dlclose(handle);
  }
};

class PluginService final : public Service {
 public:
  PluginService(std::shared_ptr<Library> lib, void* instance)
      : lib_(std::move(lib)), instance_(instance) {}
  ~PluginService() override { lib_->entry.shutdown(instance_); }

  Status open_session(std::string_view session_key) override {
    if (lib_->entry.session_open == nullptr) return Service::open_session(session_key);
    std::string key(session_key);  // NUL-terminated for C
    char err[512] = {0};
    int rc = lib_->entry.session_open(instance_, key.c_str(), err, sizeof err);
    if (rc != 0) {
      err[sizeof err - 1] = '\0';
      return Status::InvalidArgument(std::string("session_open failed: ") +
                                     (err[0] ? err : "no reason given"));
    }
    open_ = true;
    return Status::OK();
  }

  void close_session() override {
    if (!open_) return;
    open_ = false;
    lib_->entry.session_close(instance_);
  }

  void handle(std::string_view request, Output& out) override { run("", request, out); }

  void run(std::string_view operation, std::string_view request, Output& out) override {
    op_.assign(operation);  // NUL-terminated for C
    zgrid_output o;
    o.out = &out;
    int rc = lib_->entry.handle(instance_, op_.c_str(),
                                reinterpret_cast<const std::uint8_t*>(request.data()),
                                request.size(), &o, &kHostApi);
    const char* bad = nullptr;
    if (o.too_large)
      bad = "result larger than the payload limit (1 MiB)";
    else if (o.bad_code)
      bad = "malformed fault code or result (fault codes are 1..64 of [a-z0-9_])";
    else if (rc == ZGRID_OK && (o.results != 1 || o.faults != 0))
      bad = "returned ZGRID_OK without exactly one set_result";
    else if (rc == ZGRID_FAULT && (o.faults != 1 || o.results != 0))
      bad = "returned ZGRID_FAULT without exactly one set_fault";
    else if (rc != ZGRID_OK && rc != ZGRID_FAULT)
      bad = "returned an invalid code (neither ZGRID_OK nor ZGRID_FAULT)";
    if (bad != nullptr) out.fault(kServiceError, std::string("plug-in ") + bad);
  }

 private:
  std::shared_ptr<Library> lib_;
  void* instance_;
  std::string op_;
  bool open_ = false;  // session_open succeeded, session_close not yet called
};

Status bad(const std::string& path, const std::string& why) {
  return Status::InvalidArgument("plug-in " + path + ": " + why);
}

}  // namespace

Result<ServiceInfo> load_plugin(const std::string& path, const std::string& config) {
  auto lib = std::make_shared<Library>();
  lib->path = path;
  lib->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib->handle == nullptr) {
    const char* e = dlerror();
    return bad(path, std::string("cannot load: ") + (e ? e : "unknown error"));
  }
  void* sym = dlsym(lib->handle, ZGRID_SERVICE_ENTRY_SYMBOL);
  if (sym == nullptr)
    return bad(path, "no symbol " ZGRID_SERVICE_ENTRY_SYMBOL " (not a zgrid service plug-in?)");
  auto fn = reinterpret_cast<zgrid_service_entry_fn>(sym);
  // Read as version 1 (the common first fields) until abi_version says more.
  const auto* e = reinterpret_cast<const zgrid_service_v1*>(fn(ZGRID_SERVICE_ABI_VERSION));
  if (e == nullptr)
    return bad(path,
               "refuses this node's ABI version " + std::to_string(ZGRID_SERVICE_ABI_VERSION));
  if (e->abi_version != 1 && e->abi_version != ZGRID_SERVICE_ABI_VERSION)
    return bad(path, "ABI version mismatch: the plug-in was built for ABI version " +
                         std::to_string(e->abi_version) + ", this node speaks ABI version " +
                         std::to_string(ZGRID_SERVICE_ABI_VERSION) +
                         " (and loads version 1 plug-ins)");
  if (e->struct_size < sizeof(zgrid_service_v1))
    return bad(path, "descriptor too small (struct_size " + std::to_string(e->struct_size) +
                         ", needs at least " + std::to_string(sizeof(zgrid_service_v1)) + ")");
  if (e->init == nullptr || e->handle == nullptr || e->shutdown == nullptr)
    return bad(path, "descriptor lacks init, handle or shutdown");
  Entry entry{e->init, e->handle, e->shutdown, nullptr, nullptr};
  // A version 1 descriptor built against this header says abi_version 2
  // with the version 1 size (struct_size tells): it serves per-call
  // sessions, as it always did. Fields past struct_size are never read.
  if (e->abi_version >= 2 && e->struct_size >= sizeof(zgrid_service_v2)) {
    const auto* e2 = reinterpret_cast<const zgrid_service_v2*>(e);
    if ((e2->session_open == nullptr) != (e2->session_close == nullptr))
      return bad(path, "descriptor sets only one of session_open and session_close");
    entry.session_open = e2->session_open;
    entry.session_close = e2->session_close;
  }
  if (e->name == nullptr || !spec::valid_part(e->name))
    return bad(path, "bad service name (1..64 of [A-Za-z0-9_.+-])");
  if (e->version == nullptr || !spec::valid_part(e->version))
    return bad(path, "bad service version (1..64 of [A-Za-z0-9_.+-])");
  lib->entry = entry;

  ServiceInfo info;
  info.name = e->name;
  info.version = e->version;
  info.source = path;
  info.sessions = entry.session_open != nullptr;
  if (e->operations != nullptr) {
    std::string_view ops = e->operations;
    while (!ops.empty()) {
      auto comma = ops.find(',');
      std::string_view op = ops.substr(0, comma);
      if (!spec::valid_part(op)) return bad(path, "bad operation '" + std::string(op) + "'");
      info.operations.emplace_back(op);
      if (comma == std::string_view::npos) break;
      ops.remove_prefix(comma + 1);
    }
  }
  info.make = [lib, config]() -> Result<std::unique_ptr<Service>> {
    char err[512] = {0};
    void* inst = lib->entry.init(config.c_str(), err, sizeof err);
    if (inst == nullptr) {
      err[sizeof err - 1] = '\0';
      return Status::InvalidArgument(std::string("init failed: ") +
                                     (err[0] ? err : "no reason given"));
    }
    return std::unique_ptr<Service>(std::make_unique<PluginService>(lib, inst));
  };
  return info;
}

}  // namespace zgrid::svc
