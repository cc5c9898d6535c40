// Fetches every response of a durable session until it is complete, for
// tests (bounded by `timeout_ms`; a test failure when it is not).
#pragma once

#include <gtest/gtest.h>
#include <zgrid/client.hpp>

#include <string>
#include <vector>

#include "common/clock.hpp"

namespace zgrid::testing {

inline std::vector<proto::Response> fetch_all(client::Connection& conn, const std::string& sid,
                                              Millis timeout_ms = 120'000) {
  std::vector<proto::Response> all;
  std::uint64_t cursor = 0;
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + timeout_ms;
  while (clock.now_ms() < deadline) {
    auto page = conn.fetch(sid, cursor, 16384, 500);
    if (!page.ok()) {
      ADD_FAILURE() << page.status().ToString();
      break;
    }
    for (auto& r : page->responses) all.push_back(std::move(r));
    cursor = page->next_cursor;
    if (page->complete && page->responses.empty()) return all;
  }
  ADD_FAILURE() << "session " << sid << " not complete in time (" << all.size() << " responses)";
  return all;
}

}  // namespace zgrid::testing
