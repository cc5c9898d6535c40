// A small tmpfs a test mounts and unmounts itself, for full-disk tests
// (root only; under CI=true such tests must run). Its free space is measured
// with statvfs.
#pragma once

#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

namespace zgrid::testing {

class SmallDisk {
 public:
  SmallDisk(const std::string& path, const std::string& size) : path_(path) {
    std::filesystem::create_directories(path_);
    mounted_ =
        geteuid() == 0 && mount("tmpfs", path_.c_str(), "tmpfs", 0, ("size=" + size).c_str()) == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~SmallDisk() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  std::uint64_t free_bytes() const {
    struct statvfs st;
    if (statvfs(path_.c_str(), &st) != 0) return 0;
    return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  }
  // Free space plus the head's disk reserve in `data_dir` (held back for
  // purges, so part of what a purge gives back may refill it).
  std::uint64_t free_with_reserve(const std::string& data_dir) const {
    std::error_code ec;
    auto r = std::filesystem::file_size(data_dir + "/reserve", ec);
    return free_bytes() + (ec ? 0 : r);
  }
  bool grow(const std::string& size) {
    return mount("tmpfs", path_.c_str(), "tmpfs", MS_REMOUNT, ("size=" + size).c_str()) == 0;
  }

 private:
  std::string path_, error_;
  bool mounted_ = false;
};

}  // namespace zgrid::testing
