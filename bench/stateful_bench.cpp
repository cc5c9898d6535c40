// Stateful sessions (docs/operations.md), measured in one run:
//  - BM_StatefulThroughput: on one grid (a head, 2 nodes of 2 workers),
//    per-call `echo` against stateful `running_sum` in one session and in
//    100 sessions at once; each a rate and a ratio to echo measured in the
//    same run. Every answer is checked.
//  - BM_StatefulFailover: a stateful session that has run 10,000 requests
//    loses the node holding its instance (SIGKILL): the time from the kill
//    to its next answer (node-loss detection + a fresh instance replaying
//    those 10,000 + the next request), by heartbeat interval.
//
//   build/bench/stateful_bench
#include <benchmark/benchmark.h>
#include <zgrid/client.hpp>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "bench/grid_fixture.hpp"
#include "tests/support/grid_process.hpp"

namespace {

using namespace zgrid::bench;  // NOLINT: the shared fixture
using zgrid::Result;
using zgrid::Status;
using zgrid::client::BrokerClient;
using zgrid::client::Connection;

std::size_t Scaled(std::size_t n) {
  return std::max<std::size_t>(100, bench_n() * n / 1'000'000);  // ZGRID_BENCH_N scales it
}

zgrid::proto::CreateSession Create(const char* service, bool stateful) {
  zgrid::proto::CreateSession cs;
  cs.service = service;
  cs.stateful = stateful;
  return cs;
}

// `sessions` sessions of `service`, each sent 1..per (user data: the
// number), all at once; every answer read and checked (echo: the input;
// running_sum: the triangular number, in order). Returns requests/second,
// or a negative value on a wrong or missing answer.
double RunSessions(Connection& conn, const char* service, bool stateful, int sessions,
                   std::size_t per) {
  std::vector<std::unique_ptr<BrokerClient>> bcs;
  for (int i = 0; i < sessions; ++i) {
    auto info = conn.create_session(Create(service, stateful));
    auto bc = info.ok() ? BrokerClient::open(conn, info->session_id, "c")
                        : Result<std::unique_ptr<BrokerClient>>(info.status());
    if (!bc.ok()) {
      std::fprintf(stderr, "stateful_bench: %s\n", bc.status().ToString().c_str());
      return -1;
    }
    bcs.push_back(std::move(*bc));
  }
  auto t0 = Clock::now();
  for (auto& bc : bcs) {
    for (std::size_t k = 1; k <= per; ++k) {
      std::string v = std::to_string(k);
      if (Status st = bc->send(v, v); !st.ok()) {
        std::fprintf(stderr, "stateful_bench: send: %s\n", st.ToString().c_str());
        return -1;
      }
    }
    if (Status st = bc->end_requests(); !st.ok()) {
      std::fprintf(stderr, "stateful_bench: end: %s\n", st.ToString().c_str());
      return -1;
    }
  }
  std::vector<std::size_t> got(bcs.size(), 0);
  std::size_t total = 0, want = per * bcs.size();
  bool wrong = false;
  zgrid::proto::Response r;
  while (total < want && !wrong) {
    bool any = false;
    for (std::size_t i = 0; i < bcs.size(); ++i) {
      while (got[i] < per) {
        auto ok = bcs[i]->next_response(&r, bcs.size() == 1 ? 30'000 : 0);
        if (!ok.ok()) {
          std::fprintf(stderr, "stateful_bench: %s\n", ok.status().ToString().c_str());
          return -1;
        }
        if (!*ok) break;
        any = true;
        std::uint64_t k = ++got[i];
        // running_sum: the triangular number, in order; echo: its input (any order).
        std::string expect = stateful ? std::to_string(k * (k + 1) / 2) : r.user_data;
        if (!r.ok() || r.data != expect || (stateful && r.user_data != std::to_string(k))) {
          std::fprintf(stderr, "stateful_bench: session %zu answer %llu: %s %s (input %s)\n", i,
                       static_cast<unsigned long long>(k), r.fault_code.c_str(), r.data.c_str(),
                       r.user_data.c_str());
          wrong = true;
        }
        ++total;
      }
    }
    if (!any && bcs.size() > 1 && seconds_since(t0) > 120) return -1;
  }
  double s = seconds_since(t0);
  return wrong ? -1 : static_cast<double>(want) / s;
}

void BM_StatefulThroughput(benchmark::State& state) {
  for (auto _ : state) {
    zgrid::testing::Grid g;
    g.start_head({"--log-level", "warn"});
    for (int i = 0; i < 2; ++i) g.add_node({"--workers", "2"});
    if (!g.wait_nodes(2)) {
      state.SkipWithError("nodes did not register");
      return;
    }
    auto conn = g.connect();
    auto t0 = Clock::now();
    double echo = RunSessions(*conn, "echo", false, 1, Scaled(200'000));
    double one = RunSessions(*conn, "running_sum", true, 1, Scaled(20'000));
    double hundred = RunSessions(*conn, "running_sum", true, 100, Scaled(2'000));
    state.SetIterationTime(seconds_since(t0));
    if (echo <= 0 || one <= 0 || hundred <= 0) {
      state.SkipWithError(echo <= 0  ? "echo: a wrong or missing answer"
                          : one <= 0 ? "one stateful session: a wrong or missing answer"
                                     : "100 stateful sessions: a wrong or missing answer");
      return;
    }
    state.counters["echo_req_s"] = echo;
    state.counters["stateful1_req_s"] = one;
    state.counters["stateful100_req_s"] = hundred;
    state.counters["stateful1_vs_echo"] = one / echo;
    state.counters["stateful100_vs_echo"] = hundred / echo;
  }
}

void BM_StatefulFailover(benchmark::State& state) {
  const std::string hb = std::to_string(state.range(0)) + "ms";
  const std::size_t before = 10'000, total = 20'000;
  for (auto _ : state) {
    zgrid::testing::Grid g;
    g.start_head({"--heartbeat", hb, "--log-level", "warn"});
    for (int i = 0; i < 2; ++i)
      g.add_node({"--workers", "2", "--node-id", std::string(1, 'n').append(std::to_string(i))});
    if (!g.wait_nodes(2)) {
      state.SkipWithError("nodes did not register");
      return;
    }
    auto conn = g.connect();
    auto info = conn->create_session(Create("running_sum", true));
    auto bc = BrokerClient::open(*conn, info->session_id, "c");
    if (!info.ok() || !bc.ok()) {
      state.SkipWithError("no session");
      return;
    }
    for (std::size_t k = 1; k <= total; ++k) (void)(*bc)->send(std::to_string(k), "");
    (void)(*bc)->end_requests();
    std::vector<Clock::time_point> at;
    Clock::time_point killed{};
    bool wrong = false;
    zgrid::proto::Response r;
    while (at.size() < total) {
      auto ok = (*bc)->next_response(&r, 60'000);
      if (!ok.ok() || !*ok) break;
      at.push_back(Clock::now());
      std::uint64_t k = at.size();
      if (!r.ok() || r.data != std::to_string(k * (k + 1) / 2)) wrong = true;
      if (at.size() == before) {
        // The node holding the instance: the one with the request in flight.
        zgrid::testing::wait_until(
            [&] {
              auto nodes = conn->nodes();
              if (!nodes.ok()) return false;
              for (const auto& n : *nodes)
                if (n.u64("inflight") > 0) {
                  g.node(std::stoul(n.str("node_id").substr(1))).kill_now();
                  killed = Clock::now();
                  return true;
                }
              return false;
            },
            5'000, 0);
      }
    }
    if (wrong || at.size() < total || killed == Clock::time_point{}) {
      state.SkipWithError("wrong or missing answers, or nothing to kill");
      return;
    }
    // The first answer after the kill that follows a pause: the failover.
    double failover = 0;
    for (std::size_t i = before; i < at.size(); ++i)
      if (at[i] > killed && at[i] - at[i - 1] > std::chrono::milliseconds(20)) {
        failover = std::chrono::duration<double>(at[i] - killed).count();
        break;
      }
    state.SetIterationTime(failover);
    state.counters["replayed"] = static_cast<double>(before);
    state.counters["misses"] = 3;
  }
}

}  // namespace

BENCHMARK(BM_StatefulThroughput)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_StatefulFailover)
    ->ArgName("heartbeat_ms")
    ->Arg(1000)
    ->Arg(250)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

int main(int argc, char** argv) {
  return zgrid::bench::run_benchmarks(argc, argv);
}
