// What every daemon's main needs besides flag parsing: logging and signal
// set-up, the SIGHUP count, and range checks for Validate. Kept apart from
// common/cli.hpp so that code using it does not compile CLI11 (the costliest
// header of the build).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.hpp"

namespace zgrid::cli {

// Applies --log-level / --log-file and installs the daemon signal handlers:
// SIGTERM and SIGINT set `*stop`, SIGHUP reopens the log file and counts in
// hangups(), SIGPIPE is ignored. Returns -1 to go on, or 2 after printing one
// line for a bad value.
int setup_daemon(const std::string& program, const std::string& log_level,
                 const std::string& log_file, std::atomic<bool>* stop,
                 const std::string& log_format = "text");

// SIGHUPs received so far: a daemon compares it with the count it saw last
// to reload what it reads from files (the head's authorized keys).
std::uint64_t hangups();

// A flag's value within [lo, hi], or invalid_argument naming the flag, the
// range and the value (every daemon's Validate uses it).
template <typename T>
Status in_range(std::string_view flag, T v, T lo, T hi) {
  if (v >= lo && v <= hi) return Status::OK();
  return Status::InvalidArgument(std::string(flag) + " must be between " + std::to_string(lo) +
                                 " and " + std::to_string(hi) + " (got " + std::to_string(v) + ")");
}

}  // namespace zgrid::cli
