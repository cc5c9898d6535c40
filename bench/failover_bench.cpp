// Failover (docs/operations.md, "Failover"; docs/benchmarks.md):
//
// BM_Takeover: a pair of heads on one data directory, two nodes and the
// clients given both heads. A durable session keeps the nodes busy and a
// fetcher reads its results as they come. Each round the active head's
// machine "dies" — SIGSTOP: no more renewals, no RST to its peers, exactly
// what a power loss looks like from outside (SIGKILL on the same machine
// would be seen at once, head/lease.hpp) — and the round measures, from
// that moment: the standby holding the lease and serving (takeover_ms), a
// new durable session accepted through the client library
// (first_session_ms), the first result of the running session delivered to
// the fetcher (first_result_ms), and the first result a node returns to the
// new head (node_flow_ms). Then the dead head is killed and started again
// as a standby. Medians and worst cases over ZGRID_BENCH_TAKEOVERS rounds
// (default 20).
//
// BM_StandbyRatio: throughput of a durable and of an interactive session
// on a head with a standby beside it against one without, interleaved in one
// run (three rounds each, medians).
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bench/grid_fixture.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid::bench {
namespace {

using testing::HeadProcess;
using testing::Process;

Millis now_ms() {
  return SteadyClock::instance().now_ms();
}

int takeovers_wanted() {
  const char* v = std::getenv("ZGRID_BENCH_TAKEOVERS");
  return v ? std::max(1, std::atoi(v)) : 20;
}

client::ClientOptions options(const std::string& heads, Millis timeout) {
  client::ClientOptions o;
  o.head = heads;
  o.timeout_ms = timeout;
  return o;
}

void BM_Takeover(benchmark::State& state) {
  testing::TempDir dir;
  std::string data = dir.file("data");
  std::vector<std::string> flags{"--log-level", "warn", "--http", "off"};
  HeadProcess heads[2] = {HeadProcess(dir, "a", data, flags), HeadProcess(dir, "b", data, flags)};
  heads[0].start();
  if (!heads[0].wait_role("active", 10'000)) {
    state.SkipWithError("no active head");
    return;
  }
  heads[1].start();
  std::string fronts = heads[0].frontend() + "," + heads[1].frontend();
  std::string backs = heads[0].backend() + "," + heads[1].backend();
  std::vector<std::unique_ptr<Process>> nodes;
  for (int i = 0; i < 2; ++i)
    nodes.push_back(
        std::make_unique<Process>(std::vector<std::string>{ZGRID_NODE_BIN, "--head", backs,
                                                           "--workers", "2", "--log-level", "warn"},
                                  dir.file("node" + std::to_string(i) + ".log")));
  auto conn = client::Connection::open(options(fronts, 30'000));
  if (!conn.ok() || !testing::wait_until(
                        [&] {
                          auto n = (*conn)->nodes();
                          return n.ok() && n->size() == 2;
                        },
                        20'000, 20)) {
    state.SkipWithError("nodes did not register");
    return;
  }
  // The busy session: 2 ms sleeps on 4 workers, far more than the run needs.
  {
    std::ofstream f(dir.file("work"));
    for (int i = 0; i < 400'000; ++i) f << "2\n";
  }
  auto sub = testing::run_cli({"--head", fronts, "submit", "--durable", "--quiet", "--service",
                               "sleep", "--file", dir.file("work")},
                              "", 120'000);
  if (sub.code != 0) {
    state.SkipWithError(("submit failed: " + sub.err).c_str());
    return;
  }
  std::string sid = sub.out.substr(0, 32);
  // The fetcher: the time of each page of results it receives.
  std::atomic<bool> stop{false};
  std::atomic<Millis> last_result{0};
  std::thread fetcher([&] {
    auto c = client::Connection::open(options(fronts, 60'000));
    if (!c.ok()) return;
    std::uint64_t cursor = 0;
    while (!stop.load()) {
      auto page = (*c)->fetch(sid, cursor, 4096, 200);
      if (!page.ok()) continue;
      if (!page->responses.empty()) last_result.store(now_ms());
      cursor = page->next_cursor;
    }
  });
  std::vector<double> takeover, first_session, first_result, node_flow;
  int rounds = takeovers_wanted();
  for (auto _ : state) {
    for (int r = 0; r < rounds; ++r) {
      int a = heads[0].role() == "active" ? 0 : 1;
      HeadProcess& dead = heads[a];
      HeadProcess& next = heads[1 - a];
      // Work flowing before the death.
      Millis t = now_ms();
      testing::wait_until([&] { return last_result.load() > t; }, 10'000, 5);
      Millis t0 = now_ms();
      dead.process().signal(SIGSTOP);
      std::atomic<Millis> session_at{0};
      std::thread opener([&] {
        while (session_at.load() == 0 && now_ms() - t0 < 30'000) {
          auto c = client::Connection::open(options(fronts, 2'000));
          if (!c.ok()) continue;
          proto::CreateSession cs;
          cs.service = "sleep";
          cs.durable = true;
          auto info = (*c)->create_session(cs);
          if (info.ok()) {
            session_at.store(now_ms());
            (void)(*c)->close_session(info->session_id, proto::CloseMode::kPurge);
          }
        }
      });
      bool ok = next.wait_role("active", 20'000);
      Millis t_active = now_ms();
      // The new head's own counter: results from nodes since it started.
      Millis t_node = 0;
      {
        auto direct = client::Connection::open(options(next.frontend(), 5'000));
        testing::wait_until(
            [&] {
              if (!direct.ok()) return true;
              auto g = (*direct)->grid_status();
              if (g.ok() && g->u64("done") > 0) t_node = now_ms();
              return t_node != 0;
            },
            20'000, 5);
      }
      testing::wait_until([&] { return last_result.load() > t_active; }, 20'000, 5);
      Millis t_result = last_result.load();
      opener.join();
      if (!ok || t_node == 0 || session_at.load() == 0 || t_result <= t_active) {
        state.SkipWithError("a takeover did not complete");
        stop = true;
        fetcher.join();
        return;
      }
      takeover.push_back(static_cast<double>(t_active - t0));
      first_session.push_back(static_cast<double>(session_at.load() - t0));
      first_result.push_back(static_cast<double>(t_result - t0));
      node_flow.push_back(static_cast<double>(t_node - t0));
      // The dead machine comes back: a standby again.
      dead.kill_now();
      dead.start();
      dead.wait_role("standby", 10'000);
    }
    state.SetIterationTime(1);
  }
  stop = true;
  fetcher.join();
  (void)(*conn)->close_session(sid, proto::CloseMode::kPurge);
  auto worst = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
  state.counters["takeovers"] = static_cast<double>(takeover.size());
  state.counters["takeover_ms_median"] = percentile(takeover, 0.5);
  state.counters["takeover_ms_worst"] = worst(takeover);
  state.counters["first_session_ms_median"] = percentile(first_session, 0.5);
  state.counters["first_session_ms_worst"] = worst(first_session);
  state.counters["first_result_ms_median"] = percentile(first_result, 0.5);
  state.counters["first_result_ms_worst"] = worst(first_result);
  state.counters["node_flow_ms_median"] = percentile(node_flow, 0.5);
  state.counters["node_flow_ms_worst"] = worst(node_flow);
}

// Args: durable.
void BM_StandbyRatio(benchmark::State& state) {
  bool durable = state.range(0) != 0;
  const Inputs& in = inputs(0);
  testing::Grid alone, paired;
  alone.start_durable_head({"--log-level", "warn", "--http", "off"});
  paired.start_durable_head({"--log-level", "warn", "--http", "off"});
  HeadProcess standby(paired.dir(), "standby", paired.data_dir(),
                      {"--log-level", "warn", "--http", "off"});
  standby.start();
  if (standby.role() != "standby") {
    state.SkipWithError("the second head is not a standby");
    return;
  }
  std::string workers = std::to_string(std::max(1u, std::thread::hardware_concurrency()));
  alone.add_node({"--workers", workers, "--log-level", "warn"});
  paired.add_node({"--workers", workers, "--log-level", "warn"});
  if (!alone.wait_nodes(1) || !paired.wait_nodes(1)) {
    state.SkipWithError("nodes did not register");
    return;
  }
  auto ac = alone.connect(30'000);
  auto pc = paired.connect(30'000);
  std::vector<double> without, with;
  std::vector<proto::Response> got;
  for (auto _ : state) {
    for (int round = 0; round < 3; ++round) {
      for (bool pair : {false, true}) {
        auto& conn = pair ? *pc : *ac;
        double s =
            durable ? run_durable(conn, in, 1024, &got) : run_interactive(conn, in, 1024, &got);
        if (!all_correct(state, in, got)) return;
        (pair ? with : without).push_back(static_cast<double>(in.text.size()) / s);
        state.SetIterationTime(s);
      }
    }
  }
  state.counters["req_per_s_alone"] = percentile(without, 0.5);
  state.counters["req_per_s_with_standby"] = percentile(with, 0.5);
  state.counters["x_with_standby"] = percentile(with, 0.5) / percentile(without, 0.5);
}

BENCHMARK(BM_Takeover)->UseManualTime()->Unit(benchmark::kSecond)->Iterations(1);
BENCHMARK(BM_StandbyRatio)
    ->ArgNames({"durable"})
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace
}  // namespace zgrid::bench

int main(int argc, char** argv) {
  return zgrid::bench::run_benchmarks(argc, argv);
}
