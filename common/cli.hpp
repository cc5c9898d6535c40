// Command-line parsing shared by zgrid-head, zgrid-node and zgrid (CLI11).
//
// Precedence, highest first: command-line flag > ZGRID_* environment variable
// > --config file > built-in default. CLI11 alone lets a config file win over
// the environment, so environment values are injected as flags placed before
// the real command line, and every option keeps the last value it is given.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/daemon.hpp"
#include "common/status.hpp"

namespace zgrid::cli {

// Adds an option taking a duration with units ("300s", "5m", "1500ms").
CLI::Option* add_duration(CLI::App& app, const std::string& name, Millis* out,
                          const std::string& description);

// The environment variable for a long option name: "--client-idle-timeout" ->
// "ZGRID_CLIENT_IDLE_TIMEOUT" (prefix "ZGRID_"; zgrid-node uses "ZGRID_NODE_"
// so that the CLI's ZGRID_HEAD, a frontend, never feeds a node's --head).
std::string env_name(const std::string& long_name, const std::string& prefix = "ZGRID_");

// Parses argv with the precedence above. Returns -1 to go on, or the exit
// status to return from main (0 after --help, 2 after a usage error, which is
// printed as one line on stderr, prefixed with the program name).
// `env_prefix` empty: no environment.
int parse(CLI::App& app, int argc, const char* const* argv,
          const std::string& env_prefix = "ZGRID_");

}  // namespace zgrid::cli
