// node/result_hold.hpp: which workers' results messages the I/O thread sends
// at once and which wait (at most ResultHold::kHoldMs) for the next ones,
// and how those sent together become one results message (within the
// outgoing batch limits of docs/protocol.md).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "node/result_hold.hpp"

namespace zgrid::node {
namespace {

zmq::message_t Msg(const std::string& s) {
  return zmq::message_t(s.data(), s.size());
}

std::vector<std::string> Texts(std::vector<zmq::message_t>* out) {
  std::vector<std::string> t;
  for (auto& m : *out) t.push_back(m.to_string());
  out->clear();
  return t;
}

TEST(NodeResultHold, NothingMoreComingSendsAtOnceWithWhatIsHeld) {
  ResultHold h;
  std::vector<zmq::message_t> out;
  h.add(1, /*more=*/false, Msg("lone"), 100, &out);
  EXPECT_EQ(Texts(&out), std::vector<std::string>{"lone"});
  // Within the hold (the same millisecond): "c" says nothing more is coming.
  h.add(1, true, Msg("a"), 200, &out);
  h.add(1, true, Msg("b"), 200, &out);
  EXPECT_TRUE(out.empty());
  h.add(1, false, Msg("c"), 200, &out);
  EXPECT_EQ(Texts(&out), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(h.empty());
}

TEST(NodeResultHold, HeldMessagesGoAtTheDeadlineWhateverTheWorkersRun) {
  // A worker said more was coming, then started a long task: what it sent
  // waits kHoldMs at most, counted from the oldest held message.
  ResultHold h;
  std::vector<zmq::message_t> out;
  constexpr Millis k = ResultHold::kHoldMs;
  h.add(1, true, Msg("a"), 1000, &out);
  EXPECT_EQ(h.due_in(1000), k);
  h.add(1, true, Msg("b"), 1000 + k - 1, &out);
  EXPECT_EQ(h.due_in(1000 + k - 1), 1);
  h.take_due(1000 + k - 1, &out);
  EXPECT_TRUE(out.empty());
  h.take_due(1000 + ResultHold::kHoldMs, &out);
  EXPECT_EQ(Texts(&out), (std::vector<std::string>{"a", "b"}));
  EXPECT_GT(h.due_in(2000), 1000) << "nothing held: no deadline";
  // One that comes past the deadline of the held ones sends them all.
  h.add(1, true, Msg("c"), 3000, &out);
  h.add(1, true, Msg("d"), 3000 + ResultHold::kHoldMs, &out);
  EXPECT_EQ(Texts(&out), (std::vector<std::string>{"c", "d"}));
}

TEST(NodeResultHold, AnotherGenerationSendsTheHeldOnesFirstAndTheyKeepTheirs) {
  ResultHold h;
  std::vector<zmq::message_t> out;
  h.add(1, true, Msg("old"), 10, &out);
  EXPECT_EQ(h.generation(), 1u);
  h.add(2, true, Msg("new"), 11, &out);
  EXPECT_EQ(Texts(&out), std::vector<std::string>{"old"});
  EXPECT_EQ(h.generation(), 2u);
  h.take_all(&out);
  EXPECT_EQ(Texts(&out), std::vector<std::string>{"new"});
}

// A results message as a worker builds it (array32 header) or as the I/O
// thread's inline runs do (a plain array header): tasks [first, first + n),
// each answered with `data_bytes` bytes.
zmq::message_t Results(std::uint64_t first, std::uint32_t n, std::size_t data_bytes = 3,
                       bool array32 = true) {
  Writer w = proto::begin(proto::kResults, 0, 1);
  std::size_t at = 0;
  if (array32)
    at = w.array32_placeholder();
  else
    w.array(n);
  const std::string data(data_bytes, 'x');
  for (std::uint32_t i = 0; i < n; ++i) w.array(3).u64(first + i).nil().bin(data);
  if (array32) w.patch_array32(at, n);
  return w.finish();
}

// The task ids of a results message, as the head decodes it.
std::vector<std::uint64_t> Ids(const zmq::message_t& m) {
  Envelope env;
  EXPECT_TRUE(decode_envelope(m.data(), m.size(), &env).ok());
  EXPECT_EQ(env.type, proto::kResults);
  proto::Results r;
  EXPECT_TRUE(proto::decode_results(env, &r).ok());
  std::vector<std::uint64_t> ids;
  for (const auto& x : r.items) ids.push_back(x.task_id);
  return ids;
}

std::vector<std::uint64_t> Range(std::uint64_t first, std::uint64_t n) {
  std::vector<std::uint64_t> v;
  for (std::uint64_t i = 0; i < n; ++i) v.push_back(first + i);
  return v;
}

TEST(NodeResultHold, ResultsSentTogetherShareOneMessageInTheOrderTheyCame) {
  ResultHold h;
  std::vector<zmq::message_t> out;
  h.add(1, true, Results(10, 2), 100, &out);
  h.add(1, true, Results(1, 1, 3, /*array32=*/false), 100, &out);  // small: inside the message_t
  h.add(1, true, Results(20, 40, 100, false), 100, &out);
  EXPECT_TRUE(out.empty());
  h.add(1, false, Results(5, 3), 100, &out);
  ASSERT_EQ(out.size(), 1u);
  std::vector<std::uint64_t> want = {10, 11, 1};
  for (auto id : Range(20, 40)) want.push_back(id);
  for (auto id : Range(5, 3)) want.push_back(id);
  EXPECT_EQ(Ids(out[0]), want);
  EXPECT_EQ(h.received(), 4u);
  EXPECT_EQ(h.sent(), 1u);
  // A lone message goes as it is: the same bytes.
  out.clear();
  zmq::message_t lone = Results(99, 1);
  const std::string bytes = lone.to_string();
  h.add(1, false, std::move(lone), 200, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to_string(), bytes);
}

TEST(NodeResultHold, HoldKeepsWhatIsDueUntilTakeDueThenSendsItAsOne) {
  // The I/O thread reads every worker message of a pass, then takes what is
  // due: messages that say nothing more is coming share one too.
  ResultHold h;
  std::vector<zmq::message_t> out;
  h.hold(1, false, Results(1, 2), 50, &out);
  h.hold(1, false, Results(3, 2), 50, &out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(h.due_in(50), 0);
  h.take_due(50, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Ids(out[0]), Range(1, 4));
  EXPECT_TRUE(h.empty());
}

TEST(NodeResultHold, AMergedMessageStaysWithinTheBatchLimits) {
  ResultHold h;
  std::vector<zmq::message_t> out;
  // 4 MiB of items at most: messages of 1.5 MiB (two 768 KiB results) go
  // two by two.
  const std::size_t big = 768u << 10;
  for (std::uint64_t k = 0; k < 5; ++k) h.add(1, true, Results(10 * k, 2, big), 10, &out);
  h.take_all(&out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(Ids(out[0]), (std::vector<std::uint64_t>{0, 1, 10, 11}));
  EXPECT_EQ(Ids(out[1]), (std::vector<std::uint64_t>{20, 21, 30, 31}));
  EXPECT_EQ(Ids(out[2]), (std::vector<std::uint64_t>{40, 41}));
  for (const auto& m : out) EXPECT_LE(m.size(), ResultHold::kMaxItemBytes + 64);
  out.clear();
  // kMaxBatchItems items at most: 3 messages of 30,000 go as 2 + 1.
  for (std::uint64_t k = 0; k < 3; ++k) h.add(1, true, Results(100'000 * k, 30'000, 0), 20, &out);
  h.take_all(&out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(Ids(out[0]).size(), 60'000u);
  EXPECT_EQ(Ids(out[1]), Range(200'000, 30'000));
  // A message over a limit by itself goes alone, unchanged.
  out.clear();
  h.add(1, true, Results(1, 1), 30, &out);
  h.add(1, true, Results(2, 5, 900u << 10), 30, &out);  // 4.4 MiB (a worker's may pass 4 MiB)
  h.add(1, false, Results(7, 1), 30, &out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(Ids(out[1]), Range(2, 5));
}

TEST(NodeResultHold, MessagesOfTwoGenerationsNeverShareOne) {
  ResultHold h;
  std::vector<zmq::message_t> out;
  h.add(1, true, Results(1, 2), 10, &out);
  h.add(1, true, Results(3, 2), 10, &out);
  EXPECT_TRUE(out.empty());
  h.add(2, true, Results(50, 1), 11, &out);  // a reconnect: the old ones go (or are dropped) first
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Ids(out[0]), Range(1, 4));
  EXPECT_EQ(h.generation(), 2u);
  out.clear();
  h.add(2, false, Results(51, 1), 12, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(Ids(out[0]), (std::vector<std::uint64_t>{50, 51}));
}

}  // namespace
}  // namespace zgrid::node
