// head/lease: who holds a data directory (failover). Claims are exclusive
// and epochs grow; a standby waits out an unrenewed lease by its own clock,
// takes a released one, or one whose holder's process on this machine is
// gone, at once; a newer epoch ends the holder's fence at its next renewal;
// release stops the fence.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "head/lease.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid::head {
namespace {

using testing::TempDir;
using testing::wait_until;

LeaseRecord Self(const std::string& name) {
  LeaseRecord r;
  r.instance = name;
  r.host = "host-" + name;
  r.boot_id = boot_id();
  r.pid_ns = pid_namespace();
  r.pid = static_cast<std::uint64_t>(getpid());
  r.frontend = "tcp://" + name + ":5555";
  r.backend = "tcp://" + name + ":5556";
  return r;
}

LeaseOptions Fast() {
  return LeaseOptions{20, 300, 10};
}

std::unique_ptr<Lease> Open(const TempDir& d, const std::string& name, LeaseOptions o = Fast()) {
  auto l = Lease::open(d.file("data"), o, Self(name));
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return std::move(l).value();
}

// An epoch file written as another machine's head would (its boot id is not
// ours: only the timeout can end it).
void WriteForeign(const TempDir& d, std::uint64_t epoch, std::uint64_t counter) {
  std::filesystem::create_directories(d.file("data/lease"));
  std::ofstream f(d.file("data/lease/epoch-" + std::to_string(epoch)));
  f << "epoch=" << epoch << "\ncounter=" << counter
    << "\nstate=held\ninstance=x\nhost=elsewhere\nboot_id=not-this-machine\npid_ns=pid:[1]\npid=1"
       "\nfrontend=tcp://elsewhere:5555\nbackend=tcp://elsewhere:5556\nhttp=\n";
}

TEST(Lease, TheFirstHeadClaimsEpochOneAndTheSecondStaysStandby) {
  TempDir d;
  std::filesystem::create_directories(d.file("data"));
  auto a = Open(d, "a");
  auto b = Open(d, "b");
  auto pa = a->poll();
  ASSERT_TRUE(pa.ok());
  EXPECT_EQ(*pa, Lease::Poll::kActive);
  EXPECT_TRUE(a->valid());
  EXPECT_EQ(a->epoch(), 1u);
  EXPECT_FALSE(a->took_over());
  for (int i = 0; i < 20; ++i) {
    auto pb = b->poll();
    ASSERT_TRUE(pb.ok());
    EXPECT_EQ(*pb, Lease::Poll::kStandby);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a renewing holder: 400 ms
  }
  EXPECT_FALSE(b->valid());
  EXPECT_EQ(b->epoch(), 1u);
  EXPECT_EQ(b->holder().host, "host-a");
  EXPECT_EQ(b->holder().frontend, "tcp://a:5555");
}

// Two heads started at once: the loser finds the winner's epoch file made
// but its record not yet written. It is standby and reports the epoch it
// saw, not 0 (Failover.OfTwoHeadsStartedAtOnceExactlyOneIsActive failed once
// on this: a standby's endpoints file said epoch=0).
TEST(Lease, AStandbyThatFindsAClaimBeingWrittenReportsItsEpoch) {
  TempDir d;
  std::filesystem::create_directories(d.file("data/lease"));
  { std::ofstream f(d.file("data/lease/epoch-1")); }  // created, nothing written yet
  auto b = Open(d, "b");
  auto pb = b->poll();
  ASSERT_TRUE(pb.ok());
  EXPECT_EQ(*pb, Lease::Poll::kStandby);
  EXPECT_FALSE(b->valid());
  EXPECT_EQ(b->epoch(), 1u);
}

TEST(Lease, AnUnrenewedLeaseIsTakenAfterTheTimeoutNotBefore) {
  TempDir d;
  WriteForeign(d, 3, 17);
  auto b = Open(d, "b");
  Millis t0 = boottime_ms();
  auto p = b->poll();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, Lease::Poll::kStandby);
  ASSERT_TRUE(wait_until([&] { return *b->poll() == Lease::Poll::kActive; }, 5'000, 10));
  EXPECT_GE(boottime_ms() - t0, Fast().timeout_ms);
  EXPECT_EQ(b->epoch(), 4u);
  EXPECT_TRUE(b->took_over());
  EXPECT_TRUE(std::filesystem::exists(d.file("data/lease/epoch-4")));
}

TEST(Lease, ARenewalRestartsTheStandbysClock) {
  TempDir d;
  WriteForeign(d, 1, 1);
  auto b = Open(d, "b");
  Millis t0 = boottime_ms();
  // The foreign holder renews every 100 ms for 900 ms (three timeouts).
  for (std::uint64_t c = 2; boottime_ms() - t0 < 900; ++c) {
    auto p = b->poll();
    ASSERT_TRUE(p.ok());
    ASSERT_EQ(*p, Lease::Poll::kStandby) << "taken while renewed";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    WriteForeign(d, 1, c);
  }
  EXPECT_TRUE(wait_until([&] { return *b->poll() == Lease::Poll::kActive; }, 5'000, 10));
}

TEST(Lease, AReleasedLeaseIsTakenAtOnce) {
  TempDir d;
  std::filesystem::create_directories(d.file("data"));
  LeaseOptions slow{100, 60'000, 10};
  auto a = Open(d, "a", slow);
  ASSERT_EQ(*a->poll(), Lease::Poll::kActive);
  auto b = Open(d, "b", slow);
  ASSERT_EQ(*b->poll(), Lease::Poll::kStandby);
  a->release();
  EXPECT_FALSE(a->valid());
  EXPECT_FALSE(a->ensure_valid());  // released: the fence says no from now on
  Millis t0 = boottime_ms();
  EXPECT_EQ(*b->poll(), Lease::Poll::kActive);
  EXPECT_LT(boottime_ms() - t0, 1'000);
  EXPECT_EQ(b->epoch(), 2u);
  EXPECT_FALSE(b->took_over());  // handed over, not taken over
}

TEST(Lease, AHolderOnThisMachineWhoseProcessIsGoneIsTakenAtOnce) {
  TempDir d;
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  std::filesystem::create_directories(d.file("data/lease"));
  {
    LeaseRecord r = Self("gone");
    std::ofstream f(d.file("data/lease/epoch-1"));
    f << "epoch=1\ncounter=9\nstate=held\ninstance=g\nhost=h\nboot_id=" << r.boot_id
      << "\npid_ns=" << r.pid_ns << "\npid=" << child << "\nfrontend=\nbackend=\nhttp=\n";
  }
  LeaseOptions slow{100, 60'000, 10};
  auto b = Open(d, "b", slow);
  EXPECT_EQ(*b->poll(), Lease::Poll::kActive);
  EXPECT_EQ(b->epoch(), 2u);
  // A live process (ours) is not taken early.
  TempDir d2;
  std::filesystem::create_directories(d2.file("data"));
  auto a = Open(d2, "a", slow);
  ASSERT_EQ(*a->poll(), Lease::Poll::kActive);
  auto c = Open(d2, "c", slow);
  EXPECT_EQ(*c->poll(), Lease::Poll::kStandby);
}

TEST(Lease, ANewerEpochEndsTheHoldersFenceAtItsNextRenewal) {
  TempDir d;
  std::filesystem::create_directories(d.file("data"));
  auto a = Open(d, "a");
  ASSERT_EQ(*a->poll(), Lease::Poll::kActive);
  EXPECT_TRUE(a->ensure_valid());
  WriteForeign(d, 2, 1);  // another head claimed epoch 2
  EXPECT_TRUE(wait_until([&] { return !a->valid(); }, 2'000, 5));
  EXPECT_FALSE(a->ensure_valid());
  EXPECT_NE(a->lost_reason().find("epoch 2 was claimed by elsewhere"), std::string::npos)
      << a->lost_reason();
}

TEST(Lease, ALeaseDirectoryThatCannotBeMadeIsAnError) {
  TempDir d;
  std::filesystem::create_directories(d.file("data"));
  std::ofstream(d.file("data/lease")) << "not a directory";
  auto l = Lease::open(d.file("data"), Fast(), Self("a"));
  if (l.ok()) {
    auto p = (*l)->poll();
    EXPECT_FALSE(p.ok());
    EXPECT_NE(p.status().message().find("lease"), std::string::npos) << p.status().message();
  } else {
    EXPECT_NE(l.status().message().find("lease"), std::string::npos) << l.status().message();
  }
}

}  // namespace
}  // namespace zgrid::head
