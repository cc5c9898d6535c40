// /metrics and the JSON API (docs/protocol.md, "HTTP API"), rendered from a
// snapshot alone on the HTTP thread. Pure functions of their arguments.
#pragma once

#include <cstdint>
#include <string>

#include "head/snapshot.hpp"

namespace zgrid::head {

// Facts about this process that the kernel keeps (read on the HTTP thread).
struct ProcessFacts {
  double resident_bytes = 0, virtual_bytes = 0;
  double open_fds = 0, max_fds = 0;
  double cpu_seconds = 0;
  static ProcessFacts read();
};

// What the HTTP listener did with the connections it accepted
// (head/http_gate.hpp): served, or closed before a complete request.
struct HttpFacts {
  double served = 0, timed_out = 0, evicted = 0, gone = 0;
};

// The Prometheus text exposition format (version 0.0.4).
std::string render_metrics(const Snapshot& s, const ProcessFacts& p, const HttpFacts& h = {});

// JSON bodies. `redact` leaves out session ids and owners (never used for
// an authorized reader; see head/http.cpp).
std::string render_status_json(const Snapshot& s, bool token_required, bool authorized);
std::string render_nodes_json(const Snapshot& s, std::size_t offset, std::size_t limit);
std::string render_sessions_json(const Snapshot& s, std::size_t offset, std::size_t limit);
std::string render_events_json(const Snapshot& s, std::uint64_t since);

}  // namespace zgrid::head
