// End-to-end grid benchmark: client (this process) -> zgrid-head -> zgrid-node(s).
//
// Every figure is measured in the same run as the physical limit it is
// compared with: the factorize kernel alone on the same numbers, on one core
// and on all cores. One number = one request id = one response; results are
// stored during the timed loop and every one is checked after it.
//
//   build/bench/grid_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
// ZGRID_BENCH_N sets the number of requests (default 1,000,000).
#include <benchmark/benchmark.h>
#include <unistd.h>
#include <zmq.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "bench/grid_fixture.hpp"
#include "client/transport.hpp"
#include "common/curve.hpp"
#include "common/status.hpp"
#include "node/sim_nodes.hpp"
#include "services/factorize_kernel.hpp"
#include "tests/support/grid_process.hpp"

namespace {

using zgrid::Status;
using zgrid::client::BrokerClient;
using namespace zgrid::bench;  // NOLINT: the shared fixture (bench/grid_fixture.hpp)

double g_kernel_one[2], g_kernel_all[2];  // requests/s of the bare kernel, per class
double g_interactive[2];                  // best interactive req/s per class (durable ratio)

void kernel_range(const std::vector<std::uint64_t>& v, std::size_t b, std::size_t e,
                  std::uint64_t* sink) {
  std::uint64_t f[zgrid::factor::kMaxFactors];
  std::uint64_t acc = 0;
  for (std::size_t i = b; i < e; ++i) acc += zgrid::factor::factorize(v[i], f);
  *sink += acc;
}

void BM_Kernel(benchmark::State& state) {
  int cls = static_cast<int>(state.range(0));
  int threads = state.range(1) == 0 ? static_cast<int>(std::thread::hardware_concurrency())
                                    : static_cast<int>(state.range(1));
  const auto& v = inputs(cls).numbers;
  double best = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    std::vector<std::uint64_t> sinks(threads, 0);
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back(kernel_range, std::cref(v), v.size() * t / threads,
                      v.size() * (t + 1) / threads, &sinks[t]);
    for (auto& t : ts) t.join();
    double s = seconds_since(t0);
    state.SetIterationTime(s);
    best = std::max(best, static_cast<double>(v.size()) / s);
    benchmark::DoNotOptimize(sinks.data());
  }
  (state.range(1) == 1 ? g_kernel_one : g_kernel_all)[cls] = best;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * v.size()));
  state.counters["req_per_s"] = best;
}

// Args: input class, nodes, batch size.
void BM_GridInteractive(benchmark::State& state) {
  int cls = static_cast<int>(state.range(0));
  int nodes = static_cast<int>(state.range(1));
  std::size_t batch = static_cast<std::size_t>(state.range(2));
  const Inputs& in = inputs(cls);
  zgrid::testing::Grid g;
  g.start_head({"--log-level", "warn"});
  int workers = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / nodes);
  for (int i = 0; i < nodes; ++i)
    g.add_node({"--workers", std::to_string(workers), "--log-level", "warn"});
  if (!g.wait_nodes(nodes)) {
    state.SkipWithError("nodes did not register");
    return;
  }
  auto conn = g.connect(30'000);
  std::vector<zgrid::proto::Response> got;
  double head_cpu = 0, node_cpu = 0, client_cpu = 0, best = 0;
  for (auto _ : state) {
    got.clear();
    got.reserve(in.text.size());
    double h0 = cpu_seconds(g.head().pid()), c0 = self_cpu_seconds(), n0 = 0;
    for (int i = 0; i < nodes; ++i) n0 += cpu_seconds(g.node(i).pid());
    double s = run_interactive(*conn, in, batch, &got);
    state.SetIterationTime(s);
    best = std::max(best, static_cast<double>(in.text.size()) / s);
    head_cpu += cpu_seconds(g.head().pid()) - h0;
    client_cpu += self_cpu_seconds() - c0;
    for (int i = 0; i < nodes; ++i) node_cpu += cpu_seconds(g.node(i).pid());
    node_cpu -= n0;
  }
  // Outside the timed region: exactly one response per request, each correct.
  if (!all_correct(state, in, got)) return;
  double per = static_cast<double>(state.iterations()) * static_cast<double>(in.text.size());
  state.SetItemsProcessed(static_cast<std::int64_t>(per));
  state.counters["req_per_s"] = best;
  if (nodes == 1 && batch == 1024) g_interactive[cls] = best;
  state.counters["x_kernel_1core"] = g_kernel_one[cls] > 0 ? best / g_kernel_one[cls] : 0;
  state.counters["x_kernel_allcores"] = g_kernel_all[cls] > 0 ? best / g_kernel_all[cls] : 0;
  state.counters["head_cpu_us_per_req"] = 1e6 * head_cpu / per;
  state.counters["node_cpu_us_per_req"] = 1e6 * node_cpu / per;
  state.counters["client_cpu_us_per_req"] = 1e6 * client_cpu / per;
}

// Durable end to end: submit (flushing as it goes) -> EndRequests (committed)
// -> every response fetched by session id. Args: input class, nodes, batch.
void BM_GridDurable(benchmark::State& state) {
  int cls = static_cast<int>(state.range(0));
  int nodes = static_cast<int>(state.range(1));
  std::size_t batch = static_cast<std::size_t>(state.range(2));
  const Inputs& in = inputs(cls);
  zgrid::testing::Grid g;
  g.start_durable_head({"--log-level", "warn"});
  int workers = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / nodes);
  for (int i = 0; i < nodes; ++i)
    g.add_node({"--workers", std::to_string(workers), "--log-level", "warn"});
  if (!g.wait_nodes(nodes)) {
    state.SkipWithError("nodes did not register");
    return;
  }
  auto conn = g.connect(30'000);
  std::vector<zgrid::proto::Response> got;
  double best = 0, head_cpu = 0, node_cpu = 0, client_cpu = 0, syncs = 0, secs = 0, submit = 0;
  for (auto _ : state) {
    got.clear();
    got.reserve(in.text.size());
    auto gs0 = conn->grid_status();
    double h0 = cpu_seconds(g.head().pid()), c0 = self_cpu_seconds(), n0 = 0;
    for (int i = 0; i < nodes; ++i) n0 += cpu_seconds(g.node(i).pid());
    double sub = 0;
    double sec = run_durable(*conn, in, batch, &got, &sub);
    submit += sub;
    state.SetIterationTime(sec);
    secs += sec;
    best = std::max(best, static_cast<double>(in.text.size()) / sec);
    head_cpu += cpu_seconds(g.head().pid()) - h0;
    client_cpu += self_cpu_seconds() - c0;
    for (int k = 0; k < nodes; ++k) node_cpu += cpu_seconds(g.node(k).pid());
    node_cpu -= n0;
    auto gs1 = conn->grid_status();
    if (gs0.ok() && gs1.ok())
      syncs += static_cast<double>(gs1->u64("journal_syncs") - gs0->u64("journal_syncs"));
  }
  if (!all_correct(state, in, got)) return;
  double per = static_cast<double>(state.iterations()) * static_cast<double>(in.text.size());
  state.SetItemsProcessed(static_cast<std::int64_t>(per));
  state.counters["req_per_s"] = best;
  state.counters["x_interactive"] = g_interactive[cls] > 0 ? best / g_interactive[cls] : 0;
  state.counters["x_kernel_allcores"] = g_kernel_all[cls] > 0 ? best / g_kernel_all[cls] : 0;
  // Each request is journaled twice (request batch, response record).
  state.counters["req_per_fsync"] = syncs > 0 ? per / syncs : 0;
  state.counters["fsync_per_s"] = secs > 0 ? syncs / secs : 0;
  // Where the time goes: submitting until committed, then fetching.
  state.counters["submit_share"] = secs > 0 ? submit / secs : 0;
  state.counters["head_cpu_us_per_req"] = 1e6 * head_cpu / per;
  state.counters["node_cpu_us_per_req"] = 1e6 * node_cpu / per;
  state.counters["client_cpu_us_per_req"] = 1e6 * client_cpu / per;
  state.counters["head_rss_peak_MiB"] =
      static_cast<double>(head_rss_peak_kib(g.head().pid())) / 1024.0;
}

// Recovery: N committed requests journaled (no node, so none answered), the
// head is SIGKILLed and restarted; time until it answers again, all requeued.
void BM_DurableRecovery(benchmark::State& state) {
  const Inputs& in = inputs(0);
  zgrid::testing::Grid g;
  g.start_durable_head({"--log-level", "warn"});
  {
    auto conn = g.connect(30'000);
    auto info = conn->create_session({"factorize", true, 0});
    auto bc = BrokerClient::open(*conn, info->session_id, "bench");
    for (const auto& s : in.text) (void)(*bc)->send(s, s);
    if (!(*bc)->end_requests().ok()) {
      state.SkipWithError("submit failed");
      return;
    }
  }
  for (auto _ : state) {
    g.kill_head();
    auto t0 = Clock::now();
    g.restart_head();
    auto conn = g.connect(60'000);  // answers once recovery is done
    state.SetIterationTime(seconds_since(t0));
    auto st = conn->grid_status();
    if (!st.ok() || st->u64("queued") != in.text.size()) {
      state.SkipWithError("not every request was requeued");
      return;
    }
  }
  state.counters["requests_journaled"] = static_cast<double>(in.text.size());
  state.counters["head_rss_peak_MiB"] =
      static_cast<double>(head_rss_peak_kib(g.head().pid())) / 1024.0;
}

// Head memory for a huge durable session sent at a slow grid: ZGRID_BENCH_BIG_N
// requests (default 10,000,000) committed while one slow node works.
void BM_DurableHugeSessionRss(benchmark::State& state) {
  const char* e = std::getenv("ZGRID_BENCH_BIG_N");
  std::uint64_t n = e ? std::strtoull(e, nullptr, 10) : 10'000'000;
  zgrid::testing::Grid g;
  g.start_durable_head({"--log-level", "warn"});
  g.add_node({"--workers", "1", "--services", "sleep", "--log-level", "warn"});
  if (!g.wait_nodes(1)) {
    state.SkipWithError("node did not register");
    return;
  }
  for (auto _ : state) {
    auto conn = g.connect(60'000);
    auto info = conn->create_session({"sleep", true, 0});
    auto bc = BrokerClient::open(*conn, info->session_id, "big");
    auto t0 = Clock::now();
    std::uint64_t i = 0;
    for (; i < n; ++i) {
      if (!(*bc)->send("1", "1").ok()) break;
      if (i % 1024 == 1023) (void)(*bc)->flush();
    }
    Status st = (*bc)->end_requests();
    state.SetIterationTime(seconds_since(t0));
    if (!st.ok() || i != n) {
      state.SkipWithError("submit failed");
      return;
    }
    auto gs = conn->session_status(info->session_id);
    state.counters["committed"] = gs.ok() ? static_cast<double>(gs->u64("committed")) : 0;
  }
  state.counters["head_rss_peak_MiB"] =
      static_cast<double>(head_rss_peak_kib(g.head().pid())) / 1024.0;
}

// Time from a node's SIGKILL to its work running on another node. Arg: heartbeat ms.
void BM_NodeDeathFailover(benchmark::State& state) {
  std::string hb = std::to_string(state.range(0)) + "ms";
  for (auto _ : state) {
    state.PauseTiming();
    zgrid::testing::Grid g;
    g.start_head({"--heartbeat", hb, "--log-level", "warn"});
    std::size_t victim = g.add_node({"--workers", "2", "--prefetch", "64", "--node-id", "victim"});
    if (!g.wait_nodes(1)) {
      state.SkipWithError("node did not register");
      return;
    }
    auto conn = g.connect();
    auto info = conn->create_session({"sleep", false, 0});
    auto bc = BrokerClient::open(*conn, info->session_id, "c");
    for (int i = 0; i < 100; ++i) (void)(*bc)->send("1000", "x");
    (void)(*bc)->flush();
    zgrid::testing::wait_until(
        [&] { return conn->session_status(info->session_id)->u64("running") == 100; }, 10'000);
    g.add_node({"--workers", "2", "--node-id", "spare"});
    zgrid::testing::wait_until([&] { return conn->nodes()->size() == 2; }, 10'000);
    state.ResumeTiming();
    auto t0 = Clock::now();
    g.node(victim).kill_now();
    bool moved = zgrid::testing::wait_until(
        [&] {
          auto nodes = conn->nodes();
          if (!nodes.ok()) return false;
          for (const auto& n : *nodes)
            if (n.str("node_id") == "spare" && n.u64("inflight") > 0) return true;
          return false;
        },
        30'000, 5);
    state.SetIterationTime(seconds_since(t0));
    if (!moved) state.SkipWithError("work did not move");
  }
  state.counters["misses"] = 3;
}

// Interactive throughput of a good client while a flooder sends ~20,000 junk
// messages per second at the frontend, as a ratio of the same without it.
double RunGood(zgrid::testing::Grid& g, std::size_t n) {
  auto conn = g.connect(30'000);
  auto info = conn->create_session({"factorize", false, 0});
  auto bc = BrokerClient::open(*conn, info->session_id, "good");
  const Inputs& in = inputs(0);
  auto t0 = Clock::now();
  std::size_t got = 0;
  zgrid::proto::Response r;
  for (std::size_t i = 0; i < n; ++i) {
    (void)(*bc)->send(in.text[i], "");
    while ((*bc)->poll_response(&r)) ++got;
  }
  (void)(*bc)->end_requests();
  while (got < n && (*bc)->next_response(&r, 30'000).value()) ++got;
  return static_cast<double>(got) / seconds_since(t0);
}

void BM_FlooderRatio(benchmark::State& state) {
  std::size_t n = std::min<std::size_t>(inputs(0).text.size(), 300'000);
  zgrid::testing::Grid g;
  g.start_head({"--log-level", "error"});
  g.add_node({"--workers", "2", "--log-level", "warn"});
  if (!g.wait_nodes(1)) {
    state.SkipWithError("node did not register");
    return;
  }
  double without = 0, with = 0, junk_rate = 0;
  for (auto _ : state) {
    without = RunGood(g, n);
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> junk{0};
    std::thread flooder([&] {
      zmq::context_t ctx(1);
      zmq::socket_t s(ctx, zmq::socket_type::dealer);
      s.set(zmq::sockopt::linger, 0);
      s.connect(g.frontend());
      std::mt19937 rng(5);
      auto start = Clock::now();
      while (!stop.load()) {
        // Paced at 20,000 messages per second.
        double due = seconds_since(start) * 20'000;
        while (static_cast<double>(junk.load()) < due) {
          std::string b(1 + rng() % 100, '\0');
          for (auto& c : b) c = static_cast<char>(rng());
          zmq::message_t m(b.data(), b.size());
          if (!s.send(m, zmq::send_flags::dontwait)) break;
          ++junk;
        }
        zmq::message_t reply;
        while (s.recv(reply, zmq::recv_flags::dontwait)) {
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      junk_rate = static_cast<double>(junk.load()) / seconds_since(start);
    });
    auto t0 = Clock::now();
    with = RunGood(g, n);
    state.SetIterationTime(seconds_since(t0));
    stop = true;
    flooder.join();
  }
  state.counters["req_per_s_alone"] = without;
  state.counters["req_per_s_flooded"] = with;
  state.counters["ratio"] = without > 0 ? with / without : 0;
  state.counters["junk_per_s"] = junk_rate;
}

// Head memory while a client tries to send 10,000,000 requests at a slow node
// (back-pressure holds it): peak RSS over ZGRID_BENCH_FLOOD_SECONDS (default 20).
void BM_BackPressureRss(benchmark::State& state) {
  const char* e = std::getenv("ZGRID_BENCH_FLOOD_SECONDS");
  double secs = e ? std::strtod(e, nullptr) : 20;
  zgrid::testing::Grid g;
  g.start_head({"--log-level", "warn"});
  g.add_node({"--workers", "1", "--prefetch", "4", "--log-level", "warn"});
  if (!g.wait_nodes(1)) {
    state.SkipWithError("node did not register");
    return;
  }
  std::uint64_t sent = 0;
  for (auto _ : state) {
    auto conn = g.connect(30'000);
    auto info = conn->create_session({"echo", false, 0});
    auto bc = BrokerClient::open(*conn, info->session_id, "flood");
    auto t0 = Clock::now();
    zgrid::proto::Response r;
    for (; sent < 10'000'000 && seconds_since(t0) < secs; ++sent) {
      if (!(*bc)->send("x", "").ok()) break;
      while ((*bc)->poll_response(&r)) {
      }
    }
    state.SetIterationTime(seconds_since(t0));
    (void)conn->close_session(info->session_id, zgrid::proto::CloseMode::kCancel);
  }
  state.counters["requests_sent"] = static_cast<double>(sent);
  state.counters["head_rss_peak_MiB"] =
      static_cast<double>(head_rss_peak_kib(g.head().pid())) / 1024.0;
}

// One head and N simulated nodes (arg): heartbeat cost per node (head CPU
// while idle), dispatch throughput of echo requests and the head's CPU per
// dispatched request (the distributor's cost per request: accept, choose a
// node, send, match the result, answer), head RSS per node.
void BM_ManyNodes(benchmark::State& state) {
  int n = static_cast<int>(state.range(0));
  zgrid::testing::Grid g;
  g.start_head({"--log-level", "warn"});
  double rss0 = static_cast<double>(rss_kib(g.head().pid()));
  zgrid::node::SimNodes sim(g.backend(), n);
  sim.start();
  if (!g.wait_nodes(static_cast<std::size_t>(n), 60'000)) {
    state.SkipWithError("simulated nodes did not all register");
    return;
  }
  // Idle: only heartbeats, both ways, for 3 s.
  double c0 = cpu_seconds(g.head().pid());
  std::this_thread::sleep_for(std::chrono::seconds(3));
  double idle_cpu = (cpu_seconds(g.head().pid()) - c0) / 3.0;
  double rss = static_cast<double>(rss_kib(g.head().pid()));
  double rate = 0, dispatch_cpu = 0, dispatched = 0;
  for (auto _ : state) {
    auto conn = g.connect(30'000);
    double h0 = cpu_seconds(g.head().pid());
    auto info = conn->create_session({"echo", false, 0});
    auto bc = BrokerClient::open(*conn, info->session_id, "c");
    const std::size_t kN = 200'000;
    auto t0 = Clock::now();
    std::size_t got = 0;
    zgrid::proto::Response r;
    for (std::size_t i = 0; i < kN; ++i) {
      (void)(*bc)->send("x", "");
      while ((*bc)->poll_response(&r)) ++got;
    }
    (void)(*bc)->end_requests();
    while (got < kN && (*bc)->next_response(&r, 30'000).value()) ++got;
    double s = seconds_since(t0);
    state.SetIterationTime(s);
    rate = static_cast<double>(got) / s;
    dispatch_cpu += cpu_seconds(g.head().pid()) - h0;
    dispatched += static_cast<double>(got);
  }
  sim.stop();
  state.counters["head_cpu_us_per_dispatch"] = dispatched > 0 ? 1e6 * dispatch_cpu / dispatched : 0;
  state.counters["nodes"] = n;
  state.counters["heartbeat_cpu_us_per_node_s"] = 1e6 * idle_cpu / n;
  state.counters["head_cpu_idle_pct"] = 100 * idle_cpu;
  state.counters["dispatch_req_per_s"] = rate;
  state.counters["head_rss_KiB_per_node"] = (rss - rss0) / n;
}

// Round trip of a lone request on an idle grid (no spinning anywhere).
void BM_LoneRequest(benchmark::State& state) {
  zgrid::testing::Grid g;
  g.start_head({"--log-level", "warn"});
  g.add_node({"--workers", "2", "--log-level", "warn"});
  if (!g.wait_nodes(1)) {
    state.SkipWithError("node did not register");
    return;
  }
  auto conn = g.connect();
  auto info = conn->create_session({"factorize", false, 0});
  auto bc = BrokerClient::open(*conn, info->session_id, "lat");
  std::vector<double> us;
  zgrid::proto::Response r;
  std::uint64_t i = 0;
  for (auto _ : state) {
    std::string n = std::to_string(1'000'003 + 2 * (i++ % 1000));
    auto t0 = Clock::now();
    (void)(*bc)->send(n, n);
    (void)(*bc)->flush();
    auto ok = (*bc)->next_response(&r, 10'000);
    double s = seconds_since(t0);
    if (!ok.ok() || !*ok || r.user_data != n) {
      state.SkipWithError("lost a lone request");
      return;
    }
    state.SetIterationTime(s);
    us.push_back(s * 1e6);
  }
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
  // The client <-> head leg alone (a ping), to show where the time goes.
  std::vector<double> ping;
  for (int k = 0; k < 500; ++k) {
    auto t0 = Clock::now();
    if (!conn->transport().probe_instance().ok()) break;
    ping.push_back(seconds_since(t0) * 1e6);
  }
  if (!ping.empty()) {
    std::sort(ping.begin(), ping.end());
    state.counters["ping_p50_us"] = ping[ping.size() / 2];
  }
  // The floor: a bare ZeroMQ DEALER -> ROUTER echo over TCP loopback between
  // two threads with their own contexts (each direction crosses both I/O
  // threads, as every zgrid hop does). A lone request needs two such round
  // trips (client <-> head, head <-> node).
  double rtt = percentile(bare_relay_us(500, true), 0.5);
  state.counters["zmq_rtt_p50_us"] = rtt;
  if (rtt > 0) state.counters["x_zmq_rtt"] = us[us.size() / 2] / rtt;
}

// Per-request overhead of a service's host mechanism, for the echo operation
// (issue 8): built in, a shared-library plug-in (examples/plugins/montecarlo,
// its echo operation) and the exec bridge (examples/exec/worker.py, Python).
// One node with one worker, so each request's cost is the host's, measured
// in the same run: a batch of N echoes (us per request, throughput) and the
// lone-request round trip (p50); ratios are to the built-in's.
void BM_ServiceOverhead(benchmark::State& state) {
  zgrid::testing::Grid g;
  g.start_head({"--log-level", "warn"});
  std::string reg = g.dir().file("services.d");
  std::filesystem::create_directory(reg);
  {
    std::ofstream(reg + "/montecarlo.toml") << "library = \"" ZGRID_MONTECARLO_PLUGIN "\"\n";
    std::ofstream(reg + "/pystats.toml")
        << "name = \"pystats\"\nprogram = \"" ZGRID_SOURCE_DIR "/examples/exec/worker.py\"\n"
        << "operations = [\"stats\", \"echo\"]\n";
  }
  g.add_node({"--workers", "1", "--services-dir", reg, "--log-level", "warn"});
  if (!g.wait_nodes(1)) {
    state.SkipWithError("node did not register");
    return;
  }
  const std::size_t n = std::min<std::size_t>(bench_n(), 20'000);
  const std::vector<std::string> services{"echo", "montecarlo/echo", "pystats/echo"};
  const std::vector<std::string> names{"builtin", "plugin", "exec"};
  std::vector<double> per_req_us(3), p50_us(3);
  auto conn = g.connect();
  double total = 0;
  for (auto _ : state) {
    for (std::size_t k = 0; k < services.size(); ++k) {
      auto info = conn->create_session({services[k], false, 0});
      if (!info.ok()) return state.SkipWithError("no session");
      auto bc = BrokerClient::open(*conn, info->session_id, "ovh");
      if (!bc.ok()) return state.SkipWithError("no client");
      // Warm up (the exec worker starts on first use), then the lone round trips.
      std::vector<double> lone;
      zgrid::proto::Response r;
      for (int i = 0; i < 300; ++i) {
        std::string p = "lone-" + std::to_string(i);
        auto t0 = Clock::now();
        (void)(*bc)->send(p, p);
        (void)(*bc)->flush();
        auto ok = (*bc)->next_response(&r, 10'000);
        double s = seconds_since(t0);
        if (!ok.ok() || !*ok || r.data != p) return state.SkipWithError("lost a lone request");
        if (i >= 50) lone.push_back(s * 1e6);
      }
      std::sort(lone.begin(), lone.end());
      p50_us[k] = lone[lone.size() / 2];
      // The batch: every result checked after the timed region.
      std::vector<std::string> got(n);
      std::size_t received = 0;
      auto t0 = Clock::now();
      for (std::size_t i = 0; i < n; ++i) {
        std::string p = "echo-" + std::to_string(i);
        if (!(*bc)->send(p, p).ok()) return state.SkipWithError("send failed");
        while ((*bc)->poll_response(&r))
          got[std::stoul(r.user_data.substr(5))] = r.data, ++received;
      }
      if (!(*bc)->end_requests().ok()) return state.SkipWithError("end failed");
      while (received < n) {
        auto ok = (*bc)->next_response(&r, 30'000);
        if (!ok.ok() || !*ok) return state.SkipWithError("responses missing");
        got[std::stoul(r.user_data.substr(5))] = r.data;
        ++received;
      }
      double s = seconds_since(t0);
      total += s;
      for (std::size_t i = 0; i < n; ++i)
        if (got[i] != "echo-" + std::to_string(i)) return state.SkipWithError("wrong echo");
      per_req_us[k] = s * 1e6 / static_cast<double>(n);
    }
    state.SetIterationTime(total);
  }
  for (std::size_t k = 0; k < names.size(); ++k) {
    state.counters[names[k] + "_us_per_req"] = per_req_us[k];
    state.counters[names[k] + "_lone_p50_us"] = p50_us[k];
  }
  state.counters["plugin_overhead_us"] = per_req_us[1] - per_req_us[0];
  state.counters["exec_overhead_us"] = per_req_us[2] - per_req_us[0];
  state.counters["plugin_ratio"] = per_req_us[1] / per_req_us[0];
  state.counters["exec_ratio"] = per_req_us[2] / per_req_us[0];
}

}  // namespace

// CURVE on vs off in the same run: two grids side by side (one head + one
// node each, 2 workers), runs alternating, median of 3 each. Arg: durable.
void BM_CurveRatio(benchmark::State& state) {
  bool durable = state.range(0) != 0;
  const Inputs& in = inputs(0);
  zgrid::testing::TempDir keys;
  std::map<std::string, zgrid::curve::KeyPair> kp;
  ::mkdir(keys.file("clients").c_str(), 0700);
  ::mkdir(keys.file("nodes").c_str(), 0700);
  for (const char* who : {"head", "client", "node"}) {
    kp[who] = *zgrid::curve::generate();
    (void)zgrid::curve::write_pair(keys.path(), who, kp[who], true);
  }
  std::filesystem::copy_file(keys.file("client.pub"), keys.file("clients/client.pub"));
  std::filesystem::copy_file(keys.file("node.pub"), keys.file("nodes/node.pub"));
  zgrid::testing::Grid plain, secure;
  plain.start_durable_head({"--log-level", "warn"});
  secure.start_durable_head({"--log-level", "warn", "--curve-secret", keys.file("head.key"),
                             "--authorized-clients", keys.file("clients"), "--authorized-nodes",
                             keys.file("nodes")});
  secure.set_client_keys(kp["head"].public_z85, kp["client"].public_z85, kp["client"].secret_z85);
  std::string workers = std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  plain.add_node({"--workers", workers, "--log-level", "warn"});
  secure.add_node({"--workers", workers, "--log-level", "warn", "--head-key", keys.file("head.pub"),
                   "--key", keys.file("node.key")});
  if (!plain.wait_nodes(1) || !secure.wait_nodes(1)) {
    state.SkipWithError("nodes did not register");
    return;
  }
  auto pc = plain.connect(30'000);
  auto sc = secure.connect(30'000);
  std::vector<double> off, on;
  std::vector<zgrid::proto::Response> got;
  for (auto _ : state) {
    for (int round = 0; round < 3; ++round) {
      for (bool curve : {false, true}) {
        auto& conn = curve ? *sc : *pc;
        double s =
            durable ? run_durable(conn, in, 1024, &got) : run_interactive(conn, in, 1024, &got);
        if (!all_correct(state, in, got)) return;
        (curve ? on : off).push_back(static_cast<double>(in.text.size()) / s);
        state.SetIterationTime(s);
      }
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  state.counters["req_per_s_plain"] = median(off);
  state.counters["req_per_s_curve"] = median(on);
  state.counters["x_curve_vs_plain"] = median(on) / median(off);
}

BENCHMARK(BM_Kernel)
    ->ArgNames({"class", "threads"})
    ->Args({0, 1})
    ->Args({0, 0})
    ->Args({1, 1})
    ->Args({1, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK(BM_GridInteractive)
    ->ArgNames({"class", "nodes", "batch"})
    ->Args({0, 1, 1024})
    ->Args({0, 2, 1024})
    ->Args({0, 1, 256})
    ->Args({0, 1, 4096})
    ->Args({1, 1, 1024})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_GridDurable)
    ->ArgNames({"class", "nodes", "batch"})
    ->Args({0, 1, 1024})
    ->Args({0, 2, 1024})
    ->Args({0, 1, 4096})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_CurveRatio)
    ->ArgNames({"durable"})
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_DurableRecovery)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_DurableHugeSessionRss)->UseManualTime()->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK(BM_NodeDeathFailover)
    ->ArgName("heartbeat_ms")
    ->Arg(1000)
    ->Arg(250)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_FlooderRatio)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_BackPressureRss)->UseManualTime()->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK(BM_ManyNodes)
    ->ArgName("nodes")
    ->Arg(2)
    ->Arg(1000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_LoneRequest)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(2000);
BENCHMARK(BM_ServiceOverhead)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);

int main(int argc, char** argv) {
  return zgrid::bench::run_benchmarks(argc, argv);
}
