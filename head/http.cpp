#include "head/http.hpp"

#include <httplib.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <condition_variable>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "common/log.hpp"
#include "common/zmq_util.hpp"
#include "head/dashboard_assets.hpp"
#include "head/metrics.hpp"
#include "head/options.hpp"

namespace zgrid::head {

namespace {

constexpr const char* kLog = "http";
constexpr int kBacklog = 256;  // connections the kernel completes for us to accept

// cpp-httplib's ThreadPool queues without bound; this one makes the accept
// loop wait while `max_queued` connections wait for a thread, so a flood
// stays in the kernel's backlog instead of in our descriptors.
class BoundedPool : public httplib::TaskQueue {
 public:
  BoundedPool(int threads, std::size_t max_queued) : max_queued_(max_queued) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  ~BoundedPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    space_.wait(lock, [this] { return jobs_.size() < max_queued_ || stopping_; });
    if (stopping_) {  // shutting down: serve it here rather than leak its socket
      lock.unlock();
      fn();
      return;
    }
    jobs_.push_back(std::move(fn));
    ready_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
    }
    ready_.notify_all();
    space_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void work() {
    while (true) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        ready_.wait(lock, [this] { return !jobs_.empty() || stopping_; });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      space_.notify_one();
      fn();
    }
  }

  const std::size_t max_queued_;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
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
  httplib::Server server;
  std::thread thread;
  std::future<void> ended;  // ready once listen_after_bind returned
  std::string token;

  Impl(std::shared_ptr<SnapshotBox> b, const Clock& c) : box(std::move(b)), clock(c) {}

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
        res.set_content(render_metrics(*s, ProcessFacts::read()),
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
  im.server.new_task_queue = [c] {
    return new BoundedPool(c.threads, static_cast<std::size_t>(c.queue));
  };
  // SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT, with which
  // a second head would share the default port instead of seeing it taken.
  auto listening = std::make_shared<int>(-1);
  im.server.set_socket_options([listening](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    *listening = sock;
  });
  im.server.set_read_timeout(5, 0);
  im.server.set_write_timeout(5, 0);
  // cpp-httplib binds a pool thread to a connection for its whole life,
  // waiting idle between keep-alive requests: a few polling dashboards
  // would hold every thread and starve /metrics. So each connection serves
  // one request and is closed ("Connection: close"): a thread is held only
  // while a request is read and answered, and for at most the keep-alive
  // timeout (1 s, the shortest it takes) by a connection that sends nothing.
  im.server.set_keep_alive_max_count(1);
  im.server.set_keep_alive_timeout(1);
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
  if (*listening >= 0) (void)::listen(*listening, kBacklog);
  std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  std::string url = "http://" + shown + ":" + std::to_string(bound) + "/";
  std::shared_ptr<std::promise<void>> ended = std::make_shared<std::promise<void>>();
  im.ended = ended->get_future();
  im.thread = std::thread([&im, ended] {
    im.server.listen_after_bind();
    ended->set_value();
  });
  // stop() is a no-op until the listen loop runs: wait for it (bounded).
  for (int i = 0; i < 2000 && !im.server.is_running() &&
                  im.ended.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
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
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->server.stop();
  // A client trickling a request in holds a pool thread (cpp-httplib cannot
  // interrupt a read): the head does not wait on it to exit.
  if (impl_->ended.wait_for(std::chrono::seconds(2)) == std::future_status::ready) {
    impl_->thread.join();
    return;
  }
  ZG_LOG(kWarn, kLog, "HTTP clients still connected: not waiting for them");
  impl_->thread.detach();
  (void)impl_.release();  // its threads still use it; the process is ending
}

}  // namespace zgrid::head
