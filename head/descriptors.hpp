// File descriptors of the head: raise the limit at start, and keep the
// listening ports from taking the last descriptors.
//
// Why: libzmq accepts every connection it can. A peer that opens idle TCP
// connections by the thousand takes every descriptor; libzmq's listener then
// spins on EMFILE (the pending connection keeps the socket readable), and it
// wins every race for a freed descriptor, so nothing else can open a file.
// The head counts its descriptors when its listeners' monitors report
// accepted connections (and every tick); well before the limit — leaving
// room for a full accept queue — it closes its doors: a socket filter on each
// listening socket drops new SYNs in the kernel, and what is already queued
// is accepted and closed at once, so libzmq never reaches EMFILE and
// connected clients and nodes keep being served. ZMQ_HANDSHAKE_IVL (set on
// the ROUTERs) drops connections that never complete a handshake; once
// enough descriptors are free again, the doors open.
//
// Thread safety: the reactor thread only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.hpp"

namespace zgrid::head {

struct FdLimit {
  std::uint64_t soft = 0, hard = 0, before = 0;  // before: the soft limit at start
};

// Raises the soft RLIMIT_NOFILE to the hard one; returns the figures.
FdLimit raise_fd_limit();

// Descriptors this process has open now (counts /proc/self/fd).
std::uint64_t open_fds();

class ListenGuard {
 public:
  // `endpoints`: the bound endpoints (tcp://A:P or ipc://PATH) whose
  // listening sockets it guards; `limit`: the descriptor limit.
  ListenGuard(const std::vector<std::string>& endpoints, std::uint64_t limit,
              Millis handshake_timeout_ms);
  ~ListenGuard();
  ListenGuard(const ListenGuard&) = delete;
  ListenGuard& operator=(const ListenGuard&) = delete;

  // Every tick: closes or opens the doors by the descriptors in use, and
  // while closed drains what the kernel queued. Logs a shortage at most once
  // per `kLogEveryMs`.
  void tick(Millis now);
  // Connections were accepted (the listeners' monitors said so): count now,
  // so a burst closes the doors before libzmq runs out of descriptors.
  void on_accepted(Millis now);
  bool doors_closed() const { return closed_; }
  std::size_t listeners() const { return fds_.size(); }
  std::uint64_t refused() const { return refused_; }

 private:
  void close_doors(std::uint64_t used, Millis now);
  void open_doors(std::uint64_t used);
  void drain();

  std::vector<int> fds_;  // listening sockets (owned by libzmq; we only filter and accept)
  std::uint64_t limit_;
  std::uint64_t low_, high_;  // close at >= high_, open again below low_
  Millis handshake_ms_;
  int spare_ = -1;   // a descriptor kept to accept-and-close with when none is left
  int fd_dir_ = -1;  // /proc/self/fd, open, to count descriptors when none is left
  bool closed_ = false;
  Millis last_log_ = -1'000'000;
  Millis next_count_ = 0;
  std::uint64_t refused_ = 0;  // connections accepted and closed while short
  static constexpr Millis kLogEveryMs = 10'000;
};

}  // namespace zgrid::head
