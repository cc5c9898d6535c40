#include "common/log.hpp"

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>

namespace zgrid::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::mutex g_mu;
std::FILE* g_file = nullptr;  // nullptr means stderr; guarded by g_mu
std::string g_path;           // guarded by g_mu
std::atomic<bool> g_reopen{false};

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
  std::lock_guard<std::mutex> lock(g_mu);
  std::FILE* out = g_file ? g_file : stderr;
  std::fprintf(out, "%s %s %.*s: %.*s\n", stamp, kLevelNames[static_cast<int>(l)],
               static_cast<int>(component.size()), component.data(),
               static_cast<int>(message.size()), message.data());
  std::fflush(out);
}

}  // namespace zgrid::log
