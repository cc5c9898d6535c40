// A thin C++ layer over the zgrid service ABI (zgrid/service.h): write one
// class, export it with one macro.
//
//   #include <zgrid/service.hpp>
//   class Pi {
//    public:
//     explicit Pi(std::string_view config);        // may throw: init fails
//     void handle(std::string_view operation, std::string_view request,
//                 zgrid::Reply& reply);            // may throw: a service_error fault
//   };
//   ZGRID_EXPORT_SERVICE(Pi, "montecarlo", "1", "pi,echo")
//
// A class that also has these two members serves stateful sessions (ABI
// version 2's session_open / session_close; docs/services.md, "Stateful
// sessions"):
//
//     void open_session(std::string_view session_key);  // may throw: the session is refused
//     void close_session();                             // exceptions are swallowed
//
// The node then makes one instance per stateful session (the constructor with
// the registration's config), calls open_session once, hands the session's
// requests to handle() one at a time in order, then close_session and the
// destructor. Requests are replayed on a fresh instance when a node is lost:
// the same requests in the same order must give the same answers.
//
// Exceptions never cross the C boundary: the macro's wrappers catch them and
// turn them into an init failure or a per-request fault. Header-only; needs
// nothing but a C++17 compiler (no zgrid library to link).
#ifndef ZGRID_SERVICE_HPP_
#define ZGRID_SERVICE_HPP_

#include <zgrid/service.h>

#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace zgrid {

// What handle() answers with: a result or a fault (the last call wins).
class Reply {
 public:
  void result(std::string_view bytes) {
    data_.assign(bytes);
    fault_.clear();
  }
  void fault(std::string_view code, std::string_view message) {
    fault_.assign(code);
    data_.assign(message);
  }
  bool is_fault() const { return !fault_.empty(); }
  const std::string& data() const { return data_; }
  const std::string& fault_code() const { return fault_; }

 private:
  std::string data_;
  std::string fault_;
};

namespace detail {

inline void copy_error(char* err, std::size_t errlen, const char* msg) {
  if (err == nullptr || errlen == 0) return;
  std::strncpy(err, msg, errlen - 1);
  err[errlen - 1] = '\0';
}

// Whether T has open_session(std::string_view), close_session(), both.
template <class T, class = void>
struct HasOpenSession : std::false_type {};
template <class T>
struct HasOpenSession<T, std::void_t<decltype(std::declval<T&>().open_session(std::string_view()))>>
    : std::true_type {};
template <class T, class = void>
struct HasCloseSession : std::false_type {};
template <class T>
struct HasCloseSession<T, std::void_t<decltype(std::declval<T&>().close_session())>>
    : std::true_type {};
template <class T>
struct HasSessions : std::bool_constant<HasOpenSession<T>::value && HasCloseSession<T>::value> {
  static_assert(HasOpenSession<T>::value == HasCloseSession<T>::value,
                "a stateful service defines both open_session(std::string_view) and "
                "close_session()");
};

template <class T>
struct Adapter {
  struct Instance {
    T service;
    Reply reply;
    explicit Instance(std::string_view config) : service(config) {}
  };
  static void* init(const char* config, char* err, std::size_t errlen) noexcept {
    try {
      return new Instance(config != nullptr ? config : "");
    } catch (const std::exception& e) {
      copy_error(err, errlen, e.what());
    } catch (...) {
      copy_error(err, errlen, "unknown exception in the service constructor");
    }
    return nullptr;
  }
  static int handle(void* p, const char* op, const std::uint8_t* req, std::size_t len,
                    zgrid_output* out, const zgrid_host_api* host) noexcept {
    auto* inst = static_cast<Instance*>(p);
    try {
      inst->reply.result({});
      inst->service.handle(op != nullptr ? op : "",
                           std::string_view(reinterpret_cast<const char*>(req), len), inst->reply);
      if (inst->reply.is_fault()) {
        host->set_fault(out, inst->reply.fault_code().c_str(), inst->reply.data().c_str());
        return ZGRID_FAULT;
      }
      host->set_result(out, inst->reply.data().data(), inst->reply.data().size());
      return ZGRID_OK;
    } catch (const std::exception& e) {
      host->set_fault(out, "service_error", e.what());
    } catch (...) {
      host->set_fault(out, "service_error", "unknown exception");
    }
    return ZGRID_FAULT;
  }
  static void shutdown(void* p) noexcept {
    try {
      delete static_cast<Instance*>(p);
    } catch (...) {
      // A destructor that throws must not take the node down.
    }
  }
  static int session_open(void* p, const char* key, char* err, std::size_t errlen) noexcept {
    if constexpr (HasSessions<T>::value) {
      try {
        static_cast<Instance*>(p)->service.open_session(key != nullptr ? key : "");
        return 0;
      } catch (const std::exception& e) {
        copy_error(err, errlen, e.what());
      } catch (...) {
        copy_error(err, errlen, "unknown exception in open_session");
      }
    } else {
      (void)p;
      (void)key;
      copy_error(err, errlen, "this service does not keep session state");
    }
    return 1;
  }
  static void session_close(void* p) noexcept {
    if constexpr (HasSessions<T>::value) {
      try {
        static_cast<Instance*>(p)->service.close_session();
      } catch (...) {
        // Nothing to report to: the session is over either way.
      }
    } else {
      (void)p;
    }
  }
  // NULL unless T serves stateful sessions.
  static constexpr int (*open_fn)(void*, const char*, char*,
                                  std::size_t) = HasSessions<T>::value ? &session_open : nullptr;
  static constexpr void (*close_fn)(void*) = HasSessions<T>::value ? &session_close : nullptr;
};

}  // namespace detail
}  // namespace zgrid

// Exports class CLASS as the plug-in's service. Use once per shared library.
// Sessions are offered when CLASS has open_session and close_session.
#define ZGRID_EXPORT_SERVICE(CLASS, NAME, VERSION, OPERATIONS)                                   \
  extern "C" __attribute__((visibility("default"))) const zgrid_service_v2* zgrid_service_entry( \
      uint32_t /*host_abi_version*/) {                                                           \
    static const zgrid_service_v2 entry = {ZGRID_SERVICE_ABI_VERSION,                            \
                                           sizeof(zgrid_service_v2),                             \
                                           NAME,                                                 \
                                           VERSION,                                              \
                                           OPERATIONS,                                           \
                                           &::zgrid::detail::Adapter<CLASS>::init,               \
                                           &::zgrid::detail::Adapter<CLASS>::handle,             \
                                           &::zgrid::detail::Adapter<CLASS>::shutdown,           \
                                           ::zgrid::detail::Adapter<CLASS>::open_fn,             \
                                           ::zgrid::detail::Adapter<CLASS>::close_fn};           \
    return &entry;                                                                               \
  }

#endif  // ZGRID_SERVICE_HPP_
