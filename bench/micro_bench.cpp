// Micro-benchmarks of the grid's per-request costs, each reported per
// request (items_per_second; scripts/bench.sh adds ns per item): the codec (a client batch
// encoded and decoded; a response batch built and decoded) and the journal
// (a durable request batch appended and synced, as the head does it).
//
//   build/bench/micro_bench
// Where the grid's time goes as a whole is in grid_bench (CPU per process).
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "head/journal.hpp"
#include "tests/support/grid_process.hpp"

namespace {

using namespace zgrid;

// `n` random numbers below 2^31 as text: the inputs of the interactive benchmark.
std::vector<std::string> numbers(std::size_t n) {
  std::mt19937_64 rng(31);
  std::vector<std::string> v;
  for (std::size_t i = 0; i < n; ++i) v.push_back(std::to_string(1 + rng() % ((1ULL << 31) - 1)));
  return v;
}

proto::Send make_send(const std::vector<std::string>& nums) {
  proto::Send m;
  m.session_id = "0123456789abcdef0123456789abcdef";
  m.client_id = "bench";
  m.first_seq = 1;
  for (const auto& s : nums) m.items.push_back({s, s});
  return m;
}

void per_request(benchmark::State& state, std::size_t n) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// A client's Send batch (user data = payload = the number), encoded.
void BM_CodecSendEncode(benchmark::State& state) {
  auto nums = numbers(static_cast<std::size_t>(state.range(0)));
  proto::Send m = make_send(nums);
  for (auto _ : state) {
    zmq::message_t msg = proto::encode_send(1, m);
    benchmark::DoNotOptimize(msg.data());
  }
  per_request(state, nums.size());
}

// The same batch decoded, as the head does (views into the frame, limits on).
void BM_CodecSendDecode(benchmark::State& state) {
  auto nums = numbers(static_cast<std::size_t>(state.range(0)));
  zmq::message_t msg = proto::encode_send(1, make_send(nums));
  for (auto _ : state) {
    Envelope env;
    proto::Send out;
    if (!decode_envelope(msg.data(), msg.size(), &env).ok() || !proto::decode_send(env, &out).ok())
      state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(out.items.data());
  }
  per_request(state, nums.size());
}

// A batch of responses built (head) and decoded (client).
void BM_CodecResponses(benchmark::State& state) {
  auto nums = numbers(static_cast<std::size_t>(state.range(0)));
  std::vector<proto::Response> out;
  for (auto _ : state) {
    Writer w = proto::begin(proto::kResponses, 0, 1, nums.size() * 48);
    w.array(static_cast<std::uint32_t>(nums.size()));
    for (std::size_t i = 0; i < nums.size(); ++i)
      proto::write_response_item(w, i + 1, nums[i], "", nums[i]);
    zmq::message_t msg = w.finish();
    Envelope env;
    out.clear();
    if (!decode_envelope(msg.data(), msg.size(), &env).ok()) state.SkipWithError("bad envelope");
    Reader items = env.fields.array();
    if (!proto::decode_response_items(items, &out).ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(out.data());
  }
  per_request(state, nums.size());
}

// Durable: one request batch (the received frame, as the head journals it)
// plus its index record, submitted to the journal and waited for (synced).
// Args: requests per batch, batches in flight before waiting.
void BM_JournalAppend(benchmark::State& state) {
  std::size_t n = static_cast<std::size_t>(state.range(0));
  std::size_t depth = static_cast<std::size_t>(state.range(1));
  auto nums = numbers(n);
  zmq::message_t frame = proto::encode_send(1, make_send(nums));
  std::string value(frame.data<char>(), frame.size());
  testing::TempDir dir;
  zmq::context_t ctx(1);
  auto j = head::Journal::open(dir.file("data"), ctx, {});
  if (!j.ok()) {
    state.SkipWithError(j.status().message().c_str());
    return;
  }
  std::uint64_t key = 1;
  std::string sid = "0123456789abcdef0123456789abcdef";
  for (auto _ : state) {
    std::uint64_t last = 0;
    for (std::size_t d = 0; d < depth; ++d) {
      head::JournalOp op;
      op.puts.emplace_back(head::jkey::numbered(head::jkey::kRequests, sid, key), value);
      op.puts.emplace_back(head::jkey::numbered(head::jkey::kIndex, sid, key), "idx");
      key += n;
      last = (*j)->submit(std::move(op));
    }
    // Wait for the completion of the last op (ops complete in order).
    std::uint64_t done = 0;
    bool failed = false;
    while (done < last && !failed) {
      zmq::pollitem_t item{static_cast<void*>(*(*j)->completion_socket()), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(1000));
      for (const auto& c : (*j)->take_completions()) {
        done = c.seq;
        failed = failed || !c.ok;
      }
    }
    if (failed) {
      state.SkipWithError("journal write failed");
      break;
    }
  }
  per_request(state, n * depth);
  auto st = (*j)->stats();
  state.counters["req_per_fsync"] =
      st.syncs > 0 ? static_cast<double>(state.iterations() * n * depth) / st.syncs : 0;
}

BENCHMARK(BM_CodecSendEncode)->Arg(1024)->Arg(4096);
BENCHMARK(BM_CodecSendDecode)->Arg(1024)->Arg(4096);
BENCHMARK(BM_CodecResponses)->Arg(1024);
BENCHMARK(BM_JournalAppend)
    ->ArgNames({"batch", "inflight"})
    ->Args({1024, 1})
    ->Args({1024, 8})
    ->UseRealTime()  // the sync happens on the journal thread
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
