// Clang's thread-safety analysis (-Wthread-safety): annotations that say
// which mutex guards which member, and a mutex and lock the analysis
// understands (std::mutex in libstdc++ carries no annotations). Other
// compilers see empty macros and the same types.
//
// Used where members are shared between threads (docs/architecture.md,
// "Processes and threads"); the `thread_safety_check` test compiles those
// files with clang and -Wthread-safety -Werror.
#pragma once

#include <mutex>

#if defined(__clang__)
#define ZG_TSA(x) __attribute__((x))
#else
#define ZG_TSA(x)
#endif

#define ZG_CAPABILITY(x) ZG_TSA(capability(x))
#define ZG_SCOPED_CAPABILITY ZG_TSA(scoped_lockable)
#define ZG_GUARDED_BY(x) ZG_TSA(guarded_by(x))
#define ZG_REQUIRES(...) ZG_TSA(requires_capability(__VA_ARGS__))
#define ZG_ACQUIRE(...) ZG_TSA(acquire_capability(__VA_ARGS__))
#define ZG_RELEASE(...) ZG_TSA(release_capability(__VA_ARGS__))
#define ZG_EXCLUDES(...) ZG_TSA(locks_excluded(__VA_ARGS__))

namespace zgrid {

class ZG_CAPABILITY("mutex") Mutex {
 public:
  void lock() ZG_ACQUIRE() { mu_.lock(); }
  void unlock() ZG_RELEASE() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class ZG_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ZG_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() ZG_RELEASE() {
    if (held_) mu_.unlock();
  }
  // For std::condition_variable_any, which lets go while it waits (the
  // analysis sees the lock held across the wait, as it is on return).
  void lock() ZG_ACQUIRE() {
    mu_.lock();
    held_ = true;
  }
  void unlock() ZG_RELEASE() {
    held_ = false;
    mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
  bool held_ = true;
};

}  // namespace zgrid
