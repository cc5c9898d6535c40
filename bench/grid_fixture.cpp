#include "bench/grid_fixture.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "bench/bare_head.hpp"
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
  bo.flush_batches = true;  // every batch flushed as it is sent
  auto bc = BrokerClient::open(conn, info->session_id, "bench", bo);
  for (const auto& s : in.text)
    if (!(*bc)->send(s, s).ok()) break;
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

namespace {
// A "Name:   N kB" line of /proc/PID/status, in KiB (0 if absent).
std::uint64_t status_kib(pid_t pid, std::string_view name) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(name, 0) == 0) return std::strtoull(line.c_str() + name.size(), nullptr, 10);
  return 0;
}
}  // namespace

std::uint64_t head_rss_peak_kib(pid_t pid) {
  return status_kib(pid, "VmHWM:");
}

namespace {

constexpr const char* kRelayBroker = "--zgrid-relay-broker";
constexpr const char* kRelayWorker = "--zgrid-relay-worker";

// The relay's broker process: binds a front and a back ROUTER on loopback,
// prints their endpoints, then forwards client -> "w" -> client until killed.
int relay_broker() {
  zmq::context_t ctx(1);
  zmq::socket_t front(ctx, zmq::socket_type::router), back(ctx, zmq::socket_type::router);
  for (auto* s : {&front, &back}) {
    s->set(zmq::sockopt::linger, 0);
    s->bind("tcp://127.0.0.1:*");
  }
  std::printf("%s %s\n", front.get(zmq::sockopt::last_endpoint).c_str(),
              back.get(zmq::sockopt::last_endpoint).c_str());
  std::fflush(stdout);
  zmq::pollitem_t it[] = {{static_cast<void*>(front), 0, ZMQ_POLLIN, 0},
                          {static_cast<void*>(back), 0, ZMQ_POLLIN, 0}};
  for (;;) {
    zmq::poll(it, 2, std::chrono::milliseconds(1000));
    for (int k = 0; k < 64; ++k) {  // [client, body] -> ["w", client, body]
      std::vector<zmq::message_t> f;
      if (!zmq::recv_multipart(front, std::back_inserter(f), zmq::recv_flags::dontwait)) break;
      f.insert(f.begin(), zmq::message_t(std::string("w")));
      zmq::send_multipart(back, f);
    }
    for (int k = 0; k < 64; ++k) {  // ["w", client, body] -> [client, body]
      std::vector<zmq::message_t> f;
      if (!zmq::recv_multipart(back, std::back_inserter(f), zmq::recv_flags::dontwait)) break;
      f.erase(f.begin());
      zmq::send_multipart(front, f);
    }
  }
}

// The relay's worker process: answers each message with itself.
int relay_worker(const char* backend) {
  zmq::context_t ctx(1);
  zmq::socket_t w(ctx, zmq::socket_type::dealer);
  w.set(zmq::sockopt::linger, 0);
  w.set(zmq::sockopt::routing_id, "w");
  w.connect(backend);
  for (;;) {
    std::vector<zmq::message_t> f;
    if (!zmq::recv_multipart(w, std::back_inserter(f))) return 0;
    zmq::send_multipart(w, f);
  }
}

}  // namespace

double bare_relay_round_trips_per_s(int clients, double seconds) {
  int out[2];
  if (::pipe(out) != 0) return 0;
  std::string exe = self_exe();
  pid_t broker = ::fork();
  if (broker == 0) {
    ::dup2(out[1], 1);
    ::execl(exe.c_str(), exe.c_str(), kRelayBroker, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string line;
  char c;
  pollfd pfd{out[0], POLLIN, 0};
  while (line.find('\n') == std::string::npos && ::poll(&pfd, 1, 10'000) > 0 &&
         ::read(out[0], &c, 1) == 1)
    line += c;
  ::close(out[0]);
  std::istringstream ends(line);
  std::string fep, bep;
  ends >> fep >> bep;
  pid_t worker = -1;
  if (!bep.empty()) {
    worker = ::fork();
    if (worker == 0) {
      ::execl(exe.c_str(), exe.c_str(), kRelayWorker, bep.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  double rate = 0;
  if (worker > 0) {
    std::atomic<long> done{0};
    std::atomic<bool> counting{false}, stop{false};
    std::vector<std::thread> ts;
    for (int i = 0; i < clients; ++i)
      ts.emplace_back([&] {
        zmq::context_t ctx(1);
        zmq::socket_t s(ctx, zmq::socket_type::dealer);
        s.set(zmq::sockopt::linger, 0);
        s.set(zmq::sockopt::rcvtimeo, 200);
        s.connect(fep);
        while (!stop.load()) {
          s.send(zmq::str_buffer("session"), zmq::send_flags::none);
          zmq::message_t m;
          // Lost only before the worker has connected (the broker's ROUTER
          // drops what it cannot route yet): sent again.
          if (!s.recv(m)) continue;
          if (counting.load()) done.fetch_add(1);
        }
      });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // connections warm
    counting = true;
    auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    rate = static_cast<double>(done.load()) / seconds_since(t0);
    stop = true;
    for (auto& t : ts) t.join();
  }
  for (pid_t p : {broker, worker}) {
    if (p <= 0) continue;
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  return rate;
}

std::uint64_t node_count(client::Connection& conn) {
  auto st = conn.grid_status();
  return st.ok() ? st->u64("nodes") : 0;
}

bool wait_node_count(testing::Grid& g, std::uint64_t n, std::int64_t timeout_ms) {
  auto conn = g.connect(30'000);
  return testing::wait_until([&] { return node_count(*conn) == n; }, timeout_ms, 20);
}

std::string self_exe() {
  return std::filesystem::read_symlink("/proc/self/exe").string();
}

int run_benchmarks(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == kBareHeadFlag) return run_bare_head(argc - 1, argv + 1);
  if (argc >= 2 && std::string(argv[1]) == kRelayBroker) return relay_broker();
  if (argc >= 3 && std::string(argv[1]) == kRelayWorker) return relay_worker(argv[2]);
  testing::Grid::set_verify_tables(false);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

std::uint64_t rss_kib(pid_t pid) {
  return status_kib(pid, "VmRSS:");
}

// `n` round trips (µs) through a bare relay: client DEALER -> broker
// ROUTER (front) / ROUTER (back) -> worker DEALER, and back; three contexts
// and threads as the client, head and node are three processes. With
// `direct`, one bare DEALER -> ROUTER echo round trip instead.
std::vector<double> bare_relay_us(int n, bool direct) {
  std::vector<double> us;
  try {
    zmq::context_t cctx(1), bctx(1), wctx(1);
    zmq::socket_t front(bctx, zmq::socket_type::router), back(bctx, zmq::socket_type::router);
    for (auto* s : {&front, &back}) {
      s->set(zmq::sockopt::linger, 0);
      s->bind("tcp://127.0.0.1:*");
    }
    std::string fep = front.get(zmq::sockopt::last_endpoint);
    std::string bep = back.get(zmq::sockopt::last_endpoint);
    std::atomic<bool> stop{false};
    zmq::socket_t worker(wctx, zmq::socket_type::dealer);
    worker.set(zmq::sockopt::linger, 0);
    worker.set(zmq::sockopt::routing_id, "w");
    worker.connect(bep);
    std::thread wt([&] {
      zmq::pollitem_t it{static_cast<void*>(worker), 0, ZMQ_POLLIN, 0};
      while (!stop.load()) {
        if (zmq::poll(&it, 1, std::chrono::milliseconds(100)) == 0) continue;
        std::vector<zmq::message_t> f;
        (void)zmq::recv_multipart(worker, std::back_inserter(f));
        zmq::send_multipart(worker, f);  // [client id, body] back to the broker
      }
    });
    std::thread bt([&] {
      zmq::pollitem_t it[] = {{static_cast<void*>(front), 0, ZMQ_POLLIN, 0},
                              {static_cast<void*>(back), 0, ZMQ_POLLIN, 0}};
      while (!stop.load()) {
        if (zmq::poll(it, 2, std::chrono::milliseconds(100)) == 0) continue;
        std::vector<zmq::message_t> f;
        if (it[0].revents & ZMQ_POLLIN) {  // [client, body] -> ["w", client, body]
          (void)zmq::recv_multipart(front, std::back_inserter(f));
          if (direct) {
            zmq::send_multipart(front, f);
            continue;
          }
          f.insert(f.begin(), zmq::message_t(std::string("w")));
          zmq::send_multipart(back, f);
        }
        if (it[1].revents & ZMQ_POLLIN) {  // ["w", client, body] -> [client, body]
          f.clear();
          (void)zmq::recv_multipart(back, std::back_inserter(f));
          f.erase(f.begin());
          zmq::send_multipart(front, f);
        }
      }
    });
    zmq::socket_t client(cctx, zmq::socket_type::dealer);
    client.set(zmq::sockopt::linger, 0);
    client.set(zmq::sockopt::rcvtimeo, 2000);
    client.connect(fep);
    for (int i = 0; i < n + 50; ++i) {  // the first 50 warm the connections
      auto t0 = Clock::now();
      client.send(zmq::str_buffer("ping"), zmq::send_flags::none);
      zmq::message_t m;
      if (!client.recv(m)) break;
      if (i >= 50) us.push_back(seconds_since(t0) * 1e6);
    }
    stop = true;
    wt.join();
    bt.join();
  } catch (const zmq::error_t&) {
    us.clear();
  }
  return us;
}

}  // namespace zgrid::bench
