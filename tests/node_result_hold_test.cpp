// node/result_hold.hpp: which workers' results messages the I/O thread sends
// at once and which wait (at most ResultHold::kHoldMs) for the next ones.
#include <gtest/gtest.h>

#include <string>
#include <vector>

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
  h.add(1, true, Msg("a"), 200, &out);
  h.add(1, true, Msg("b"), 201, &out);
  EXPECT_TRUE(out.empty());
  h.add(1, false, Msg("c"), 202, &out);
  EXPECT_EQ(Texts(&out), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(h.empty());
}

TEST(NodeResultHold, HeldMessagesGoAtTheDeadlineWhateverTheWorkersRun) {
  // A worker said more was coming, then started a long task: what it sent
  // waits kHoldMs at most, counted from the oldest held message.
  ResultHold h;
  std::vector<zmq::message_t> out;
  h.add(1, true, Msg("a"), 1000, &out);
  EXPECT_EQ(h.due_in(1000), ResultHold::kHoldMs);
  h.add(1, true, Msg("b"), 1003, &out);
  EXPECT_EQ(h.due_in(1003), ResultHold::kHoldMs - 3);
  h.take_due(1004, &out);
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

}  // namespace
}  // namespace zgrid::node
