// Throughput of the factorization kernel per input class, next to coreutils `factor` on the very
// same inputs. Each class is a fixed-seed set; results are verified (product and primality)
// outside the timed region. The coreutils runs time the whole `factor < file > /dev/null` (the
// shell start-up is noise next to the run) and report a "zgrid_over_coreutils" ratio counter.
//
//   g++ -std=c++20 -O2 -I. services/factorize_kernel.cpp bench/kernel_bench.cpp
//       -lbenchmark -pthread -o /tmp/fk_bench && /tmp/fk_bench
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "services/factorize_kernel.hpp"

namespace {

using u64 = std::uint64_t;
using zgrid::factor::factorize;
using zgrid::factor::is_prime;
using zgrid::factor::kMaxFactors;

enum Class { kRandom31 = 0, kRandom64 = 1, kSemiprime32x32 = 2, kNumClasses = 3 };

bool slow_is_prime32(u64 n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (u64 d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

u64 random_prime32(std::mt19937_64& rng) {
  while (true) {
    const u64 v = (rng() >> 32) | (u64{1} << 31) | 1;
    if (slow_is_prime32(v)) return v;
  }
}

struct InputSet {
  std::vector<u64> values;
  std::string path;  // the same values as a file for coreutils, removed at exit

  ~InputSet() {
    if (!path.empty()) unlink(path.c_str());
  }
};

const InputSet& inputs(int cls) {
  static InputSet sets[kNumClasses];
  InputSet& s = sets[cls];
  if (!s.values.empty()) return s;
  std::mt19937_64 rng(12345 + cls);
  // ZGRID_BENCH_SCALE shrinks the sets (scripts/bench.sh --smoke).
  const char* sc = std::getenv("ZGRID_BENCH_SCALE");
  const double scale = sc ? std::max(0.0001, std::atof(sc)) : 1.0;
  auto sized = [&](std::size_t n) { return std::max<std::size_t>(100, n * scale); };
  switch (cls) {
    case kRandom31:
      s.values.resize(sized(200000));
      for (u64& v : s.values) v = rng() >> 33;
      break;
    case kRandom64:
      s.values.resize(sized(20000));
      for (u64& v : s.values) v = rng();
      break;
    default:
      s.values.resize(sized(2000));
      for (u64& v : s.values) v = random_prime32(rng) * random_prime32(rng);
      break;
  }
  char path[] = "/tmp/zgrid_kernel_bench_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) {
    std::perror("mkstemp");
    std::exit(1);
  }
  std::string text;
  for (u64 v : s.values) text += std::to_string(v) + "\n";
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    std::perror("write");
    std::exit(1);
  }
  close(fd);
  s.path = path;
  return s;
}

// Verified once per class, untimed: factors multiply back to n and are prime.
bool verify(const std::vector<u64>& values) {
  u64 out[kMaxFactors];
  for (u64 n : values) {
    const int count = factorize(n, out);
    unsigned __int128 product = 1;
    for (int i = 0; i < count; ++i) {
      if (!is_prime(out[i]) || (i > 0 && out[i] < out[i - 1])) return false;
      product *= out[i];
    }
    if (n > 1 && product != n) return false;
  }
  return true;
}

double g_zgrid_rate[kNumClasses] = {};

double time_zgrid_once(const std::vector<u64>& values) {
  u64 out[kMaxFactors];
  const auto start = std::chrono::steady_clock::now();
  for (u64 n : values) benchmark::DoNotOptimize(factorize(n, out));
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  return static_cast<double>(values.size()) / took.count();
}

void BM_Zgrid(benchmark::State& state) {
  const int cls = static_cast<int>(state.range(0));
  const InputSet& set = inputs(cls);
  if (!verify(set.values)) {
    state.SkipWithError("wrong factorization");
    return;
  }
  u64 out[kMaxFactors];
  std::size_t items = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    for (u64 n : set.values) {
      benchmark::DoNotOptimize(factorize(n, out));
      benchmark::ClobberMemory();
    }
    items += set.values.size();
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  g_zgrid_rate[cls] = static_cast<double>(items) / took.count();
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
}

void BM_Coreutils(benchmark::State& state) {
  const int cls = static_cast<int>(state.range(0));
  const InputSet& set = inputs(cls);
  const std::string cmd = "/usr/bin/factor < " + set.path + " > /dev/null";
  std::size_t items = 0;
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const int rc = std::system(cmd.c_str());
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    if (rc != 0) {
      state.SkipWithError("factor failed");
      return;
    }
    state.SetIterationTime(took.count());
    seconds += took.count();
    items += set.values.size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  // The zgrid run of the same class normally precedes this one; measure here if it was filtered.
  if (g_zgrid_rate[cls] == 0) g_zgrid_rate[cls] = time_zgrid_once(set.values);
  const double coreutils_rate = static_cast<double>(items) / seconds;
  state.counters["zgrid_over_coreutils"] = g_zgrid_rate[cls] / coreutils_rate;
}

// Interleave zgrid and coreutils per class so the ratio compares runs close in time.
BENCHMARK(BM_Zgrid)->Arg(kRandom31)->ArgName("rand31")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Coreutils)
    ->Arg(kRandom31)
    ->ArgName("rand31")
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Zgrid)->Arg(kRandom64)->ArgName("rand64")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Coreutils)
    ->Arg(kRandom64)
    ->ArgName("rand64")
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Zgrid)->Arg(kSemiprime32x32)->ArgName("semi32x32")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Coreutils)
    ->Arg(kSemiprime32x32)
    ->ArgName("semi32x32")
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
