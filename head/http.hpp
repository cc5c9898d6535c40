// The head's HTTP listener (docs/operations.md, "Watching the grid"):
// /metrics (Prometheus), /api/status|nodes|sessions|events (JSON) and the
// dashboard at /, served on cpp-httplib's own threads from the latest
// snapshot alone (head/snapshot.hpp) — never from the reactor's state.
//
// Bounded: a fixed pool of threads, a bounded queue of accepted
// connections (accepting waits while it is full, so the kernel's backlog
// holds the rest), read/write/keep-alive timeouts and small header and body
// limits. With a token (CURVE grids), every /metrics and /api request must
// carry `Authorization: Bearer TOKEN`; the page itself holds no data.
//
// Thread safety: start() and stop() from one thread (the reactor's owner);
// requests are served on the pool's threads.
#pragma once

#include <memory>
#include <string>

#include "common/clock.hpp"
#include "common/status.hpp"
#include "head/snapshot.hpp"

namespace zgrid::head {

struct HttpConfig {
  std::string endpoint = "127.0.0.1:9755";  // HOST:PORT
  bool fallback_to_ephemeral = true;        // the default port taken: serve on another
  std::string token;                        // empty: no token asked
  int threads = 4;
  int queue = 64;  // accepted connections waiting for a thread
};

// Reads a bearer token file: one line, at least 16 characters, mode 0600
// or stricter (a token others can read is no secret).
Result<std::string> read_token_file(const std::string& path);

class HttpServer {
 public:
  HttpServer(std::shared_ptr<SnapshotBox> box, const Clock& clock);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving; returns the URL (http://HOST:PORT/).
  Result<std::string> start(const HttpConfig& config);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zgrid::head
