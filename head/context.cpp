#include "head/context.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "common/log.hpp"

namespace zgrid::head {

CrashPoint::CrashPoint(const std::string& spec, int sig) : sig_(sig) {
  if (spec.empty()) return;
  auto colon = spec.find(':');
  name_ = spec.substr(0, colon);
  count_ = colon == std::string::npos ? 1 : std::strtol(spec.c_str() + colon + 1, nullptr, 10);
}

void CrashPoint::reach(const char* point) {
  if (count_ <= 0 || name_ != point) return;
  if (--count_ == 0) {
    ZG_LOG(kWarn, "head",
           std::string(sig_ == SIGSTOP ? "stop point " : "crash point ") + point +
               " reached: " + (sig_ == SIGSTOP ? "SIGSTOP" : "SIGKILL"));
    ::kill(getpid(), sig_);
  }
}

long CrashPoint::take(const char* point) {
  if (name_ != point) return -1;
  long n = count_;
  count_ = -1;
  return n;
}

}  // namespace zgrid::head
