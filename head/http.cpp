#include "head/http.hpp"

#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "common/log.hpp"
#include "common/zmq_util.hpp"
#include "head/dashboard_assets.hpp"
#include "head/http_gate.hpp"
#include "head/metrics.hpp"
#include "head/options.hpp"

namespace zgrid::head {

namespace {

constexpr const char* kLog = "http";
constexpr int kBacklog = 256;  // connections the kernel completes for us to accept

// cpp-httplib with its own accept loop left out: the gate (head/http_gate.hpp)
// accepts, and hands this a connection once its request head is in.
class Listener final : public httplib::Server {
 public:
  // The socket bind_to_port made, from now on the caller's to close.
  int take_socket() { return svr_sock_.exchange(INVALID_SOCKET); }
  // Reads one request from `s`, answers it and says "Connection: close".
  void serve(httplib::Stream& s) {
    bool closed = true;
    (void)process_request(s, /*close_connection=*/true, closed, nullptr);
  }
};

// A connection as cpp-httplib reads and writes it: every wait ends at the
// deadline the gate gave, reads are buffered (cpp-httplib reads a request
// head a byte at a time), and poll() is used, not select(), so any
// descriptor number works.
class FdStream final : public httplib::Stream {
 public:
  FdStream(int fd, HttpGate::Deadline deadline) : fd_(fd), deadline_(deadline) {}

  bool is_readable() const override { return begin_ < end_ || wait(POLLIN); }
  bool is_writable() const override { return wait(POLLOUT); }

  ssize_t read(char* ptr, size_t size) override {
    if (begin_ == end_) {
      if (size >= sizeof buf_) return io([&] { return ::recv(fd_, ptr, size, 0); }, POLLIN);
      ssize_t n = io([&] { return ::recv(fd_, buf_, sizeof buf_, 0); }, POLLIN);
      if (n <= 0) return n;
      begin_ = 0;
      end_ = static_cast<std::size_t>(n);
    }
    std::size_t n = std::min(size, end_ - begin_);
    std::memcpy(ptr, buf_ + begin_, n);
    begin_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    return io([&] { return ::send(fd_, ptr, size, MSG_NOSIGNAL); }, POLLOUT);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    address(::getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    address(::getsockname, ip, port);
  }
  // cpp-httplib asks only to refuse descriptors above FD_SETSIZE, a limit
  // of the select() this stream does not use (its BufferStream says 0 too).
  socket_t socket() const override { return 0; }

 private:
  // Until ready for `events` or the deadline; false at the deadline.
  bool wait(short events) const {
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline_ - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) return false;
      pollfd p{fd_, events, 0};
      int r = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left, 1000)));
      if (r > 0) return true;  // ready, closed or failed: the call after says which
      if (r < 0 && errno != EINTR) return false;
    }
  }
  template <class Call>
  ssize_t io(Call call, short events) const {
    while (true) {
      ssize_t n = call();
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if ((errno != EAGAIN && errno != EWOULDBLOCK) || !wait(events)) return -1;
    }
  }
  template <class Get>
  void address(Get get, std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
    if (get(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
        ::getnameinfo(reinterpret_cast<sockaddr*>(&a), len, host, sizeof host, serv, sizeof serv,
                      NI_NUMERICHOST | NI_NUMERICSERV) != 0)
      return;
    ip = host;
    port = std::atoi(serv);
  }

  const int fd_;
  const HttpGate::Deadline deadline_;
  char buf_[4096];
  std::size_t begin_ = 0, end_ = 0;
};

bool same_secret(const std::string& a, const std::string& b) {
  // Constant time in the length of the presented token.
  unsigned diff = a.size() != b.size();
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i % (b.size() | 1)]);
  return diff == 0;
}

std::size_t param(const httplib::Request& req, const char* name, std::size_t dflt,
                  std::size_t max) {
  if (!req.has_param(name)) return dflt;
  const std::string v = req.get_param_value(name);
  if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
    return dflt;
  return std::min<std::size_t>(std::stoull(v), max);
}

}  // namespace

Result<std::string> read_token_file(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Status::NotFound("--http-token: cannot read " + path);
  if (st.st_mode & 077)
    return Status::PermissionDenied("--http-token: " + path +
                                    " is readable by others; chmod 600 it");
  std::ifstream f(path);
  std::string token;
  std::getline(f, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.size() < 16)
    return Status::InvalidArgument("--http-token: " + path +
                                   " must hold a token of at least 16 characters");
  return token;
}

struct HttpServer::Impl {
  std::shared_ptr<SnapshotBox> box;
  const Clock& clock;
  Listener server;
  std::unique_ptr<HttpGate> gate;
  std::string token;

  Impl(std::shared_ptr<SnapshotBox> b, const Clock& c) : box(std::move(b)), clock(c) {}

  HttpFacts http_facts() const {
    HttpGate::Counts c = gate->counts();
    return {static_cast<double>(c.served), static_cast<double>(c.timed_out),
            static_cast<double>(c.evicted), static_cast<double>(c.gone)};
  }

  bool authorized(const httplib::Request& req) const {
    if (token.empty()) return true;
    const std::string h = req.get_header_value("Authorization");
    return h.rfind("Bearer ", 0) == 0 && same_secret(h.substr(7), token);
  }

  // The snapshot for a request, or an error response.
  std::shared_ptr<const Snapshot> snapshot(const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req)) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer");
      res.set_content(R"j({"error": "this grid needs an access token (Authorization: Bearer)"})j",
                      "application/json");
      return nullptr;
    }
    auto s = box->fresh(clock, 5000, 2000);  // kept fresh each tick while watched
    if (!s) {
      res.status = 503;
      res.set_content(R"({"error": "no snapshot yet"})", "application/json");
    }
    return s;
  }

  void routes() {
    server.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      if (auto s = snapshot(req, res))
        res.set_content(render_metrics(*s, ProcessFacts::read(), http_facts()),
                        "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/api/status", [this](const httplib::Request& req, httplib::Response& res) {
      if (auto s = snapshot(req, res))
        res.set_content(render_status_json(*s, !token.empty(), true), "application/json");
    });
    server.Get("/api/nodes", [this](const httplib::Request& req, httplib::Response& res) {
      if (auto s = snapshot(req, res))
        res.set_content(
            render_nodes_json(*s, param(req, "offset", 0, SIZE_MAX), param(req, "limit", 100, 500)),
            "application/json");
    });
    server.Get("/api/sessions", [this](const httplib::Request& req, httplib::Response& res) {
      if (auto s = snapshot(req, res))
        res.set_content(render_sessions_json(*s, param(req, "offset", 0, SIZE_MAX),
                                             param(req, "limit", 50, 500)),
                        "application/json");
    });
    server.Get("/api/events", [this](const httplib::Request& req, httplib::Response& res) {
      if (auto s = snapshot(req, res))
        res.set_content(render_events_json(*s, param(req, "since", 0, UINT64_MAX)),
                        "application/json");
    });
    for (const DashboardAsset& a : dashboard_assets()) {
      std::string path = a.path;
      server.Get(path, [a](const httplib::Request&, httplib::Response& res) {
        res.set_header("Cache-Control", "no-cache");
        res.set_header("Content-Security-Policy",
                       "default-src 'self'; img-src 'self' data:; style-src 'self'");
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_content(a.body.data(), a.body.size(), a.content_type);
      });
    }
    server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty())
        res.set_content("{\"error\": \"" + std::to_string(res.status) + "\"}", "application/json");
    });
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          res.status = 500;
          res.set_content(R"({"error": "internal error"})", "application/json");
        });
  }
};

HttpServer::HttpServer(std::shared_ptr<SnapshotBox> box, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(box), clock)) {}

HttpServer::~HttpServer() {
  stop();
}

Result<std::string> HttpServer::start(const HttpConfig& c) {
  std::string host;
  int port = 0;
  if (!parse_http_endpoint(c.endpoint, &host, &port))
    return Status::InvalidArgument("--http: expected HOST:PORT or off, got '" + c.endpoint + "'");
  Impl& im = *impl_;
  im.token = c.token;
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, with which
  // a second head would share the default port instead of seeing it taken.
  im.server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  im.server.set_payload_max_length(4096);  // the API takes no bodies
  im.routes();
  int bound = port;
  if (port == 0) {
    bound = im.server.bind_to_any_port(host);
  } else if (!im.server.bind_to_port(host, port)) {
    if (!c.fallback_to_ephemeral)
      return Status::Unavailable("--http: cannot listen on " + c.endpoint +
                                 " (in use, or not an address of this host)");
    bound = im.server.bind_to_any_port(host);
    if (bound > 0)
      ZG_LOG(kWarn, kLog,
             "port " + std::to_string(port) + " is in use: serving HTTP on port " +
                 std::to_string(bound) + " instead (set --http to choose)");
  }
  if (bound <= 0) return Status::Unavailable("--http: cannot listen on " + c.endpoint);
  // cpp-httplib listens with a backlog of 5: pollers connecting at once
  // would see SYNs dropped and retried a second later. Linux takes a second
  // listen() as a new backlog.
  int listening = im.server.take_socket();
  (void)::listen(listening, kBacklog);
  std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  std::string url = "http://" + shown + ":" + std::to_string(bound) + "/";
  // Served by the gate: each connection carries one request
  // ("Connection: close"), and waits for it without a thread.
  GateLimits limits;
  limits.threads = c.threads;
  limits.max_connections = c.max_connections;
  im.gate = std::make_unique<HttpGate>(limits, [&im](int fd, HttpGate::Deadline deadline) {
    FdStream stream(fd, deadline);
    im.server.serve(stream);
  });
  Status started = im.gate->start(listening);
  if (!started.ok()) {
    im.gate.reset();
    return started;
  }
  if (zmqu::is_non_loopback("tcp://" + shown + ":" + std::to_string(bound)))
    ZG_LOG(kWarn, kLog,
           "WARNING: HTTP listener on " + url + " is reachable from other hosts" +
               (c.token.empty() ? std::string(" and asks no token: anyone who can reach it sees "
                                              "the grid's sessions and nodes")
                                : std::string(" (a bearer token is required)")));
  ZG_LOG(kInfo, kLog, "dashboard and /metrics on " + url);
  return url;
}

void HttpServer::stop() {
  if (impl_ && impl_->gate) impl_->gate->stop();  // bounded: it cuts short what it serves
}

}  // namespace zgrid::head
