// The `zgrid` command line against coreutils `factor` on the very same
// numbers, in the same run (issue 31, figures 2 and 7): what a user meets who
// pipes a file of numbers through the grid instead of through `factor`.
//
//   ./build/bench/cli_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// One durable head (--http off) and one node with the machine's cores, on
// loopback. Each iteration is one round, in this order, each writing its
// results to a file and timed as a whole command (process start included):
//   factor < numbers > out                                  (one core)
//   zgrid submit --service factorize --file numbers -q > out (interactive)
//   the interactive command again through a bare head      (figure 7's floor)
//   zgrid submit --durable ... -q; zgrid fetch SID -q > out  (durable: committed, then fetched)
// and reports each rate and the ratios to `factor` of the same round. The
// bare head (bench/bare_head.hpp) has the head's sockets and message shapes
// and none of its logic, with a node of its own like the grid's: what the
// same client and node reach with a head that costs nothing beyond ZeroMQ. The
// outputs are checked after the round, outside the timing: one line per
// input, every factorization right, the inputs' multiset exactly.
// ZGRID_BENCH_N sets the count (default 1,000,000).
#include <benchmark/benchmark.h>
#include <sys/wait.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bare_head.hpp"
#include "bench/grid_fixture.hpp"
#include "tests/support/grid_process.hpp"

namespace {

using zgrid::bench::Clock;
using zgrid::bench::seconds_since;
using zgrid::testing::Grid;

// Runs `cmd` through the shell; its exit code, or -1.
// Its standard error goes to `err_log` (the commands' own progress lines).
int sh(const std::string& cmd, const std::string& err_log) {
  int rc = std::system((cmd + " 2>>'" + err_log + "'").c_str());
  return rc >= 0 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

// True when `path` holds one "N = p1 * p2 ..." line per input (zgrid's form)
// or "N: p1 p2 ..." (factor's), each a right factorization, and the Ns are
// exactly the inputs (as a multiset).
bool check_output(const std::string& path, std::vector<std::uint64_t> want, bool coreutils) {
  std::ifstream f(path);
  std::string line;
  std::vector<std::uint64_t> seen;
  seen.reserve(want.size());
  while (std::getline(f, line)) {
    std::uint64_t n = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), n);
    if (ec != std::errc()) return false;
    std::string_view rest(p, static_cast<std::size_t>(line.data() + line.size() - p));
    if (coreutils) {
      // "N: a b c" -> "a * b * c"
      if (!rest.starts_with(": ")) return false;
      std::string conv;
      for (char c : rest.substr(2)) conv += c == ' ' ? std::string(" * ") : std::string(1, c);
      if (!zgrid::testing::is_factorization(n, conv)) return false;
    } else {
      if (!rest.starts_with(" = ") || !zgrid::testing::is_factorization(n, rest.substr(3)))
        return false;
    }
    seen.push_back(n);
  }
  std::sort(seen.begin(), seen.end());
  std::sort(want.begin(), want.end());
  return seen == want;
}

void BM_CliVsFactor(benchmark::State& state) {
  const auto& in = zgrid::bench::inputs(0);
  Grid g;
  g.start_durable_head({"--http", "off", "--log-level", "warn"});
  g.add_node({"--log-level", "warn"});
  if (!g.wait_nodes(1, 30'000)) {
    state.SkipWithError("the node did not register");
    return;
  }
  // The floor of the interactive round: the same command through a bare
  // head (bench/bare_head.hpp: the head's sockets and message shapes, none
  // of its logic) to the same kind of node.
  Grid bare;
  bare.set_head_launcher({zgrid::bench::self_exe(), zgrid::bench::kBareHeadFlag});
  bare.start_head({"--http", "off", "--log-level", "warn"});
  bare.add_node({"--log-level", "warn"});
  if (!zgrid::bench::wait_node_count(bare, 1, 30'000)) {
    state.SkipWithError("the bare head's node did not register");
    return;
  }
  const std::string numbers = g.dir().file("numbers.txt");
  {
    std::ofstream f(numbers);
    for (const auto& s : in.text) f << s << '\n';
  }
  const std::string cli = std::string(ZGRID_CLI_BIN) + " --head " + quoted(g.frontend());
  const std::string bare_cli = std::string(ZGRID_CLI_BIN) + " --head " + quoted(bare.frontend());
  const std::string out_f = g.dir().file("factor.out"), out_i = g.dir().file("interactive.out"),
                    out_d = g.dir().file("durable.out"), out_b = g.dir().file("bare.out"),
                    sid_file = g.dir().file("sid"), err = g.dir().file("commands.err");
  const double n = static_cast<double>(in.numbers.size());
  for (auto _ : state) {
    auto t0 = Clock::now();
    int rc = sh("/usr/bin/factor < " + quoted(numbers) + " > " + quoted(out_f), err);
    double factor_s = seconds_since(t0);
    if (rc != 0) {
      state.SkipWithError("factor failed");
      return;
    }

    t0 = Clock::now();
    rc =
        sh(cli + " submit --service factorize -q --file " + quoted(numbers) + " > " + quoted(out_i),
           err);
    double inter_s = seconds_since(t0);
    if (rc != 0) {
      state.SkipWithError(
          ("zgrid submit (interactive) failed: " + zgrid::testing::read_file(err)).c_str());
      return;
    }

    t0 = Clock::now();
    rc = sh(bare_cli + " submit --service factorize -q --file " + quoted(numbers) + " > " +
                quoted(out_b),
            err);
    double bare_s = seconds_since(t0);
    if (rc != 0) {
      state.SkipWithError(
          ("zgrid submit through the bare head failed: " + zgrid::testing::read_file(err)).c_str());
      return;
    }

    t0 = Clock::now();
    rc = sh(cli + " submit --durable --service factorize -q --file " + quoted(numbers) + " > " +
                quoted(sid_file),
            err);
    std::string sid;
    {
      std::ifstream f(sid_file);
      std::getline(f, sid);
    }
    if (rc == 0 && !sid.empty())
      rc = sh(cli + " fetch -q " + quoted(sid) + " > " + quoted(out_d), err);
    double durable_s = seconds_since(t0);
    if (rc != 0 || sid.empty()) {
      state.SkipWithError(
          ("zgrid submit --durable / fetch failed: " + zgrid::testing::read_file(err)).c_str());
      return;
    }
    state.SetIterationTime(inter_s + durable_s);

    state.PauseTiming();
    bool ok = check_output(out_f, in.numbers, true) && check_output(out_i, in.numbers, false) &&
              check_output(out_d, in.numbers, false) && check_output(out_b, in.numbers, false);
    (void)sh(cli + " close --purge " + quoted(sid) + " > /dev/null", err);
    state.ResumeTiming();
    if (!ok) {
      state.SkipWithError("an output is wrong or incomplete");
      return;
    }
    state.counters["factor_per_s"] = n / factor_s;
    state.counters["interactive_per_s"] = n / inter_s;
    state.counters["durable_per_s"] = n / durable_s;
    state.counters["interactive_x_factor"] = factor_s / inter_s;
    state.counters["bare_head_x_factor"] = factor_s / bare_s;  // figure 7's floor
    state.counters["interactive_x_bare_head"] = bare_s / inter_s;
    state.counters["durable_x_factor"] = factor_s / durable_s;
  }
}

BENCHMARK(BM_CliVsFactor)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

int main(int argc, char** argv) {
  return zgrid::bench::run_benchmarks(argc, argv);
}
