#include "head/http_gate.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include "common/log.hpp"

namespace zgrid::head {

namespace {

constexpr const char* kLog = "http";
constexpr auto kLogEvery = std::chrono::seconds(60);
using SteadyClock = std::chrono::steady_clock;

}  // namespace

HttpGate::HttpGate(GateLimits limits, Serve serve)
    : limits_(limits), serve_(std::move(serve)), peek_(limits.max_head_bytes) {}

HttpGate::~HttpGate() {
  stop();
}

Status HttpGate::start(int listen_fd) {
  listen_fd_ = listen_fd;
  int fl = ::fcntl(listen_fd_, F_GETFL, 0);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fl < 0 || ::fcntl(listen_fd_, F_SETFL, fl | O_NONBLOCK) != 0 || epoll_fd_ < 0 || wake_fd_ < 0)
    return Status::Unavailable(std::string("--http: cannot set up the listener: ") +
                               std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0)
    return Status::Unavailable(std::string("--http: epoll: ") + std::strerror(errno));
  ev.data.fd = listen_fd_;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0)
    return Status::Unavailable(std::string("--http: epoll: ") + std::strerror(errno));
  next_log_ = SteadyClock::now() + kLogEvery;
  for (int i = 0; i < std::max(1, limits_.threads); ++i)
    workers_.emplace_back([this] { serve_loop(); });
  acceptor_ = std::thread([this] { accept_loop(); });
  return Status::OK();
}

void HttpGate::stop() {
  if (stopping_.exchange(true)) return;
  if (wake_fd_ >= 0) {
    std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  if (acceptor_.joinable()) acceptor_.join();  // closes the waiting connections
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Wakes a thread waiting on its client; it closes the socket itself.
    for (int fd : serving_) ::shutdown(fd, SHUT_RDWR);
  }
  ready_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  for (int fd : queue_) ::close(fd);
  queue_.clear();
  for (int fd : {listen_fd_, epoll_fd_, wake_fd_})
    if (fd >= 0) ::close(fd);
  listen_fd_ = epoll_fd_ = wake_fd_ = -1;
}

HttpGate::Counts HttpGate::counts() const {
  return {served_.load(), timed_out_.load(), evicted_.load(), gone_.load()};
}

// ---- the acceptor thread ----------------------------------------------------

void HttpGate::accept_loop() {
  std::vector<epoll_event> events(256);
  while (!stopping_.load()) {
    Deadline now = SteadyClock::now();
    expire(now);
    log_drops(now);
    if (!accepting_ && held_.load() < limits_.max_connections && now >= resume_at_)
      set_accepting(true);
    // Sleeps until the oldest waiting connection's deadline (expire() left
    // a live one at the front), at most a minute.
    std::int64_t timeout_ms = 60'000;
    if (!order_.empty())
      timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       waiting_.at(order_.front().first).deadline - now)
                       .count() +
                   1;
    if (!accepting_) timeout_ms = std::min<std::int64_t>(timeout_ms, 100);
    timeout_ms = std::clamp<std::int64_t>(timeout_ms, 0, 60'000);
    int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                         static_cast<int>(timeout_ms));
    if (n < 0 && errno != EINTR) {
      ZG_LOG(kError, kLog, std::string("epoll_wait: ") + std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == wake_fd_) {
        std::uint64_t v;
        while (::read(wake_fd_, &v, sizeof v) > 0) {
        }
      } else if (fd == listen_fd_) {
        accept_ready();
      } else {
        check(fd, (events[static_cast<std::size_t>(i)].events & (EPOLLRDHUP | EPOLLHUP)) != 0);
      }
    }
  }
  for (auto& [fd, w] : waiting_) ::close(fd);
  held_ -= waiting_.size();
  waiting_.clear();
  order_.clear();
}

void HttpGate::accept_ready() {
  while (accepting_) {
    if (held_.load() >= limits_.max_connections && !evict_oldest()) {
      set_accepting(false);  // all held ones are being served: the backlog waits
      return;
    }
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        if (!evict_oldest()) {  // descriptors or memory short: retry in 100 ms
          set_accepting(false);
          resume_at_ = SteadyClock::now() + std::chrono::milliseconds(100);
        }
        return;
      }
      // ECONNABORTED, EPROTO, EINTR, a network error on the new connection:
      // that one connection is lost, the listener is not (Linux's accept(2)).
      continue;
    }
    ++held_;
    std::uint64_t seq = ++next_seq_;
    waiting_[fd] =
        Waiting{SteadyClock::now() + std::chrono::milliseconds(limits_.head_timeout_ms), seq, 0};
    order_.emplace_back(fd, seq);
    // Edge-triggered: a peek leaves the bytes in place, so only new bytes
    // (or the client closing) wake us again for this connection.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      drop(fd, gone_);
      continue;
    }
    check(fd, false);  // most clients send their request with the handshake's last packet
  }
}

void HttpGate::check(int fd, bool peer_closed) {
  auto it = waiting_.find(fd);
  if (it == waiting_.end()) return;
  ssize_t n;
  do {
    n = ::recv(fd, peek_.data(), peek_.size(), MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n <= 0) {  // closed before a request, or reset
    drop(fd, gone_);
    return;
  }
  std::string_view got(peek_.data(), static_cast<std::size_t>(n));
  std::size_t from = it->second.scanned >= 3 ? it->second.scanned - 3 : 0;
  bool complete = got.find("\r\n\r\n", from) != std::string_view::npos ||
                  got.find("\n\n", from) != std::string_view::npos;
  it->second.scanned = got.size();
  if (complete || got.size() >= limits_.max_head_bytes)
    hand_over(fd);
  else if (peer_closed)  // no more is coming
    drop(fd, gone_);
}

void HttpGate::drop(int fd, std::atomic<std::uint64_t>& why) {
  waiting_.erase(fd);  // its order_ entry goes stale (the seq no longer matches)
  ::close(fd);         // closing removes it from the epoll set too
  ++why;
  release();
}

bool HttpGate::evict_oldest() {
  while (!order_.empty()) {
    auto [fd, seq] = order_.front();
    order_.pop_front();
    auto it = waiting_.find(fd);
    if (it != waiting_.end() && it->second.seq == seq) {
      drop(fd, evicted_);
      return true;
    }
  }
  return false;
}

void HttpGate::expire(Deadline now) {
  while (!order_.empty()) {
    auto [fd, seq] = order_.front();
    auto it = waiting_.find(fd);
    if (it != waiting_.end() && it->second.seq == seq) {
      if (it->second.deadline > now) return;  // accept order is deadline order
      drop(fd, timed_out_);
    }
    order_.pop_front();
  }
}

void HttpGate::hand_over(int fd) {
  (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  waiting_.erase(fd);
  ++served_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(fd);
  }
  ready_.notify_one();
}

void HttpGate::set_accepting(bool on) {
  if (accepting_ == on) return;
  epoll_event ev{};
  ev.events = on ? static_cast<std::uint32_t>(EPOLLIN) : 0u;
  ev.data.fd = listen_fd_;
  (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
  accepting_ = on;
}

void HttpGate::log_drops(Deadline now) {
  if (now < next_log_) return;
  next_log_ = now + kLogEvery;
  std::uint64_t t = timed_out_.load(), e = evicted_.load();
  if (t + e == logged_drops_) return;
  ZG_LOG(kWarn, kLog,
         "closed " + std::to_string(t + e - logged_drops_) +
             " connections that sent no complete request within " +
             std::to_string(limits_.head_timeout_ms / 1000) + " s or made room for newer ones (" +
             std::to_string(t) + " timed out, " + std::to_string(e) +
             " to make room, since start): slow clients or a flood");
  logged_drops_ = t + e;
}

// ---- the serving threads ----------------------------------------------------

void HttpGate::release() {
  // Going below the limit while accepting is paused: wake the acceptor.
  if (held_.fetch_sub(1) == limits_.max_connections && wake_fd_ >= 0) {
    std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
}

void HttpGate::serve_loop() {
  while (true) {
    int fd;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ready_.wait(lock, [this] { return !queue_.empty() || stopping_.load(); });
      if (stopping_.load()) return;  // stop() closes what is still queued
      fd = queue_.front();
      queue_.pop_front();
      serving_.insert(fd);
    }
    try {
      serve_(fd, SteadyClock::now() + std::chrono::milliseconds(limits_.serve_timeout_ms));
    } catch (const std::exception& e) {  // a boundary: one connection lost, not the listener
      ZG_LOG(kError, kLog, std::string("serving a request: ") + e.what());
    }
    {
      // Out of serving_ before close, so stop() never shuts down a reused number.
      std::lock_guard<std::mutex> lock(mu_);
      serving_.erase(fd);
    }
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    release();
  }
}

}  // namespace zgrid::head
