// The HTTP listener's cost to the grid (issue 16), measured in one run:
//  - BM_HttpOverhead: interactive or durable throughput of 1M random 31-bit
//    numbers through four grids side by side — HTTP off, on and idle, on
//    with /metrics scraped every 100 ms and the dashboard's four JSON calls
//    once a second, and off again as a control — runs alternating (each
//    grid first in turn), median of 5 each, as ratios of the first.
//  - BM_SnapshotCost: the reactor's time per snapshot with 1,000 simulated
//    nodes and 10,000 sessions, and the head's CPU while it is scraped.
//
//   build/bench/http_bench
#include <benchmark/benchmark.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <sstream>
#include <thread>

#include "bench/grid_fixture.hpp"
#include "node/sim_nodes.hpp"
#include "tests/support/grid_process.hpp"

namespace {

using namespace zgrid::bench;  // NOLINT: the shared fixture

// HTTP GETs against a head's listener from a thread of this process.
class Scraper {
 public:
  // metrics_ms: /metrics this often (0: never); dashboard: the page's four
  // calls once a second.
  Scraper(const std::string& url, int metrics_ms, bool dashboard) {
    std::string rest = url.substr(7);
    rest = rest.substr(0, rest.find('/'));
    host_ = rest.substr(0, rest.rfind(':'));
    port_ = std::stoi(rest.substr(rest.rfind(':') + 1));
    thread_ = std::thread([this, metrics_ms, dashboard] {
      httplib::Client c(host_, port_);
      c.set_keep_alive(true);
      auto next_dash = Clock::now();
      while (!stop_.load()) {
        if (metrics_ms > 0 && c.Get("/metrics")) ++gets_;
        if (dashboard && Clock::now() >= next_dash) {
          for (const char* p : {"/api/status", "/api/nodes", "/api/sessions", "/api/events"})
            if (c.Get(p)) ++gets_;
          next_dash += std::chrono::seconds(1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(metrics_ms > 0 ? metrics_ms : 100));
      }
    });
  }
  ~Scraper() {
    stop_ = true;
    thread_.join();
  }
  std::uint64_t gets() const { return gets_.load(); }

 private:
  std::string host_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> gets_{0};
  std::thread thread_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Arg: durable.
void BM_HttpOverhead(benchmark::State& state) {
  bool durable = state.range(0) != 0;
  const Inputs& in = inputs(0);
  // 0: --http off; 1: on, nobody looking; 2: on, scraped and the dashboard
  // open; 3: off again, the control (how far two identical grids differ).
  constexpr int kGrids = 4;
  zgrid::testing::Grid grids[kGrids];
  std::string workers = std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  for (int k = 0; k < kGrids; ++k) {
    std::vector<std::string> args{"--log-level", "warn", "--http",
                                  k == 0 || k == 3 ? "off" : "127.0.0.1:0"};
    if (durable)
      grids[k].start_durable_head(args);
    else
      grids[k].start_head(args);
    grids[k].add_node({"--workers", workers, "--log-level", "warn"});
  }
  for (auto& g : grids)
    if (!g.wait_nodes(1)) {
      state.SkipWithError("nodes did not register");
      return;
    }
  std::unique_ptr<zgrid::client::Connection> conns[kGrids];
  for (int k = 0; k < kGrids; ++k) conns[k] = grids[k].connect(30'000);
  Scraper scraper(grids[2].http_url(), 100, true);
  constexpr int kRounds = 5;
  std::vector<double> rate[kGrids];
  double cpu[kGrids] = {0, 0, 0, 0};
  std::vector<zgrid::proto::Response> got;
  for (auto _ : state) {
    for (int round = 0; round < kRounds; ++round) {
      for (int j = 0; j < kGrids; ++j) {
        int k = (round + j) % kGrids;  // each grid goes first in turn: no order bias
        double c0 = cpu_seconds(grids[k].head().pid());
        double s = durable ? run_durable(*conns[k], in, 1024, &got)
                           : run_interactive(*conns[k], in, 1024, &got);
        cpu[k] += cpu_seconds(grids[k].head().pid()) - c0;
        if (!all_correct(state, in, got)) return;
        rate[k].push_back(static_cast<double>(in.text.size()) / s);
        state.SetIterationTime(s);
      }
    }
  }
  double n =
      static_cast<double>(state.iterations()) * kRounds * static_cast<double>(in.text.size());
  state.counters["req_per_s_off"] = median(rate[0]);
  state.counters["req_per_s_idle"] = median(rate[1]);
  state.counters["req_per_s_scraped"] = median(rate[2]);
  state.counters["x_idle_vs_off"] = median(rate[1]) / median(rate[0]);
  state.counters["x_scraped_vs_off"] = median(rate[2]) / median(rate[0]);
  // The same from runs next to each other in time (each round's ratio): the
  // VM's drift over a minute cancels out.
  std::vector<double> idle_pair, scraped_pair, control_pair;
  for (std::size_t r = 0; r < rate[0].size(); ++r) {
    idle_pair.push_back(rate[1][r] / rate[0][r]);
    scraped_pair.push_back(rate[2][r] / rate[0][r]);
    control_pair.push_back(rate[3][r] / rate[0][r]);
  }
  state.counters["x_idle_vs_off_paired"] = median(idle_pair);
  state.counters["x_scraped_vs_off_paired"] = median(scraped_pair);
  // Two grids both off: the noise floor of the ratios above.
  state.counters["x_control_off_vs_off"] = median(rate[3]) / median(rate[0]);
  state.counters["x_control_off_vs_off_paired"] = median(control_pair);
  state.counters["head_cpu_us_per_req_off"] = 1e6 * cpu[0] / n;
  state.counters["head_cpu_us_per_req_scraped"] = 1e6 * cpu[2] / n;
  state.counters["http_gets"] = static_cast<double>(scraper.gets());
}

double sample(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + " ", 0) == 0) return std::stod(line.substr(key.size() + 1));
  return -1;
}

// Arg: simulated nodes; sessions = 10 per node.
void BM_SnapshotCost(benchmark::State& state) {
  int nodes = static_cast<int>(state.range(0));
  int sessions = static_cast<int>(state.range(1));
  zgrid::testing::Grid g;
  g.start_head({"--log-level", "warn", "--http", "127.0.0.1:0"});
  zgrid::node::SimNodes sim(g.backend(), nodes);
  sim.start();
  if (!g.wait_nodes(static_cast<std::size_t>(nodes), 60'000)) {
    state.SkipWithError("simulated nodes did not all register");
    return;
  }
  auto conn = g.connect(30'000);
  for (int i = 0; i < sessions; ++i)
    if (!conn->create_session({"echo", false, 0}).ok()) {
      state.SkipWithError("create_session failed");
      return;
    }
  std::string url = g.http_url();
  std::string rest = url.substr(7, url.size() - 8);
  httplib::Client c(rest.substr(0, rest.rfind(':')), std::stoi(rest.substr(rest.rfind(':') + 1)));
  // Idle head CPU first (heartbeats only), then while scraped every 100 ms.
  double c0 = cpu_seconds(g.head().pid());
  std::this_thread::sleep_for(std::chrono::seconds(3));
  double idle = (cpu_seconds(g.head().pid()) - c0) / 3.0;
  double per_snapshot = 0, scraped = 0, bytes = 0;
  for (auto _ : state) {
    auto first = c.Get("/metrics");
    double b0 = sample(first ? first->body : "", "zgrid_snapshot_builds_total");
    double s0 = sample(first ? first->body : "", "zgrid_snapshot_build_seconds_total");
    double h0 = cpu_seconds(g.head().pid());
    auto t0 = Clock::now();
    std::string last;
    while (seconds_since(t0) < 5) {
      if (auto r = c.Get("/metrics")) last = r->body;
      if (auto r = c.Get("/api/sessions")) bytes = static_cast<double>(r->body.size());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    double secs = seconds_since(t0);
    scraped = (cpu_seconds(g.head().pid()) - h0) / secs;
    double builds = sample(last, "zgrid_snapshot_builds_total") - b0;
    per_snapshot =
        builds > 0 ? (sample(last, "zgrid_snapshot_build_seconds_total") - s0) / builds : 0;
    state.SetIterationTime(secs);
  }
  state.counters["snapshot_ms"] = 1e3 * per_snapshot;
  state.counters["head_cpu_idle"] = idle;
  state.counters["head_cpu_scraped"] = scraped;
  state.counters["api_sessions_page_bytes"] = bytes;
}

}  // namespace

BENCHMARK(BM_HttpOverhead)
    ->ArgNames({"durable"})
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_SnapshotCost)
    ->ArgNames({"nodes", "sessions"})
    ->Args({1000, 10000})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

int main(int argc, char** argv) {
  return zgrid::bench::run_benchmarks(argc, argv);
}
