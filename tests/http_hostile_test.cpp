// Hostile HTTP clients against the head's listener with real processes:
// malformed requests, huge headers and bodies, 10,000 idle connections and
// slowloris clients while a session runs; dispatch keeps its pace (at least
// 0.9 of a quiet run) and /metrics answers afterwards. And many watchers
// (keep-alive pollers, dashboards) while Prometheus scrapes. Timing-
// sensitive, so ctest runs it alone (RUN_SERIAL).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/grid_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/prom_text.hpp"

namespace zgrid {
namespace {

using testing::CliResult;
using testing::Get;
using testing::Got;
using testing::Grid;
using testing::ParseUrl;
using testing::Raw;
using testing::run_cli;
using testing::Sample;
using testing::Url;
using testing::wait_until;

// ---- hostile HTTP -------------------------------------------------------------

// Seconds to run `n` interactive factorizations through the grid.
double TimedSession(const Grid& g, int n) {
  auto t0 = std::chrono::steady_clock::now();
  CliResult r = run_cli(
      {"--head", g.frontend(), "submit", "--service", "factorize", "--random", std::to_string(n)},
      "", 120'000);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), n);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(Http, HostileClientsDoNotDisturbDispatch) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  Url u = ParseUrl(g.http_url());

  // Malformed, oversized and unknown: each answered with an error, at once.
  EXPECT_NE(Raw(u, "GARBAGE\r\n\r\n").find("HTTP/1.1 400"), std::string::npos);
  EXPECT_NE(
      Raw(u, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").find("HTTP/1.1 404"),
      std::string::npos);
  std::string huge =
      "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100'000, 'a') + "\r\n\r\n";
  std::string reply = Raw(u, huge);
  EXPECT_TRUE(reply.empty() || reply.find("HTTP/1.1 4") == 0) << reply.substr(0, 200);
  std::string body = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nxx";
  reply = Raw(u, body);
  EXPECT_TRUE(reply.empty() || reply.find("HTTP/1.1 4") == 0) << reply.substr(0, 200);
  EXPECT_EQ(Get(g.http_url(), "/metrics").status, 200);

  constexpr int kRequests = 300'000;
  // Quiet and attacked runs alternate, best of three each: the machine's
  // own noise is measured too (this test runs alone: RUN_SERIAL).
  std::vector<double> quiet{TimedSession(g, kRequests)}, attacked;

  // A flood of 10,000 idle connections and 50 slowloris clients meanwhile.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rlimit want{std::min<rlim_t>(rl.rlim_max, 20'000), rl.rlim_max};
  setrlimit(RLIMIT_NOFILE, &want);
  int flood = static_cast<int>(std::min<rlim_t>(10'000, want.rlim_cur - 200));
  std::vector<int> fds;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(u.port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < flood; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    (void)::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);  // EINPROGRESS: fine
    fds.push_back(fd);
  }
  std::atomic<bool> stop{false};
  std::thread slow([&] {
    std::vector<int> s;
    for (int i = 0; i < 50; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      (void)::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
      s.push_back(fd);
    }
    const char* req = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    std::size_t at = 0;
    while (!stop.load()) {
      for (int fd : s) (void)!::send(fd, req + (at % 40), 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      ++at;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    for (int fd : s) ::close(fd);
  });
  // The flood in place (connections accepted or waiting in the backlog).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (int i = 0; i < 3; ++i) {
    attacked.push_back(TimedSession(g, kRequests));
    if (i < 2) quiet.push_back(TimedSession(g, kRequests));
  }
  // Waiting connections hold no thread: a scrape is answered meanwhile.
  EXPECT_EQ(Get(g.http_url(), "/metrics").status, 200);
  stop = true;
  slow.join();
  for (int fd : fds) ::close(fd);
  double best_quiet = *std::min_element(quiet.begin(), quiet.end());
  double best_attacked = *std::min_element(attacked.begin(), attacked.end());
  double ratio = best_quiet / best_attacked;
  std::printf(
      "best quiet %.3f s, best under attack %.3f s (%zu connections, 50 slow): ratio %.2f\n",
      best_quiet, best_attacked, fds.size(), ratio);
  EXPECT_GE(ratio, 0.9);
  // And every scrape is answered once the attackers are gone, with nothing
  // of the flood left to drain (a snapshot may be a tick behind the last
  // answers, hence the wait).
  std::string text;
  int failed = 0;
  EXPECT_TRUE(wait_until(
      [&] {
        Got m = Get(g.http_url(), "/metrics");
        failed += m.status != 200;
        text = m.body;
        return m.status == 200 &&
               Sample(text, "zgrid_requests_total{service=\"factorize\",outcome=\"done\"}") ==
                   6.0 * kRequests;
      },
      30'000))
      << text;
  EXPECT_EQ(failed, 0);
  // More connections came than the listener holds: the oldest waiting ones
  // made room, and the slow ones never completed a request.
  EXPECT_GT(Sample(text, "zgrid_http_connections_total{outcome=\"evicted\"}"), 0) << text;
  EXPECT_GT(Sample(text, "zgrid_http_connections_total{outcome=\"served\"}"), 0) << text;
  EXPECT_TRUE(g.head().running());
}

// A connection that sends nothing is closed after the 5 s the listener
// gives a request head, a client that takes longer than a second is still
// answered, and clients trickling their headers in hold no thread.
TEST(Http, IdleConnectionsAreClosedSlowClientsServedTricklersHoldNoThread) {
  Grid g;
  g.start_head();
  Url u = ParseUrl(g.http_url());
  auto open = [&u] {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(u.port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  };
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

  int idle = open();
  auto opened = std::chrono::steady_clock::now();
  // 8 tricklers, twice the serving threads, each adding a header byte every
  // 100 ms while the scrapes below run.
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    std::vector<int> fds;
    for (int i = 0; i < 8; ++i) fds.push_back(open());
    for (int fd : fds) (void)!::send(fd, "GET /metrics HTTP/1.1\r\nX-Slow: ", 31, MSG_NOSIGNAL);
    while (!stop.load()) {
      for (int fd : fds) (void)!::send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (int fd : fds) ::close(fd);
  });
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Get(g.http_url(), "/metrics").status, 200) << i;

  // Half a request now, the rest 1.5 s later (a slow client, not an idle one).
  int slow = open();
  (void)!::send(slow, req.data(), 10, MSG_NOSIGNAL);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  (void)!::send(slow, req.data() + 10, req.size() - 10, MSG_NOSIGNAL);
  timeval tv{10, 0};
  setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(slow, buf, sizeof buf, 0)) > 0)
    answer.append(buf, static_cast<std::size_t>(n));
  ::close(slow);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer.substr(0, 200);
  stop = true;
  trickle.join();

  // The idle one: closed by the listener (EOF), not before its 5 s.
  ASSERT_TRUE(wait_until(
      [&] {
        char c;
        return ::recv(idle, &c, 1, MSG_DONTWAIT) == 0;
      },
      15'000));
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - opened).count();
  ::close(idle);
  EXPECT_GE(waited, 4.9);
  std::string text;
  ASSERT_TRUE(wait_until(
      [&] {
        text = Get(g.http_url(), "/metrics").body;
        return Sample(text, "zgrid_http_connections_total{outcome=\"timed_out\"}") == 1 &&
               Sample(text, "zgrid_http_connections_total{outcome=\"gone\"}") == 8;
      },
      10'000))
      << text;  // the idle one; the 8 tricklers closed with half a request
}

// A big grid's head holds more than 1,024 descriptors (a connection per
// node), so HTTP connections get numbers past select()'s FD_SETSIZE: they
// are served all the same (cpp-httplib's own loop answered them 500).
TEST(Http, AHeadHoldingMoreThan1024DescriptorsStillServes) {
  Grid g;
  g.start_head({"--handshake-timeout", "60s"});
  Url front = ParseUrl("http://" + g.frontend().substr(std::string("tcp://").size()));
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rlimit want{std::min<rlim_t>(rl.rlim_max, 4'096), rl.rlim_max};
  setrlimit(RLIMIT_NOFILE, &want);
  if (want.rlim_cur < 1'400) GTEST_SKIP() << "this machine allows too few descriptors";
  // 1,200 idle TCP connections to the ZeroMQ frontend, which the head
  // accepts and keeps for the 60 s handshake timeout.
  std::vector<int> fds;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(front.port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 1'200; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    fds.push_back(fd);
  }
  std::string text;
  int answered = 0, other = 0;
  EXPECT_TRUE(wait_until(
      [&] {
        Got m = Get(g.http_url(), "/metrics");
        (m.status == 200 ? answered : other)++;
        text = m.body;
        return m.status == 200 && Sample(text, "process_open_fds") > 1'200;
      },
      30'000))
      << text;
  // Now every new connection's descriptor is above 1,200.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Get(g.http_url(), "/api/status").status, 200) << i;
  EXPECT_EQ(other, 0) << answered << " answered 200 first";
  for (int fd : fds) ::close(fd);
}

// ---- watchers ----------------------------------------------------------------

// An HTTP/1.1 client as a browser or a poller is: keeps its connection
// alive while the server does, reconnects when the server closes it.
class KeepAliveClient {
 public:
  explicit KeepAliveClient(Url u) : u_(std::move(u)) {}
  ~KeepAliveClient() { drop(); }
  // The status of GET `path` (-1: no answer); retries once on a fresh
  // connection when a kept one turns out closed.
  int get(const std::string& path) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      bool reused = fd_ >= 0;
      if (fd_ < 0 && !open()) return -1;
      int status = exchange(path);
      if (status > 0) return status;
      drop();
      if (!reused) return -1;
    }
    return -1;
  }
  int connections = 0;

 private:
  bool open() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(u_.port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      drop();
      return false;
    }
    ++connections;
    return true;
  }
  void drop() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int exchange(const std::string& path) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
      return -1;
    std::string in;
    char buf[16384];
    std::size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return -1;
      in.append(buf, static_cast<std::size_t>(n));
    }
    std::string head = in.substr(0, end);
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto cl = head.find("content-length:");
    if (cl == std::string::npos) return -1;
    std::size_t length = std::stoul(head.substr(cl + 15));
    while (in.size() < end + 4 + length) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return -1;
      in.append(buf, static_cast<std::size_t>(n));
    }
    if (head.find("connection: close") != std::string::npos) drop();
    return std::stoi(head.substr(9, 3));
  }
  Url u_;
  int fd_ = -1;
};

// 50 keep-alive clients polling /api/status once a second and 10
// dashboards (the page's requests, one after another, once a second)
// must not keep a Prometheus scrape waiting: each is answered within 1 s
// (a few milliseconds when quiet; with pool threads bound to idle
// keep-alive connections it never was).
TEST(Http, ScrapesAreAnsweredWhileDashboardsAndPollersWatch) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  Url u = ParseUrl(g.http_url());
  ASSERT_EQ(Get(g.http_url(), "/metrics").status, 200);
  std::atomic<bool> stop{false};
  std::atomic<int> polls{0}, failures{0};
  auto watcher = [&](std::vector<std::string> paths) {
    KeepAliveClient c(u);
    while (!stop.load()) {
      auto next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      for (const auto& p : paths) {
        if (c.get(p) == 200)
          ++polls;
        else
          ++failures;
      }
      while (!stop.load() && std::chrono::steady_clock::now() < next)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  std::vector<std::thread> watchers;
  for (int i = 0; i < 50; ++i)
    watchers.emplace_back(watcher, std::vector<std::string>{"/api/status"});
  for (int i = 0; i < 10; ++i)
    watchers.emplace_back(watcher, std::vector<std::string>{
                                       "/api/status", "/api/nodes?offset=0&limit=100",
                                       "/api/sessions?offset=0&limit=50", "/api/events?since=0"});
  // Every watcher connected and polling.
  EXPECT_TRUE(wait_until([&] { return polls.load() >= 90; }, 10'000)) << polls.load();
  double worst = 0;
  for (int i = 0; i < 8; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Got m = Get(g.http_url(), "/metrics");
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    worst = std::max(worst, s);
    EXPECT_EQ(m.status, 200) << "scrape " << i << " after " << s << " s";
    EXPECT_LT(s, 1.0) << "scrape " << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  stop = true;
  for (auto& t : watchers) t.join();
  std::printf("8 scrapes among 60 watchers: slowest %.3f s; %d polls, %d failed\n", worst,
              polls.load(), failures.load());
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(polls.load(), 150);
}

}  // namespace
}  // namespace zgrid
