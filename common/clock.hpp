// Injectable monotonic clock, so timeouts (heartbeats, idle clients) can be
// tested without waiting in real time.
//
// Thread safety: SteadyClock is stateless; FakeClock is for single-threaded tests.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include <zgrid/types.hpp>  // Millis

namespace zgrid {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Millis now_ms() const = 0;
};

class SteadyClock final : public Clock {
 public:
  Millis now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  static const SteadyClock& instance() {
    static const SteadyClock clock;
    return clock;
  }
};

// A clock that moves only when told to; safe to advance from a test thread
// while a head runs on another.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(Millis start = 1'000'000) : now_(start) {}
  Millis now_ms() const override { return now_.load(); }
  void advance(Millis ms) { now_.fetch_add(ms); }

 private:
  std::atomic<Millis> now_;
};

// Wall-clock seconds since the epoch (for ages shown to people).
inline std::int64_t wall_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
inline std::int64_t wall_millis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace zgrid
