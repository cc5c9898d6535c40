// The head's HTTP listener (docs/operations.md, "Watching the grid"):
// /metrics (Prometheus), /api/status|nodes|sessions|events (JSON) and the
// dashboard at /, served on cpp-httplib's own threads from the latest
// snapshot alone (head/snapshot.hpp) — never from the reactor's state.
//
// Bounded: connections wait for their request without a thread, at most
// `max_connections` of them (head/http_gate.hpp), a fixed pool of threads
// serves one request per connection, every wait has a deadline, and header
// and body sizes are small. With a token (CURVE grids), every /metrics and /api request must
// carry `Authorization: Bearer TOKEN`; the page itself holds no data.
//
// Thread safety: start() and stop() from one thread (the reactor's owner);
// requests are served on the gate's threads.
#pragma once

#include <cstddef>
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
  std::size_t max_connections = 1024;  // held at once, waiting or served
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
