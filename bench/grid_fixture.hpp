// What the end-to-end benchmarks share (bench/grid_bench.cpp,
// bench/http_bench.cpp): the input numbers, one interactive or durable run
// through a real grid with every response kept, the check that each is
// right, and CPU and memory readings of a process. Single-threaded.
#pragma once

#include <benchmark/benchmark.h>
#include <sys/types.h>
#include <zgrid/client.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace zgrid::testing {
class Grid;
}

namespace zgrid::bench {

using Clock = std::chrono::steady_clock;

struct Inputs {
  std::vector<std::uint64_t> numbers;
  std::vector<std::string> text;
};

// ZGRID_BENCH_N, default 1,000,000.
std::size_t bench_n();
// Input classes: 0 = uniform in [1, 2^31), 1 = uniform 64-bit (a tenth as many).
const Inputs& inputs(int cls);
double seconds_since(Clock::time_point t);
// User + system CPU seconds of a process, from /proc.
double cpu_seconds(pid_t pid);
double self_cpu_seconds();
std::uint64_t head_rss_peak_kib(pid_t pid);
std::uint64_t rss_kib(pid_t pid);  // VmRSS now
// The `p` quantile (0..1) of `v`; 0 when empty.
double percentile(std::vector<double> v, double p);
// `n` round trips (µs) through a bare ZeroMQ relay with no zgrid code:
// client DEALER -> broker ROUTER / ROUTER -> worker DEALER and back, each in
// its own context and thread; with `direct`, DEALER -> ROUTER echo only.
// Empty if ZeroMQ failed.
std::vector<double> bare_relay_us(int n, bool direct);
// The floor under sessions per second: `clients` threads, each with its own
// context and DEALER (as each session's client has its own connection), do
// request -> broker -> worker -> broker -> reply round trips for `seconds`;
// the broker and the worker are processes of their own (this benchmark's
// binary, run with a role: run_benchmarks starts it), as the head and the
// node are. Round trips a second (0 if the relay would not start). A session
// made by a submit that brings its answers is one such round trip.
double bare_relay_round_trips_per_s(int clients, double seconds);

// One interactive run: a session, every number one request, every response
// into *got. Returns the seconds it took; purges the session after.
double run_interactive(client::Connection& conn, const Inputs& in, std::size_t batch,
                       std::vector<proto::Response>* got);
// One durable run: submit (flushing every batch) -> EndRequests (committed)
// -> every response fetched by session id. Returns seconds; purges after.
double run_durable(client::Connection& conn, const Inputs& in, std::size_t batch,
                   std::vector<proto::Response>* got, double* submit_s = nullptr);
// Outside the timed region: exactly one response per request, each correct
// (else the benchmark is marked with an error).
bool all_correct(benchmark::State& state, const Inputs& in,
                 const std::vector<proto::Response>& got);

// The nodes registered, by the head's status (0 if it does not answer);
// waits (bounded) until there are `n`. A bare head answers it too.
std::uint64_t node_count(client::Connection& conn);
bool wait_node_count(testing::Grid& g, std::uint64_t n, std::int64_t timeout_ms);

// This benchmark binary's own path: it is also started with a role (a bare
// relay's broker or worker, a bare head) by the benchmarks that need one.
std::string self_exe();

// main() of the end-to-end benchmarks: heads measured as they run in
// production (without the test suite's per-tick bookkeeping check). With a
// role as its first argument, it plays that role instead.
int run_benchmarks(int argc, char** argv);

}  // namespace zgrid::bench
