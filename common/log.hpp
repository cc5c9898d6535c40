// One-line event log: "2026-11-22T01:02:03.456Z INFO head: node joined node=… host=…",
// or with set_json(true) one JSON object per line for log collectors:
// {"time":"…","level":"info","component":"head","message":"node joined …","node":"…",…}
// where each key=value word of the message is a field too.
//
// Thread-safe (one mutex around each write). Writes to stderr by default, or to
// a file that can be reopened (for logrotate) with reopen().
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace zgrid::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug|info|warn|error"; returns false for anything else.
bool parse_level(std::string_view text, Level* out);
void set_level(Level level);
void set_json(bool json);
Level level();
// Switches output to `path` (append); empty path means stderr. Returns false and
// keeps the previous sink when the file cannot be opened.
bool set_file(const std::string& path);
// Reopens the current file (after logrotate moved it). No-op for stderr.
void reopen();
// Async-signal-safe: asks for a reopen before the next line (SIGHUP handler).
void request_reopen();

void write(Level level, std::string_view component, std::string_view message);

inline bool enabled(Level l) {
  return static_cast<int>(l) >= static_cast<int>(level());
}

}  // namespace zgrid::log

#define ZG_LOG(lvl, component, msg)                                  \
  do {                                                               \
    if (::zgrid::log::enabled(::zgrid::log::Level::lvl))             \
      ::zgrid::log::write(::zgrid::log::Level::lvl, component, msg); \
  } while (0)
