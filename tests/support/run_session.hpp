// Runs payloads through one interactive session of a real grid and collects
// every response, for tests (bounded by `timeout_ms`; a test failure for a
// response missing or answered twice).
#pragma once

#include <gtest/gtest.h>
#include <zgrid/client.hpp>

#include <map>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid::testing {

// Responses by user_data ("0", "1", ... in the order of `payloads`).
inline std::map<std::string, proto::Response> RunSession(Grid& g, const std::string& service,
                                                         const std::vector<std::string>& payloads,
                                                         Millis timeout_ms = 60'000,
                                                         std::uint64_t task_timeout_ms = 0) {
  auto conn = g.connect();
  proto::CreateSession cs;
  cs.service = service;
  cs.task_timeout_ms = task_timeout_ms;
  auto info = conn->create_session(cs);
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  if (!info.ok()) return {};
  auto bc = client::BrokerClient::open(*conn, info->session_id, "t");
  EXPECT_TRUE(bc.ok());
  if (!bc.ok()) return {};
  for (std::size_t i = 0; i < payloads.size(); ++i)
    EXPECT_TRUE((*bc)->send(payloads[i], std::to_string(i)).ok());
  EXPECT_TRUE((*bc)->end_requests().ok());
  std::map<std::string, proto::Response> got;
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + timeout_ms;
  proto::Response r;
  while (got.size() < payloads.size() && clock.now_ms() < deadline) {
    auto ok = (*bc)->next_response(&r, 500);
    EXPECT_TRUE(ok.ok());
    if (!ok.ok()) break;
    if (*ok) {
      EXPECT_TRUE(got.emplace(r.user_data, r).second) << "answered twice: " << r.user_data;
    }
  }
  EXPECT_EQ(got.size(), payloads.size()) << "responses missing for " << service;
  return got;
}

}  // namespace zgrid::testing
