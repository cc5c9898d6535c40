// libFuzzer target over the wire decoder: every byte string must decode to a
// value or a Status, never crash, hang or allocate without bound.
// Built and run by scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace zgrid;
  Envelope env;
  if (!decode_envelope(data, size, &env).ok()) return 0;
  (void)proto::check_version(env);
  const Reader fields = env.fields;
  auto again = [&] { env.fields = fields; };
  proto::Send send;
  (void)proto::decode_send(env, &send);
  again();
  proto::Tasks tasks;
  (void)proto::decode_tasks(env, &tasks);
  again();
  proto::Results results;
  (void)proto::decode_results(env, &results);
  again();
  proto::Register reg;
  (void)proto::decode_register(env, &reg);
  again();
  proto::Ack ack;
  (void)proto::decode_ack(env, &ack);
  again();
  proto::CreateSession cs;
  (void)proto::decode_create_session(env, &cs);
  again();
  proto::Fetch fetch;
  (void)proto::decode_fetch(env, &fetch);
  again();
  proto::ClientRef ref;
  (void)proto::decode_client_ref(env, &ref);
  again();
  proto::Error err;
  (void)proto::decode_error(env, &err);
  again();
  Reader items = env.fields.array();
  std::vector<proto::Response> responses;
  (void)proto::decode_response_items(items, &responses);
  return 0;
}
