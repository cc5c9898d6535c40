// HTTP in tests, against a head's listener on loopback: GET with an
// optional bearer token (cpp-httplib's client), and a raw exchange for
// requests no client library would send.
#pragma once

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace zgrid::testing {

struct Url {
  std::string host;
  int port = 0;
};
inline Url ParseUrl(const std::string& url) {  // http://HOST:PORT/
  std::string rest = url.substr(7);
  rest = rest.substr(0, rest.find('/'));
  auto colon = rest.rfind(':');
  return {rest.substr(0, colon), std::stoi(rest.substr(colon + 1))};
}

struct Got {
  int status = -1;
  std::string body;
};
inline Got Get(const std::string& url, const std::string& path, const std::string& token = "") {
  Url u = ParseUrl(url);
  httplib::Client c(u.host, u.port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(10, 0);
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  auto res = c.Get(path, h);
  if (!res) return {};
  return {res->status, res->body};
}

// A raw exchange: sends `request`, reads until the peer closes or `ms`.
inline std::string Raw(const Url& u, const std::string& request, int ms = 5000) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(u.port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    (void)!::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace zgrid::testing
