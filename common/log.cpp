#include "common/log.hpp"

#include "common/util.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>

namespace zgrid::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::mutex g_mu;
std::FILE* g_file = nullptr;  // nullptr means stderr; guarded by g_mu
std::string g_path;           // guarded by g_mu
std::atomic<bool> g_reopen{false};
std::atomic<bool> g_json{false};

// The key=value words of a message, as fields (keys of [a-z_] only, the
// first of each name, never one of the line's own keys).
void json_fields(std::string& out, std::string_view msg) {
  std::vector<std::string_view> seen;
  std::size_t i = 0;
  while (i < msg.size()) {
    std::size_t end = msg.find(' ', i);
    if (end == std::string_view::npos) end = msg.size();
    std::string_view word = msg.substr(i, end - i);
    i = end + 1;
    auto eq = word.find('=');
    if (eq == 0 || eq == std::string_view::npos || eq + 1 == word.size()) continue;
    std::string_view k = word.substr(0, eq);
    if (k.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string_view::npos) continue;
    if (k == "time" || k == "level" || k == "component" || k == "message") continue;
    if (std::find(seen.begin(), seen.end(), k) != seen.end()) continue;
    seen.push_back(k);
    out += ',';
    append_json_string(out, k, true);
    out += ':';
    append_json_string(out, word.substr(eq + 1), true);
  }
}

constexpr const char* kLevelNames[] = {"DEBUG", "INFO", "WARN", "ERROR"};
}  // namespace

bool parse_level(std::string_view text, Level* out) {
  if (text == "debug")
    *out = Level::kDebug;
  else if (text == "info")
    *out = Level::kInfo;
  else if (text == "warn" || text == "warning")
    *out = Level::kWarn;
  else if (text == "error")
    *out = Level::kError;
  else
    return false;
  return true;
}

void set_level(Level l) {
  g_level.store(static_cast<int>(l));
}
void set_json(bool json) {
  g_json.store(json);
}

Level level() {
  return static_cast<Level>(g_level.load(std::memory_order_relaxed));
}

bool set_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (path.empty()) {
    if (g_file) std::fclose(g_file);
    g_file = nullptr;
    g_path.clear();
    return true;
  }
  std::FILE* f = std::fopen(path.c_str(), "ae");
  if (!f) return false;
  if (g_file) std::fclose(g_file);
  g_file = f;
  g_path = path;
  return true;
}

void reopen() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_file) return;
  if (std::FILE* f = std::fopen(g_path.c_str(), "ae")) {
    std::fclose(g_file);
    g_file = f;
  }
}

void request_reopen() {
  g_reopen.store(true);
}

void write(Level l, std::string_view component, std::string_view message) {
  if (g_reopen.exchange(false)) reopen();
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  if (g_json.load(std::memory_order_relaxed)) {
    static constexpr const char* kLower[] = {"debug", "info", "warn", "error"};
    std::string line = "{\"time\":\"";
    line.append(stamp).append("\",\"level\":\"").append(kLower[static_cast<int>(l)]);
    line += "\",\"component\":";
    append_json_string(line, component, true);
    line += ",\"message\":";
    append_json_string(line, message, true);
    json_fields(line, message);
    line += "}\n";
    std::lock_guard<std::mutex> lock(g_mu);
    std::FILE* out = g_file ? g_file : stderr;
    std::fwrite(line.data(), 1, line.size(), out);
    std::fflush(out);
    return;
  }
  std::lock_guard<std::mutex> lock(g_mu);
  std::FILE* out = g_file ? g_file : stderr;
  std::fprintf(out, "%s %s %.*s: %.*s\n", stamp, kLevelNames[static_cast<int>(l)],
               static_cast<int>(component.size()), component.data(),
               static_cast<int>(message.size()), message.data());
  std::fflush(out);
}

}  // namespace zgrid::log
