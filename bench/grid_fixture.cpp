#include "bench/grid_fixture.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "tests/support/grid_process.hpp"

namespace zgrid::bench {

using client::BrokerClient;

std::size_t bench_n() {
  const char* e = std::getenv("ZGRID_BENCH_N");
  return e ? std::strtoull(e, nullptr, 10) : 1'000'000;
}

// Input classes: 0 = uniform in [1, 2^31), 1 = uniform 64-bit.
const Inputs& inputs(int cls) {
  static Inputs in[2];
  Inputs& x = in[cls];
  if (x.numbers.empty()) {
    std::mt19937_64 rng(cls == 0 ? 20261122 : 64);
    std::size_t n = cls == 0 ? bench_n() : std::max<std::size_t>(1000, bench_n() / 10);
    for (std::size_t i = 0; i < n; ++i) {
      std::uint64_t v =
          cls == 0 ? 1 + rng() % ((1ULL << 31) - 1) : std::max<std::uint64_t>(1, rng());
      x.numbers.push_back(v);
      x.text.push_back(std::to_string(v));
    }
  }
  return x;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto rp = s.rfind(')');
  if (rp == std::string::npos) return 0;
  std::istringstream in(s.substr(rp + 2));
  std::string tok;
  double ut = 0, st = 0;
  for (int i = 3; i <= 15 && in >> tok; ++i) {
    if (i == 14) ut = std::stod(tok);
    if (i == 15) st = std::stod(tok);
  }
  return (ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  return cpu_seconds(getpid());
}

// One interactive run: a session, every number sent as one request, every
// response received (into *got). Returns the seconds it took; purges after.
double run_interactive(client::Connection& conn, const Inputs& in, std::size_t batch,
                       std::vector<proto::Response>* got) {
  got->clear();
  got->reserve(in.text.size());
  auto t0 = Clock::now();
  auto info = conn.create_session({"factorize", false, 0});
  if (!info.ok()) return 1e9;
  client::BrokerOptions bo;
  bo.batch_items = batch;
  auto bc = BrokerClient::open(conn, info->session_id, "bench", bo);
  proto::Response r;
  for (const auto& s : in.text) {
    if (!(*bc)->send(s, s).ok()) break;
    while ((*bc)->poll_response(&r)) got->push_back(std::move(r));
  }
  (void)(*bc)->end_requests();
  while (got->size() < in.text.size()) {
    auto ok = (*bc)->next_response(&r, 30'000);
    if (!ok.ok() || !*ok) break;
    got->push_back(std::move(r));
  }
  double s = seconds_since(t0);
  (void)conn.close_session(info->session_id, proto::CloseMode::kPurge);
  return s;
}

// One durable run: submit (flushing every batch) -> EndRequests (committed)
// -> every response fetched by session id. Returns seconds; purges after.
double run_durable(client::Connection& conn, const Inputs& in, std::size_t batch,
                   std::vector<proto::Response>* got, double* submit_s) {
  got->clear();
  got->reserve(in.text.size());
  auto t0 = Clock::now();
  auto info = conn.create_session({"factorize", true, 0});
  if (!info.ok()) return 1e9;
  client::BrokerOptions bo;
  bo.batch_items = batch;
  auto bc = BrokerClient::open(conn, info->session_id, "bench", bo);
  std::size_t i = 0;
  for (const auto& s : in.text) {
    if (!(*bc)->send(s, s).ok()) break;
    if (++i % batch == 0) (void)(*bc)->flush();
  }
  (void)(*bc)->end_requests();
  if (submit_s != nullptr) *submit_s = seconds_since(t0);  // committed
  std::uint64_t cursor = 0;
  while (true) {
    auto page = conn.fetch(info->session_id, cursor, 16384, 1000);
    if (!page.ok()) break;
    for (auto& r : page->responses) got->push_back(std::move(r));
    cursor = page->next_cursor;
    if (page->complete && page->responses.empty()) break;
  }
  double s = seconds_since(t0);
  (void)conn.close_session(info->session_id, proto::CloseMode::kPurge);
  return s;
}

// Outside the timed region: exactly one response per request, each correct.
bool all_correct(benchmark::State& state, const Inputs& in,
                 const std::vector<proto::Response>& got) {
  if (got.size() != in.text.size()) {
    state.SkipWithError("missing responses");
    return false;
  }
  std::vector<char> seen(in.text.size() + 1, 0);
  for (const auto& r : got) {
    if (r.request_id == 0 || r.request_id > in.text.size() || seen[r.request_id]++ || !r.ok() ||
        r.user_data != in.text[r.request_id - 1] ||
        !testing::is_factorization(in.numbers[r.request_id - 1], r.data)) {
      state.SkipWithError("wrong or duplicate response");
      return false;
    }
  }
  return true;
}

std::uint64_t head_rss_peak_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  return 0;
}

int run_benchmarks(int argc, char** argv) {
  testing::Grid::set_verify_tables(false);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace zgrid::bench
