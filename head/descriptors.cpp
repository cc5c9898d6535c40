#include "head/descriptors.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.hpp"
#include "common/util.hpp"

namespace zgrid::head {

namespace {
constexpr const char* kLog = "head";

// The listening socket of this process bound to `endpoint`, or -1.
int find_listener(const std::string& endpoint) {
  bool tcp = endpoint.rfind("tcp://", 0) == 0, ipc = endpoint.rfind("ipc://", 0) == 0;
  if (!tcp && !ipc) return -1;
  int port = -1;
  std::string path;
  if (tcp) {
    auto colon = endpoint.rfind(':');
    if (colon == std::string::npos) return -1;
    port = std::atoi(endpoint.c_str() + colon + 1);
  } else {
    path = endpoint.substr(6);
  }
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    int listening = 0;
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) != 0) continue;
    bool match = false;
    if (tcp && ss.ss_family == AF_INET)
      match = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port) == port;
    else if (tcp && ss.ss_family == AF_INET6)
      match = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port) == port;
    else if (ipc && ss.ss_family == AF_UNIX)
      match = path == reinterpret_cast<sockaddr_un*>(&ss)->sun_path;
    if (match) {
      found = fd;
      break;
    }
  }
  closedir(d);
  return found;
}

// A classic BPF program that drops every packet: on a listening TCP socket,
// new SYNs are dropped before a connection is made. Needs no privilege.
bool set_drop_filter(int fd, bool on) {
  if (!on) {
    int dummy = 0;
    return setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof dummy) == 0;
  }
  sock_filter code[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
  sock_fprog prog{1, code};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) == 0;
}
}  // namespace

FdLimit raise_fd_limit() {
  rlimit rl{};
  FdLimit out;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return out;
  out.before = rl.rlim_cur;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  out.soft = rl.rlim_cur;
  out.hard = rl.rlim_max;
  return out;
}

namespace {
// Counts the entries of the open directory `dir` (rewound first).
std::uint64_t count_entries(int dir) {
  if (lseek(dir, 0, SEEK_SET) != 0) return 0;
  alignas(8) char buf[16384];
  std::uint64_t n = 0;
  while (true) {
    long got = syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (got <= 0) break;
    for (long off = 0; off < got;) {
      auto* e = reinterpret_cast<const dirent64*>(buf + off);
      if (e->d_name[0] != '.') ++n;
      off += e->d_reclen;
    }
  }
  return n;
}
}  // namespace

std::uint64_t open_fds() {
  int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return 0;
  std::uint64_t n = count_entries(dir);
  ::close(dir);
  return n > 0 ? n - 1 : 0;  // not the directory's own descriptor
}

ListenGuard::ListenGuard(const std::vector<std::string>& endpoints, std::uint64_t limit,
                         Millis handshake_timeout_ms)
    : limit_(limit), handshake_ms_(handshake_timeout_ms) {
  for (const auto& ep : endpoints)
    if (int fd = find_listener(ep); fd >= 0) {
      // libzmq accepts only when epoll says readable and takes EAGAIN in its
      // stride; our drain() must never block when libzmq took the last one.
      (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      fds_.push_back(fd);
    }
  // Close the doors with an eighth of the limit left, and at least room for a
  // full accept queue (the node port's is a sixteenth of the limit, at least
  // 100, the client port's 100) and the journal's files, which
  // libzmq may take before the reactor hears of the burst; open them at twice that.
  std::uint64_t headroom = std::max<std::uint64_t>(192, limit / 8);
  high_ = limit > headroom ? limit - headroom : limit;
  low_ = limit > 2 * headroom ? limit - 2 * headroom : 0;
  spare_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Kept open: counting must work when no descriptor is left to open it.
  fd_dir_ = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

ListenGuard::~ListenGuard() {
  if (closed_)
    for (int fd : fds_) set_drop_filter(fd, false);
  if (spare_ >= 0) ::close(spare_);
  if (fd_dir_ >= 0) ::close(fd_dir_);
}

void ListenGuard::tick(Millis now) {
  if (fds_.empty() || limit_ == 0) return;
  if (closed_) drain();
  // Counting is O(descriptors) (20 ms at 20,000): every tick once within
  // twice the headroom of the limit, else every 5 s. What brings the head
  // near its limit quickly is connections, and accepts are counted at once
  // (on_accepted); the periodic count only follows the slower rest.
  if (now < next_count_ && !closed_) return;
  std::uint64_t used = fd_dir_ >= 0 ? count_entries(fd_dir_) : open_fds();
  next_count_ = now + (used >= low_ ? 0 : 5'000);
  if (!closed_ && used >= high_) close_doors(used, now);
  if (closed_ && used < low_) open_doors(used);
}

void ListenGuard::on_accepted(Millis now) {
  next_count_ = 0;
  tick(now);
}

void ListenGuard::close_doors(std::uint64_t used, Millis now) {
  closed_ = true;
  for (int fd : fds_) set_drop_filter(fd, true);
  drain();
  if (now - last_log_ >= kLogEveryMs) {
    last_log_ = now;
    ZG_LOG(kWarn, kLog,
           "file descriptors short: " + std::to_string(used) + " of " + std::to_string(limit_) +
               " in use; refusing new connections until idle ones are dropped (connections "
               "without a handshake go after " +
               format_duration(handshake_ms_) + "); connected clients and nodes are served");
  }
}

void ListenGuard::open_doors(std::uint64_t used) {
  closed_ = false;
  for (int fd : fds_) set_drop_filter(fd, false);
  ZG_LOG(kInfo, kLog,
         "file descriptors back: " + std::to_string(used) + " of " + std::to_string(limit_) +
             " in use; accepting connections again (" + std::to_string(refused_) +
             " refused meanwhile)");
}

// Accepts and closes what the kernel queued before the filter went on, so
// the listener is not readable and libzmq does not spin on EMFILE. With no
// descriptor free, the spare one makes room for each accept.
void ListenGuard::drain() {
  for (int lfd : fds_) {
    for (int i = 0; i < 1024; ++i) {
      int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0 && (errno == EMFILE || errno == ENFILE) && spare_ >= 0) {
        ::close(spare_);
        c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        spare_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      }
      if (c < 0) break;
      ::close(c);
      ++refused_;
    }
  }
}

}  // namespace zgrid::head
