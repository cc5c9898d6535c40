// node/prefetch: the adaptive credit per worker from measured task time.
#include <gtest/gtest.h>

#include "node/prefetch.hpp"

namespace zgrid::node {
namespace {

TEST(Prefetch, AboutFiveMillisecondsOfWorkPerWorkerWithinBounds) {
  // 1 µs tasks: 5,000 would do; capped at 4,096.
  EXPECT_EQ(next_prefetch(64, 1'000 * 100, 100), 4096u);
  // 100 µs tasks: 50.
  EXPECT_EQ(next_prefetch(4096, 100'000 * 10, 10), 50u);
  // 1 s tasks: 0.005 -> the minimum, 4.
  EXPECT_EQ(next_prefetch(64, 1'000'000'000ull * 3, 3), 4u);
  // Zero-time tasks count as 1 ns each, not as a division by zero.
  EXPECT_EQ(next_prefetch(64, 0, 1000), 4096u);
}

TEST(Prefetch, NothingMeasuredOrASmallChangeKeepsTheCurrentValue) {
  EXPECT_EQ(next_prefetch(64, 0, 0), 64u);
  // 5e6 / 60e3 = 83: within 1.5x of 64, not worth a heartbeat.
  EXPECT_EQ(next_prefetch(64, 60'000 * 10, 10), 64u);
  // 5e6 / 40e3 = 125: beyond 1.5x of 64.
  EXPECT_EQ(next_prefetch(64, 40'000 * 10, 10), 125u);
  // Down: 5e6 / 120e3 = 41: within 1.5x of 61? 41 * 3 = 123 > 122 = 61 * 2.
  EXPECT_EQ(next_prefetch(61, 120'000 * 10, 10), 61u);
  EXPECT_EQ(next_prefetch(64, 120'000 * 10, 10), 41u);
}

TEST(Prefetch, ThePolicyBelongsToTheCaller) {
  PrefetchPolicy p;
  p.min = 1;
  p.max = 10;
  p.queue_time_ns = 1e6;
  EXPECT_EQ(next_prefetch(5, 1'000 * 10, 10, p), 10u);
  EXPECT_EQ(next_prefetch(5, 10'000'000ull * 10, 10, p), 1u);
}

}  // namespace
}  // namespace zgrid::node
