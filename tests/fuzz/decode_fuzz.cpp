// libFuzzer target over the wire decoder: every byte string must decode to a
// value or a Status, never crash, hang or allocate without bound, and what
// decodes must lie inside the documented field ranges (docs/protocol.md,
// "Field ranges"): a value the decoder let through out of range traps.
// Built and run by scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"

namespace {
void check(bool in_range) {
  if (!in_range) __builtin_trap();
}
bool within(std::uint64_t v, std::uint64_t lo, std::uint64_t hi) {
  return v >= lo && v <= hi;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace zgrid;
  using namespace zgrid::proto;
  Envelope env;
  if (!decode_envelope(data, size, &env).ok()) return 0;
  (void)check_version(env);
  const Reader fields = env.fields;
  auto again = [&] { env.fields = fields; };
  Send send;
  if (decode_send(env, &send).ok()) {
    check(within(send.first_seq, 1, kMaxSeq));
    check(send.items.size() <= kMaxBatchItems);
  }
  again();
  Submit submit;
  if (decode_submit(env, &submit).ok()) {
    check(within(submit.create.client_idle_timeout_ms, 0, kMaxDurationMs) &&
          within(submit.create.task_timeout_ms, 0, kMaxDurationMs) &&
          within(submit.create.deadline_ms, 0, kMaxDurationMs));
    check(submit.items.size() <= kMaxBatchItems && submit.client_id.size() <= kMaxNameLength);
  }
  again();
  Submitted submitted;
  if (decode_submitted(env, &submitted).ok())
    check(static_cast<int>(submitted.info.state) <= 3 &&
          within(submitted.first_request_id, 0, kMaxSeq) &&
          within(submitted.count, 0, kMaxBatchItems) &&
          submitted.statuses.size() <= kMaxBatchItems);
  again();
  Tasks tasks;
  if (decode_tasks(env, &tasks).ok()) {
    check(within(tasks.timeout_ms, 0, kMaxDurationMs));
    for (const auto& t : tasks.items) check(t.payload.size() <= kMaxPayload);
  }
  again();
  Results results;
  if (decode_results(env, &results).ok())
    for (const auto& r : results.items) check(r.data.size() <= kMaxPayload);
  again();
  Register reg;
  if (decode_register(env, &reg).ok()) {
    check(within(reg.pid, 0, kMaxPid) && within(reg.workers, 1, kMaxWorkers) &&
          within(reg.capacity, 1, kMaxCapacity));
    for (const auto& ad : reg.service_info)
      check(within(ad.task_timeout_ms, 0, kMaxDurationMs) && ad.max_retries >= -1 &&
            ad.max_retries <= kMaxRetriesLimit);
  }
  again();
  Heartbeat hb;
  if (decode_heartbeat(env, &hb).ok())
    check(within(hb.capacity, 0, kMaxCapacity) && within(hb.stuck, 0, kMaxWorkers));
  again();
  Registered rd;
  if (decode_registered(env, &rd).ok())
    check(within(rd.heartbeat_ms, 1, kMaxHeartbeatMs) && within(rd.misses, 1, kMaxHeartbeatMisses));
  again();
  Ack ack;
  if (decode_ack(env, &ack).ok())
    check(within(ack.first_seq, 1, kMaxSeq) && within(ack.count, 0, kMaxBatchItems) &&
          within(ack.first_request_id, 0, kMaxSeq));
  again();
  CreateSession cs;
  if (decode_create_session(env, &cs).ok())
    check(within(cs.client_idle_timeout_ms, 0, kMaxDurationMs) &&
          within(cs.task_timeout_ms, 0, kMaxDurationMs) &&
          within(cs.deadline_ms, 0, kMaxDurationMs) && cs.token.size() <= kMaxNameLength);
  again();
  Fetch fetch;
  if (decode_fetch(env, &fetch).ok())
    check(within(fetch.cursor, 0, kMaxSeq) && within(fetch.max, 0, kMaxFetchPage) &&
          within(fetch.wait_ms, 0, kMaxDurationMs));
  again();
  ClientRef ref;
  if (decode_client_ref(env, &ref).ok()) check(within(ref.value, 0, kMaxSeq));
  again();
  ClientOpened co;
  if (decode_client_opened(env, &co).ok()) check(within(co.acked_seq, 0, kMaxSeq));
  again();
  OpenClient oc;
  if (decode_open_client(env, &oc).ok())
    check(oc.session_id.size() <= kMaxNameLength && oc.token.size() <= kMaxNameLength);
  again();
  Close cl;
  if (decode_close(env, &cl).ok()) check(static_cast<int>(cl.mode) <= 2);
  again();
  SessionInfo si;
  if (decode_session_info(env, &si).ok()) check(static_cast<int>(si.state) <= 3);
  again();
  Error err;
  (void)decode_error(env, &err);
  again();
  Reader items = env.fields.array();
  std::vector<Response> responses;
  (void)decode_response_items(items, &responses);
  return 0;
}
