// One head for a big cluster (docs/benchmarks.md, "One head, 10,000 nodes"):
//  - BM_HeadDispatch/nodes/per_msg: the head's own CPU per dispatched and
//    answered echo request, with simulated nodes (`zgrid-node --simulate`,
//    separate processes of at most 5,000 each) whose credit makes tasks
//    travel `per_msg` per message. CPU from /proc/PID/stat (what getrusage
//    would say from inside the head); tasks per task message and per results
//    message as the simulators counted them.
//  - BM_TenThousandNodes: registration time of N simulated nodes with 1 s
//    heartbeats, the head's idle CPU and RSS, `zgrid nodes` answering, and
//    the time to notice a lone simulated node SIGKILLed among them.
//  - BM_SessionsPerSecond/durable/clients/submit: create a session, send one
//    request, get its answer, close; `clients` threads each with a
//    connection, for a few seconds. submit:0 takes the steps one by one
//    (six exchanges), submit:1 makes the session in one message
//    (BrokerClient::submit with submit_wait_ms: the submit, and its reply
//    carrying the answer — durable: committed). submit:1 also measures its
//    floor in the same run: as many clients doing bare ZeroMQ round trips
//    through a relay (broker and worker processes), relay_round_trips_per_s.
//  - BM_DurableSessionsKept: the head's RSS with 100,000 complete durable
//    sessions kept, and after a restart that recovers them.
//  - BM_PurgeStorm/sessions: `sessions` one-message durable sessions (one
//    echo each, answered), then as many `close --purge` pipelined on one
//    connection: purges a second, and how long another client's durable
//    submit of 1,000 requests, sent once every purge is on its way, waits
//    for its acknowledgement.
//  - BM_LoneRequestVsRelay: an echo request on an idle grid, p50 and p99, beside
//    its floor measured in the same run: a bare ZeroMQ relay (DEALER client
//    -> ROUTER broker -> DEALER worker and back, each in its own context and
//    thread, as a lone request crosses client, head and node) and one bare
//    round trip.
//  - BM_HeadDispatchVsFloor/nodes/per_msg: BM_HeadDispatch's stream through
//    the real head and then, in the same run, through its floor: a bare head
//    (bench/bare_head.hpp) that moves the same messages between the same
//    client and simulators with none of the head's logic. Head CPU per
//    request of each, their ratio (x_floor), requests a second of each, and
//    the CPU the client and the simulators spent per request beside them.
//    With ZGRID_BENCH_MARKS=1 each stream's PID and CLOCK_MONOTONIC span go
//    to stderr, for `perf record -k CLOCK_MONOTONIC -a -g` then
//    `perf script --time FROM,TO` of that process alone.
//
//   build/bench/scale_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zgrid/client.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <regex>
#include <string_view>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "bench/bare_head.hpp"
#include "bench/grid_fixture.hpp"
#include "tests/support/grid_process.hpp"
#include "tests/support/pipeline.hpp"

namespace {

using namespace zgrid::bench;  // NOLINT: the shared fixture
using zgrid::client::BrokerClient;
using zgrid::client::Connection;
using zgrid::testing::Grid;

constexpr int kPerSimProcess = 5'000;  // 2 descriptors a socket under a 20,000 file limit

// Simulated nodes in processes of at most kPerSimProcess; returns their
// indexes in the grid.
std::vector<std::size_t> AddSims(Grid& g, int nodes, int credit, const std::string& prefix) {
  std::vector<std::size_t> out;
  for (int done = 0, p = 0; done < nodes; ++p) {
    int k = std::min(kPerSimProcess, nodes - done);
    out.push_back(g.add_node({"--simulate", std::to_string(k), "--prefetch", std::to_string(credit),
                              "--node-id", prefix + std::to_string(p), "--heartbeat", "1s",
                              "--log-level", "warn"}));
    done += k;
  }
  return out;
}

// Stops the simulators (SIGTERM) and sums the tasks, task messages and
// results messages they report.
void StopSims(Grid& g, const std::vector<std::size_t>& sims, double* tasks, double* messages,
              double* results = nullptr) {
  static const std::regex kLine(R"(tasks=(\d+) messages=(\d+) results=(\d+))");
  for (std::size_t i : sims) {
    g.node(i).signal(SIGTERM);
    g.node(i).wait(10'000);
    std::string log = zgrid::testing::read_file(g.dir().file("node" + std::to_string(i) + ".log"));
    std::smatch m;
    if (std::regex_search(log, m, kLine)) {
      *tasks += std::stod(m[1]);
      *messages += std::stod(m[2]);
      if (results) *results += std::stod(m[3]);
    }
  }
}

// Streams `n` echo requests through one session; returns how many answers came.
std::size_t StreamEcho(Connection& conn, std::size_t n) {
  auto info = conn.create_session({"echo", false, 0});
  if (!info.ok()) return 0;
  auto bc = BrokerClient::open(conn, info->session_id, "c");
  if (!bc.ok()) return 0;
  std::size_t got = 0;
  zgrid::proto::Response r;
  for (std::size_t i = 0; i < n; ++i) {
    if (!(*bc)->send("x", "").ok()) break;
    while ((*bc)->poll_response(&r)) ++got;
  }
  (void)(*bc)->end_requests();
  while (got < n) {
    auto ok = (*bc)->next_response(&r, 30'000);
    if (!ok.ok() || !*ok) break;
    ++got;
  }
  (void)conn.close_session(info->session_id, zgrid::proto::CloseMode::kPurge);
  return got;
}

// The requests one HeadDispatch stream sends: more where messages are deeper.
std::size_t DispatchRequests(int per_msg) {
  std::size_t scale = per_msg == 1 ? 1 : per_msg < 64 ? 2 : 5;
  return std::max<std::size_t>(2'000, bench_n() * scale / 10);
}

void BM_HeadDispatch(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  const int per_msg = static_cast<int>(state.range(1));
  // The head sends min(credit/2 + 1, --max-task-batch) per message; nodes
  // answer at once, so their free credit stays near the whole of it.
  const int credit = std::max(2, 2 * per_msg);
  Grid g;
  g.start_head(
      {"--http", "off", "--log-level", "warn", "--max-task-batch", std::to_string(per_msg)});
  auto sims = AddSims(g, nodes, credit, "s");
  if (!zgrid::bench::wait_node_count(g, static_cast<std::uint64_t>(nodes), 120'000)) {
    state.SkipWithError("simulated nodes did not all register");
    return;
  }
  const std::size_t n = DispatchRequests(per_msg);
  auto conn = g.connect(30'000);
  double cpu = 0, answered = 0;
  for (auto _ : state) {
    double c0 = cpu_seconds(g.head().pid());
    auto t0 = Clock::now();
    std::size_t got = StreamEcho(*conn, n);
    double s = seconds_since(t0);
    cpu += cpu_seconds(g.head().pid()) - c0;
    answered += static_cast<double>(got);
    state.SetIterationTime(s);
    state.counters["req_per_s"] = static_cast<double>(got) / s;
    if (got != n) {
      state.SkipWithError("lost answers");
      return;
    }
  }
  double tasks = 0, messages = 0, results = 0;
  StopSims(g, sims, &tasks, &messages, &results);
  state.counters["head_cpu_us_per_req"] = answered > 0 ? 1e6 * cpu / answered : 0;
  state.counters["tasks_per_msg"] = messages > 0 ? tasks / messages : 0;
  state.counters["tasks_per_results_msg"] = results > 0 ? tasks / results : 0;
  state.counters["requests"] = static_cast<double>(n);
}

void BM_TenThousandNodes(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  for (auto _ : state) {
    Grid g;
    g.start_head({"--http", "off", "--log-level", "warn", "--heartbeat", "1s"});
    double rss0 = static_cast<double>(rss_kib(g.head().pid()));
    auto t0 = Clock::now();
    auto sims = AddSims(g, nodes - 1, 8, "s");
    std::size_t lone = g.add_node({"--simulate", "1", "--prefetch", "8", "--node-id", "lone",
                                   "--heartbeat", "1s", "--log-level", "warn"});
    if (!zgrid::bench::wait_node_count(g, static_cast<std::uint64_t>(nodes), 120'000)) {
      state.SkipWithError("simulated nodes did not all register");
      return;
    }
    double reg_s = seconds_since(t0);
    state.SetIterationTime(reg_s);
    // Idle: heartbeats both ways, for 5 s.
    double c0 = cpu_seconds(g.head().pid());
    std::this_thread::sleep_for(std::chrono::seconds(5));
    double idle = (cpu_seconds(g.head().pid()) - c0) / 5.0;
    double rss = static_cast<double>(rss_kib(g.head().pid()));
    // `zgrid nodes`, the command an operator runs.
    std::vector<double> cli_s;
    for (int k = 0; k < 3; ++k) {
      auto c = Clock::now();
      auto r = zgrid::testing::run_cli({"nodes", "--head", g.frontend()}, "", 30'000);
      cli_s.push_back(seconds_since(c));
      if (r.code != 0 || r.out.find("lone-0") == std::string::npos) {
        state.SkipWithError("zgrid nodes failed");
        return;
      }
    }
    // A node lost among them: SIGKILL the lone simulator.
    auto conn = g.connect(30'000);
    auto k0 = Clock::now();
    g.node(lone).kill_now();
    bool seen = zgrid::testing::wait_until(
        [&] { return zgrid::bench::node_count(*conn) == static_cast<std::uint64_t>(nodes - 1); },
        30'000, 10);
    double detect = seconds_since(k0);
    double tasks = 0, messages = 0;
    StopSims(g, sims, &tasks, &messages);
    state.counters["register_s"] = reg_s;
    state.counters["head_idle_cpu_pct"] = 100 * idle;
    state.counters["head_rss_MiB"] = rss / 1024;
    state.counters["head_rss_KiB_per_node"] = (rss - rss0) / nodes;
    state.counters["zgrid_nodes_s"] = percentile(cli_s, 0.5);
    state.counters["loss_detected_s"] = seen ? detect : -1;
  }
}

// One session's life: create, open a client, send one echo, commit (end of
// requests), its answer, close. Returns false on any failure.
bool OneSession(Connection& conn, bool durable, bool one_message) {
  auto fail = [](const char* what, const zgrid::Status& st) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      std::fprintf(stderr, "scale_bench: %s: %s\n", what, st.ToString().c_str());
    return false;
  };
  std::string sid;
  std::unique_ptr<BrokerClient> bc;
  if (one_message) {
    // Created, sent, committed and sealed in one message, whose reply
    // brings the answer (durable: committed).
    zgrid::client::BrokerOptions bo;
    bo.submit_wait_ms = 30'000;
    auto made = BrokerClient::submit(conn, {"echo", durable, 0}, "c", {{"p", "u"}}, bo);
    if (!made.ok()) return fail("submit", made.status());
    bc = std::move(made).value();
    sid = bc->session_id();
  } else {
    auto info = conn.create_session({"echo", durable, 0});
    if (!info.ok()) return fail("create", info.status());
    sid = info->session_id;
    auto opened = BrokerClient::open(conn, sid, "c");
    if (!opened.ok()) return fail("open", opened.status());
    bc = std::move(opened).value();
    if (zgrid::Status st = bc->send("p", "u"); !st.ok()) return fail("send", st);
    if (zgrid::Status st = bc->end_requests(); !st.ok()) return fail("end_requests", st);
  }
  zgrid::proto::Response r;
  if (one_message && bc->poll_response(&r)) {
    // It came with the reply.
  } else if (durable) {
    // Committed: the answer comes from the journal, by session id.
    auto page = conn.fetch(sid, 0, 16, 30'000);
    if (!page.ok()) return fail("fetch", page.status());
    if (page->responses.size() != 1) return fail("fetch", zgrid::Status::OK());
    r = page->responses[0];
  } else {
    auto ok = bc->next_response(&r, 30'000);
    if (!ok.ok()) return fail("answer", ok.status());
    if (!*ok) return fail("answer", zgrid::Status::OK());
  }
  if (r.user_data != "u" || r.data != "p") return fail("answer", zgrid::Status::OK());
  // A submitted session is sealed already; an interactive one leaves the
  // head once its answer is delivered.
  if (one_message) return true;
  zgrid::Status st = conn.close_session(
      sid, durable ? zgrid::proto::CloseMode::kSeal : zgrid::proto::CloseMode::kPurge);
  return st.ok() || fail("close", st);
}

// `clients` threads, each with a connection, run OneSession until `stop`
// says so (given the sessions done so far); returns the sessions done, or
// -1 if one failed.
long RunSessions(Grid& g, bool durable, bool one_message, int clients,
                 const std::function<bool(std::uint64_t)>& stop) {
  std::atomic<std::uint64_t> done{0}, failed{0};
  std::atomic<bool> halt{false};
  std::vector<std::thread> ts;
  for (int c = 0; c < clients; ++c)
    ts.emplace_back([&] {
      auto conn = g.connect(30'000);
      while (!halt.load()) (OneSession(*conn, durable, one_message) ? done : failed).fetch_add(1);
    });
  while (!stop(done.load()) && failed.load() == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  halt = true;
  for (auto& t : ts) t.join();
  return failed.load() > 0 ? -1 : static_cast<long>(done.load());
}

void StartSessionsGrid(Grid& g, bool durable) {
  if (durable)
    g.start_durable_head({"--http", "off", "--log-level", "warn"});
  else
    g.start_head({"--http", "off", "--log-level", "warn"});
  g.add_node({"--workers", "1", "--log-level", "warn"});
}

void BM_SessionsPerSecond(benchmark::State& state) {
  const bool durable = state.range(0) != 0;
  const int clients = static_cast<int>(state.range(1));
  const bool one_message = state.range(2) != 0;
  auto grid = std::make_unique<Grid>();
  Grid& g = *grid;
  StartSessionsGrid(g, durable);
  if (!g.wait_nodes(1)) {
    state.SkipWithError("node did not register");
    return;
  }
  const double kSeconds = std::max(1.0, 5.0 * static_cast<double>(bench_n()) / 1e6);
  double total = 0, cpu = 0;
  for (auto _ : state) {
    double c0 = cpu_seconds(g.head().pid());
    auto t0 = Clock::now();
    long done = RunSessions(g, durable, one_message, clients,
                            [&](std::uint64_t) { return seconds_since(t0) >= kSeconds; });
    double s = seconds_since(t0);
    if (done < 0) {
      state.SkipWithError("a session failed");
      return;
    }
    cpu += cpu_seconds(g.head().pid()) - c0;
    total += static_cast<double>(done);
    state.SetIterationTime(s);
    state.counters["sessions_per_s"] = static_cast<double>(done) / s;
  }
  state.counters["head_cpu_us_per_session"] = total > 0 ? 1e6 * cpu / total : 0;
  if (one_message) {
    // The floor, in the same run with the grid stopped: a session is at
    // least one round trip client -> head -> node and back (a bare relay
    // with as many clients, in processes as the grid's are).
    grid.reset();
    double floor = bare_relay_round_trips_per_s(clients, 2.0);
    state.counters["relay_round_trips_per_s"] = floor;
    state.counters["x_relay"] = floor > 0 ? state.counters["sessions_per_s"] / floor : 0;
  }
}

// 100,000 (ZGRID_BENCH_N / 10) complete durable sessions kept (sealed, not
// purged): the head's RSS with them, and after a restart that recovers them.
void BM_DurableSessionsKept(benchmark::State& state) {
  const std::uint64_t n = std::max<std::uint64_t>(1'000, bench_n() / 10);
  for (auto _ : state) {
    Grid g;
    StartSessionsGrid(g, true);
    if (!g.wait_nodes(1)) {
      state.SkipWithError("node did not register");
      return;
    }
    double rss0 = static_cast<double>(rss_kib(g.head().pid()));
    auto t0 = Clock::now();
    long done = RunSessions(g, true, false, 16, [&](std::uint64_t d) { return d >= n; });
    double s = seconds_since(t0);
    if (done < 0) {
      state.SkipWithError("a session failed");
      return;
    }
    state.SetIterationTime(s);
    auto conn = g.connect();
    auto st = conn->grid_status();
    double kept = st.ok() ? static_cast<double>(st->u64("sessions")) : 0;
    double rss = static_cast<double>(rss_kib(g.head().pid()));
    auto r0 = Clock::now();
    g.restart_head();
    double recover_s = seconds_since(r0);
    state.counters["sessions_kept"] = kept;
    state.counters["sessions_per_s"] = static_cast<double>(done) / s;
    state.counters["head_rss_MiB"] = rss / 1024;
    state.counters["head_rss_KiB_per_session"] = (rss - rss0) / std::max(1.0, kept);
    state.counters["head_rss_after_restart_MiB"] =
        static_cast<double>(rss_kib(g.head().pid())) / 1024;
    state.counters["restart_s"] = recover_s;
  }
}

void BM_PurgeStorm(benchmark::State& state) {
  // 10,000 at the full ZGRID_BENCH_N; 1,000 in the smoke run.
  const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(state.range(0)),
                                              std::max<std::size_t>(1'000, bench_n() / 100));
  for (auto _ : state) {
    Grid g;
    StartSessionsGrid(g, true);
    if (!g.wait_nodes(1)) {
      state.SkipWithError("node did not register");
      return;
    }
    zgrid::testing::Pipeline p(g.frontend());
    auto made = p.submit_sessions(n, "echo", 120'000);
    auto conn = g.connect(30'000);
    bool answered = zgrid::testing::wait_until(
        [&] {
          auto st = conn->grid_status();
          return st.ok() && st->u64("done") >= n;
        },
        120'000, 50);
    if (made.ok != n || !answered) {
      state.SkipWithError("the sessions were not all made and answered");
      return;
    }
    std::vector<std::string> payloads(1'000, "p");
    std::vector<BrokerClient::Item> items;
    for (auto& pl : payloads) items.push_back({pl, pl});
    double ack_s = -1;
    std::thread other;
    auto t0 = Clock::now();
    auto purged = p.purge(made.session_ids, 300'000, [&] {
      other = std::thread([&] {
        auto c = g.connect(30'000);
        auto a0 = Clock::now();
        if (BrokerClient::submit(*c, {"echo", true, 0}, "other", items).ok())
          ack_s = seconds_since(a0);
      });
    });
    double s = seconds_since(t0);
    other.join();
    if (purged.ok != n || ack_s < 0) {
      state.SkipWithError("a purge or the other client's submit failed");
      return;
    }
    state.SetIterationTime(s);
    state.counters["purges_per_s"] = static_cast<double>(n) / s;
    state.counters["other_submit_ack_s"] = ack_s;
    state.counters["sessions"] = static_cast<double>(n);
  }
}

void BM_LoneRequestVsRelay(benchmark::State& state) {
  Grid g;
  g.start_head({"--http", "off", "--log-level", "warn"});
  g.add_node({"--workers", "2", "--log-level", "warn"});
  if (!g.wait_nodes(1)) {
    state.SkipWithError("node did not register");
    return;
  }
  auto conn = g.connect();
  auto info = conn->create_session({"echo", false, 0});
  auto bc = BrokerClient::open(*conn, info->session_id, "lat");
  std::vector<double> us;
  zgrid::proto::Response r;
  std::uint64_t i = 0;
  // Where a lone request's CPU goes, process by process (the rest of the
  // latency is waiting: wake-ups and the wire).
  const double head0 = cpu_seconds(g.head().pid()), node0 = cpu_seconds(g.node(0).pid());
  rusage ru0{};
  getrusage(RUSAGE_THREAD, &ru0);
  for (auto _ : state) {
    std::string p = std::to_string(i++);
    auto t0 = Clock::now();
    (void)(*bc)->send(p, p);
    (void)(*bc)->flush();
    auto ok = (*bc)->next_response(&r, 10'000);
    double s = seconds_since(t0);
    if (!ok.ok() || !*ok || r.user_data != p || r.data != p) {
      state.SkipWithError("lost a lone request");
      return;
    }
    state.SetIterationTime(s);
    us.push_back(s * 1e6);
  }
  const double n_req = std::max<double>(1, static_cast<double>(us.size()));
  rusage ru1{};
  getrusage(RUSAGE_THREAD, &ru1);
  auto tv = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec);
  };
  state.counters["head_cpu_us"] = 1e6 * (cpu_seconds(g.head().pid()) - head0) / n_req;
  state.counters["node_cpu_us"] = 1e6 * (cpu_seconds(g.node(0).pid()) - node0) / n_req;
  state.counters["client_thread_cpu_us"] =
      1e6 * (tv(ru1.ru_utime) + tv(ru1.ru_stime) - tv(ru0.ru_utime) - tv(ru0.ru_stime)) / n_req;
  auto relay = bare_relay_us(static_cast<int>(us.size()), false);
  auto rtt = bare_relay_us(static_cast<int>(us.size()), true);
  double p50 = percentile(us, 0.5), relay50 = percentile(relay, 0.5);
  state.counters["p50_us"] = p50;
  state.counters["p99_us"] = percentile(us, 0.99);
  state.counters["relay_p50_us"] = relay50;
  state.counters["relay_p99_us"] = percentile(relay, 0.99);
  state.counters["zmq_rtt_p50_us"] = percentile(rtt, 0.5);
  state.counters["x_relay"] = relay50 > 0 ? p50 / relay50 : 0;
}

// Figures 4 and 5's floor, in the same run (bench/bare_head.hpp): the
// stream of BM_HeadDispatch through the real head, then through a bare head
// (scale_bench itself, started as the head is) with the same client
// (StreamEcho: a zgrid BrokerClient), the same simulators (`zgrid-node
// --simulate`, credit 2 x per_msg) and the same messages, but none of the
// head's logic. Each run has a grid of its own. CPU of the head process,
// of this process (the client) and of the simulators, per answered request.
struct DispatchRun {
  double head_us = 0, client_us = 0, sims_us = 0, req_per_s = 0, tasks_per_msg = 0;
  const char* error = nullptr;
};

DispatchRun RunDispatch(bool bare, int nodes, int per_msg, std::size_t n) {
  DispatchRun out;
  Grid g;
  if (bare) g.set_head_launcher({zgrid::bench::self_exe(), zgrid::bench::kBareHeadFlag});
  g.start_head(
      {"--http", "off", "--log-level", "warn", "--max-task-batch", std::to_string(per_msg)});
  auto sims = AddSims(g, nodes, std::max(2, 2 * per_msg), "s");
  if (!zgrid::bench::wait_node_count(g, static_cast<std::uint64_t>(nodes), 120'000)) {
    out.error = "simulated nodes did not all register";
    return out;
  }
  auto conn = g.connect(30'000);
  auto sims_cpu = [&] {
    double c = 0;
    for (std::size_t i : sims) c += cpu_seconds(g.node(i).pid());
    return c;
  };
  double h0 = cpu_seconds(g.head().pid()), c0 = self_cpu_seconds(), s0 = sims_cpu();
  auto t0 = Clock::now();
  std::size_t got = StreamEcho(*conn, n);
  auto t1 = Clock::now();
  double s = seconds_since(t0);
  // For a profile of the stream alone (perf record -k CLOCK_MONOTONIC, then
  // perf script --pid PID --time FROM,TO): steady_clock is CLOCK_MONOTONIC.
  if (std::getenv("ZGRID_BENCH_MARKS"))
    std::fprintf(stderr, "scale_bench: %s PID %d streamed from %.6f to %.6f\n",
                 bare ? "bare head" : "zgrid-head", static_cast<int>(g.head().pid()),
                 std::chrono::duration<double>(t0.time_since_epoch()).count(),
                 std::chrono::duration<double>(t1.time_since_epoch()).count());
  double per = got > 0 ? 1e6 / static_cast<double>(got) : 0;
  out.head_us = (cpu_seconds(g.head().pid()) - h0) * per;
  out.client_us = (self_cpu_seconds() - c0) * per;
  out.sims_us = (sims_cpu() - s0) * per;
  out.req_per_s = static_cast<double>(got) / s;
  if (got != n) out.error = bare ? "lost answers (bare head)" : "lost answers";
  double tasks = 0, messages = 0;
  StopSims(g, sims, &tasks, &messages);
  out.tasks_per_msg = messages > 0 ? tasks / messages : 0;
  return out;
}

void BM_HeadDispatchVsFloor(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  const int per_msg = static_cast<int>(state.range(1));
  // As many requests as BM_HeadDispatch streams.
  const std::size_t n = DispatchRequests(per_msg);
  for (auto _ : state) {
    DispatchRun head = RunDispatch(false, nodes, per_msg, n);
    DispatchRun floor = RunDispatch(true, nodes, per_msg, n);
    if (head.error || floor.error) {
      state.SkipWithError(head.error ? head.error : floor.error);
      return;
    }
    state.SetIterationTime(static_cast<double>(n) / head.req_per_s);
    state.counters["head_cpu_us_per_req"] = head.head_us;
    state.counters["floor_cpu_us_per_req"] = floor.head_us;
    state.counters["x_floor"] = floor.head_us > 0 ? head.head_us / floor.head_us : 0;
    state.counters["head_req_per_s"] = head.req_per_s;
    state.counters["floor_req_per_s"] = floor.req_per_s;
    state.counters["head_client_cpu_us"] = head.client_us;
    state.counters["floor_client_cpu_us"] = floor.client_us;
    state.counters["head_sims_cpu_us"] = head.sims_us;
    state.counters["floor_sims_cpu_us"] = floor.sims_us;
    state.counters["head_tasks_per_msg"] = head.tasks_per_msg;
    state.counters["floor_tasks_per_msg"] = floor.tasks_per_msg;
    state.counters["requests"] = static_cast<double>(n);
  }
}

}  // namespace

BENCHMARK(BM_HeadDispatch)
    ->ArgNames({"nodes", "per_msg"})
    ->ArgsProduct({{10, 1'000, 10'000}, {1, 4, 64}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_TenThousandNodes)
    ->ArgName("nodes")
    ->Arg(10'000)
    ->UseManualTime()
    ->Unit(benchmark::kSecond)
    ->Iterations(1);
BENCHMARK(BM_SessionsPerSecond)
    ->ArgNames({"durable", "clients", "submit"})
    ->ArgsProduct({{0, 1}, {16, 64}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_DurableSessionsKept)->UseManualTime()->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK(BM_PurgeStorm)
    ->ArgName("sessions")
    ->Arg(10'000)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_LoneRequestVsRelay)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(2000);
// 256 a message: where the floor would stand with bigger task messages.
BENCHMARK(BM_HeadDispatchVsFloor)
    ->ArgNames({"nodes", "per_msg"})
    ->ArgsProduct({{10, 10'000}, {4, 64}})
    ->Args({10, 256})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

int main(int argc, char** argv) {
  return zgrid::bench::run_benchmarks(argc, argv);
}
