// Hostile HTTP clients against the head's listener with real processes:
// malformed requests, huge headers and bodies, 10,000 idle connections and
// slowloris clients while a session runs; dispatch keeps its pace (at least
// 0.9 of a quiet run) and /metrics answers afterwards. Timing-sensitive, so
// ctest runs it alone (RUN_SERIAL).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

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
  // And it answers /metrics again once the attackers are gone (a snapshot
  // may be a tick behind the last answers).
  std::string text;
  EXPECT_TRUE(wait_until(
      [&] {
        Got m = Get(g.http_url(), "/metrics");
        text = m.body;
        return m.status == 200 &&
               Sample(text, "zgrid_requests_total{service=\"factorize\",outcome=\"done\"}") ==
                   6.0 * kRequests;
      },
      30'000))
      << text;
  EXPECT_TRUE(g.head().running());
}

}  // namespace
}  // namespace zgrid
