// Stateful sessions on the node's side, in-process (no head, no node
// daemon): the built-in running_sum, the Host's session instances, plug-in
// ABI versions 1 and 2 with their session callbacks, and the exec bridge's
// session messages with tests/exec/test_worker.py.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "services/exec_bridge.hpp"
#include "services/host.hpp"
#include "services/plugin_host.hpp"
#include "services/registration.hpp"
#include "services/service.hpp"

namespace zgrid::svc {
namespace {

const std::string kSource = ZGRID_SOURCE_DIR;

// Polls `cond` every 5 ms for up to `ms`.
template <class F>
bool WaitFor(F cond, int ms = 5'000) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

// A private directory, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "zgrid-svc-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}

std::size_t Count(const std::vector<std::string>& lines, const std::string& line) {
  return static_cast<std::size_t>(std::count(lines.begin(), lines.end(), line));
}

const ServiceInfo* Find(const Registry& r, const std::string& name) {
  for (const auto& s : r.services())
    if (s.name == name) return &s;
  return nullptr;
}

Host::Hosted* Hosted(Host& host, const std::string& name) {
  for (const auto& h : host.services())
    if (h->info.name == name) return h.get();
  return nullptr;
}

// Runs `request` on `s`; "code: message" for a fault, else the result.
std::string Call(Service& s, std::string_view request, std::string_view op = "") {
  Output out;
  s.run(op, request, out);
  return out.fault_code.empty() ? out.data : out.fault_code + ": " + out.data;
}

// ---- running_sum -------------------------------------------------------------------

class RunningSumTest : public ::testing::Test {
 protected:
  void SetUp() override {
    register_builtins(registry_);
    const ServiceInfo* info = Find(registry_, "running_sum");
    ASSERT_NE(info, nullptr);
    EXPECT_TRUE(info->sessions);
    auto made = info->make();
    ASSERT_TRUE(made.ok());
    sum_ = std::move(made).value();
  }
  Registry registry_;
  std::unique_ptr<Service> sum_;
};

TEST_F(RunningSumTest, OnlyRunningSumOffersSessions) {
  for (const char* name : {"factorize", "echo", "sleep", "fail"}) {
    const ServiceInfo* info = Find(registry_, name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_FALSE(info->sessions) << name;
    auto s = info->make();
    ASSERT_TRUE(s.ok());
    Status st = (*s)->open_session("x.1");
    EXPECT_FALSE(st.ok()) << name;
    EXPECT_EQ(st.message(), "this service does not keep session state");
  }
}

TEST_F(RunningSumTest, PerCallFaultsWithAHint) {
  EXPECT_EQ(Call(*sum_, "5"),
            "invalid_argument: running_sum needs a stateful session (zgrid submit --stateful)");
}

TEST_F(RunningSumTest, SumsInOrderAndBadRequestsLeaveTheStateAlone) {
  ASSERT_TRUE(sum_->open_session("s.1").ok());
  EXPECT_EQ(Call(*sum_, "5"), "5");
  EXPECT_EQ(Call(*sum_, " -3 \n"), "2");
  EXPECT_EQ(Call(*sum_, "\t10\r\n"), "12");
  EXPECT_EQ(Call(*sum_, "-0"), "12");
  for (const char* bad : {"", "  ", "-", "+4", "abc", "1 2", "1.5", "0x10", "--1", "1-"}) {
    std::string got = Call(*sum_, bad);
    EXPECT_EQ(got.rfind("invalid_argument: running_sum takes one decimal integer", 0), 0u)
        << "'" << bad << "': " << got;
  }
  EXPECT_EQ(Call(*sum_, "99999999999999999999"),
            "invalid_argument: integer out of the 64-bit range");
  EXPECT_EQ(Call(*sum_, "0"), "12");  // none of the above counted
  sum_->close_session();
}

TEST_F(RunningSumTest, Int64EdgesAndOverflowLeaveTheStateAlone) {
  ASSERT_TRUE(sum_->open_session("s.1").ok());
  EXPECT_EQ(Call(*sum_, "9223372036854775807"), "9223372036854775807");
  std::string over = Call(*sum_, "1");
  EXPECT_EQ(over.rfind("invalid_argument: the running sum would overflow", 0), 0u) << over;
  EXPECT_EQ(Call(*sum_, "-9223372036854775807"), "0");
  EXPECT_EQ(Call(*sum_, "-9223372036854775808"), "-9223372036854775808");
  over = Call(*sum_, "-1");
  EXPECT_EQ(over.rfind("invalid_argument: the running sum would overflow", 0), 0u) << over;
  EXPECT_EQ(Call(*sum_, "9223372036854775808"),
            "invalid_argument: integer out of the 64-bit range");
  EXPECT_EQ(Call(*sum_, "9223372036854775807"), "-1");
}

TEST_F(RunningSumTest, AReplayGivesTheSameAnswers) {
  std::vector<std::string> requests{"3", "x", "-8", "9223372036854775807", "100", "7"};
  auto play = [&] {
    auto s = Find(registry_, "running_sum")->make();
    EXPECT_TRUE((*s)->open_session("s.1").ok());
    std::vector<std::string> answers;
    for (const auto& r : requests) answers.push_back(Call(**s, r));
    (*s)->close_session();
    return answers;
  };
  EXPECT_EQ(play(), play());
}

// ---- Host: session instances -------------------------------------------------------

struct Counters {
  std::atomic<int> made{0}, opened{0}, closed{0}, destroyed{0}, cancelled{0};
};

// Keeps the requests of its session; open_session refuses keys starting with "bad".
class Counting final : public Service {
 public:
  explicit Counting(Counters& c) : c_(c) { ++c_.made; }
  ~Counting() override { ++c_.destroyed; }
  Status open_session(std::string_view key) override {
    if (key.rfind("bad", 0) == 0)
      return Status::InvalidArgument("no sessions for " + std::string(key));
    ++c_.opened;
    key_ = std::string(key);
    return Status::OK();
  }
  void close_session() override { ++c_.closed; }
  void cancel() override { ++c_.cancelled; }
  void handle(std::string_view request, Output& out) override {
    state_ += std::string(request);
    out.data = key_ + ":" + state_;
  }

 private:
  Counters& c_;
  std::string key_;
  std::string state_;
};

class HostSessionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceInfo counting;
    counting.name = "counting";
    counting.sessions = true;
    counting.make = [this]() -> Result<std::unique_ptr<Service>> {
      return std::unique_ptr<Service>(std::make_unique<Counting>(c_));
    };
    ASSERT_TRUE(registry_.add(std::move(counting)).ok());
    ServiceInfo plain;
    plain.name = "plain";
    plain.make = [this]() -> Result<std::unique_ptr<Service>> {
      return std::unique_ptr<Service>(std::make_unique<Counting>(c_));
    };
    ASSERT_TRUE(registry_.add(std::move(plain)).ok());
    auto host = Host::start(registry_, {}, 2);
    ASSERT_TRUE(host.ok()) << host.status().ToString();
    host_ = std::move(host).value();
    counting_ = Hosted(*host_, "counting");
    plain_ = Hosted(*host_, "plain");
    ASSERT_NE(counting_, nullptr);
    pooled_ = c_.made.load();  // the pools: 2 + 2
  }

  std::string RunOn(std::string_view key, std::string_view request) {
    auto lease = host_->session(*counting_, key);
    if (!lease.ok()) return lease.status().ToString();
    return Call(*lease->get(), request);
  }

  Counters c_;
  Registry registry_;
  std::unique_ptr<Host> host_;
  Host::Hosted* counting_ = nullptr;
  Host::Hosted* plain_ = nullptr;
  int pooled_ = 0;
};

TEST_F(HostSessionsTest, FirstKeyMakesAndOpensAnInstanceTheSameKeyReusesIt) {
  EXPECT_EQ(pooled_, 4);
  EXPECT_EQ(c_.opened, 0);  // pooled instances are never opened
  EXPECT_EQ(RunOn("s1.1", "a"), "s1.1:a");
  EXPECT_EQ(c_.made, pooled_ + 1);
  EXPECT_EQ(c_.opened, 1);
  EXPECT_EQ(RunOn("s1.1", "b"), "s1.1:ab");
  EXPECT_EQ(RunOn("s2.1", "x"), "s2.1:x");  // another session, another instance
  EXPECT_EQ(RunOn("s1.1", "c"), "s1.1:abc");
  EXPECT_EQ(c_.made, pooled_ + 2);
  EXPECT_EQ(c_.opened, 2);
  EXPECT_EQ(host_->session_count(), 2u);
  {
    auto a = host_->session(*counting_, "s1.1");
    ASSERT_TRUE(a.ok());
    Service* first = a->get();
    a = host_->session(*counting_, "s2.1");  // lets s1.1 go
    ASSERT_TRUE(a.ok());
    EXPECT_NE(a->get(), first);
    auto again = host_->session(*counting_, "s1.1");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->get(), first);
  }
  EXPECT_EQ(c_.closed, 0);
}

TEST_F(HostSessionsTest, EndClosesExactlyOnceAndUnknownKeysAreIgnored) {
  EXPECT_EQ(RunOn("s1.1", "a"), "s1.1:a");
  host_->end_session("s1.1");
  EXPECT_EQ(host_->session_count(), 0u);
  ASSERT_TRUE(WaitFor([&] { return c_.destroyed == 1; }));
  EXPECT_EQ(c_.closed, 1);
  host_->end_session("s1.1");
  host_->end_session("never.1");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(c_.closed, 1);
  EXPECT_EQ(c_.destroyed, 1);
  // An ended key is never made again (a late task of a replay the head gave
  // up must not run on an empty state); the next number is a fresh instance.
  EXPECT_EQ(RunOn("s1.1", "z"), "unavailable: session instance s1.1 was ended");
  EXPECT_EQ(c_.opened, 1);
  EXPECT_EQ(RunOn("s1.2", "z"), "s1.2:z");
  EXPECT_EQ(c_.opened, 2);
  // Registering with a head again starts the numbers over.
  host_->end_all_sessions(1);
  EXPECT_TRUE(host_->session(*counting_, "s1.1", 1).ok());
}

TEST_F(HostSessionsTest, AnInstanceInUseIsClosedWhenItsTaskLetsGo) {
  auto lease = host_->session(*counting_, "s1.1");
  ASSERT_TRUE(lease.ok());
  host_->end_session("s1.1");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(c_.closed, 0);  // still running a task
  EXPECT_EQ(Call(*lease->get(), "late"), "s1.1:late");
  { auto gone = std::move(lease).value(); }
  EXPECT_EQ(c_.closed, 1);  // by the thread letting go, at once
  EXPECT_EQ(c_.destroyed, 1);
}

TEST_F(HostSessionsTest, OneTaskAtATimePerInstance) {
  auto lease = host_->session(*counting_, "s1.1");
  ASSERT_TRUE(lease.ok());
  std::atomic<bool> got{false};
  std::thread other([&] {
    auto second = host_->session(*counting_, "s1.1");
    EXPECT_TRUE(second.ok());
    got = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(got.load());
  // Another session is not held up.
  EXPECT_EQ(RunOn("s2.1", "x"), "s2.1:x");
  { auto done = std::move(lease).value(); }
  other.join();
  EXPECT_TRUE(got.load());
}

TEST_F(HostSessionsTest, AHigherInstanceNumberRetiresTheOlderOnes) {
  EXPECT_EQ(RunOn("ab.9", "a"), "ab.9:a");
  EXPECT_EQ(RunOn("ab.c.1", "b"), "ab.c.1:b");  // another session id, sharing a prefix
  EXPECT_EQ(RunOn("ab.10", "c"), "ab.10:c");
  ASSERT_TRUE(WaitFor([&] { return c_.closed == 1; }));
  EXPECT_EQ(host_->session_count(), 2u);
  EXPECT_EQ(RunOn("ab.c.1", "d"), "ab.c.1:bd");
  EXPECT_EQ(RunOn("ab.10", "e"), "ab.10:ce");
}

TEST_F(HostSessionsTest, EndAllClosesEveryInstanceAndRefusesOlderGenerations) {
  for (int i = 0; i < 5; ++i) {
    std::string key = std::string(1, 's').append(std::to_string(i)).append(".1");
    EXPECT_EQ(RunOn(key, "x"), key + ":x");
  }
  host_->end_all_sessions(7);
  EXPECT_EQ(host_->session_count(), 0u);
  ASSERT_TRUE(WaitFor([&] { return c_.closed == 5 && c_.destroyed == 5; }));
  auto stale = host_->session(*counting_, "s9.1", 6);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().code(), Code::kUnavailable);
  EXPECT_TRUE(host_->session(*counting_, "s9.1", 7).ok());
  EXPECT_EQ(host_->session_count(), 1u);
}

TEST_F(HostSessionsTest, AnOpenThatFailsFaultsEveryTaskOfItsKeyAndIsNeverClosed) {
  auto bad = host_->session(*counting_, "bad.1");
  ASSERT_FALSE(bad.ok());
  // Unavailable: the task faults `retryable`; the head starts a fresh
  // instance and charges the request a try.
  EXPECT_EQ(bad.status().code(), Code::kUnavailable);
  EXPECT_EQ(bad.status().message(),
            "cannot open a stateful session of service counting@1: no sessions for bad.1");
  auto again = host_->session(*counting_, "bad.1");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().message(), bad.status().message());
  EXPECT_EQ(c_.made, pooled_ + 1);  // made once, not per task
  host_->end_session("bad.1");
  ASSERT_TRUE(WaitFor([&] { return c_.destroyed == 1; }));
  EXPECT_EQ(c_.closed, 0);
}

TEST_F(HostSessionsTest, AServiceWithoutSessionsIsRefused) {
  auto r = host_->session(*plain_, "s.1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "service plain@1 does not support stateful sessions");
  EXPECT_EQ(c_.made, pooled_);
}

TEST_F(HostSessionsTest, CancelAllReachesSessionInstancesAndTheHostClosesTheRest) {
  EXPECT_EQ(RunOn("s1.1", "a"), "s1.1:a");
  EXPECT_EQ(RunOn("s2.1", "a"), "s2.1:a");
  host_->cancel_all();
  EXPECT_EQ(c_.cancelled, pooled_ + 2);
  auto late = host_->session(*counting_, "s3.1");
  EXPECT_EQ(late.status().code(), Code::kUnavailable);
  host_.reset();
  EXPECT_EQ(c_.closed, 2);
  EXPECT_EQ(c_.destroyed, pooled_ + 2);
}

TEST_F(HostSessionsTest, ManyThreadsManySessions) {
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        std::ostringstream k;  // (GCC 12 warns falsely about "k" + to_string(...) here)
        k << "k" << i % 20 << "." << 1 + t % 2;
        const std::string key = k.str();
        auto lease = host_->session(*counting_, key);
        if (!lease.ok()) continue;  // retired by a newer instance number meanwhile: fine
        std::string got = Call(*lease->get(), "x");
        if (got.compare(0, key.size(), key) != 0 || got.size() <= key.size() ||
            got[key.size()] != ':')
          ++wrong;
        if (i % 7 == 0) host_->end_session(key);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, 0);
  host_->end_all_sessions();
  ASSERT_TRUE(WaitFor([&] { return c_.closed == c_.opened; }));
  EXPECT_EQ(c_.destroyed, c_.made - pooled_);
}

// ---- plug-ins: ABI versions 1 and 2 ------------------------------------------------

TEST(PluginSessionsTest, AVersion1PluginStillLoadsAndServesPerCallOnly) {
  auto info = load_plugin(ZGRID_GARBAGE_PLUGIN, "");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->name, "garbage");
  EXPECT_FALSE(info->sessions);
  auto s = info->make();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Call(**s, "fine", "run"), "fine");
  Status st = (*s)->open_session("s.1");
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "this service does not keep session state");
  (*s)->close_session();  // harmless
}

TEST(PluginSessionsTest, OtherVersionsAreRefusedAndAVersion1DescriptorRebuiltStillLoads) {
  auto wrong = load_plugin(ZGRID_WRONG_ABI_PLUGIN, "");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("ABI version mismatch: the plug-in was built for ABI "
                                          "version 3, this node speaks ABI version 2"),
            std::string::npos)
      << wrong.status().message();
  // A zgrid_service_v1 descriptor compiled against this header (it says
  // ABI version 2 with the version 1 size): loads, per-call only.
  auto short_v2 = load_plugin(ZGRID_SHORT_V2_PLUGIN, "");
  ASSERT_TRUE(short_v2.ok()) << short_v2.status().ToString();
  EXPECT_FALSE(short_v2->sessions);
}

TEST(PluginSessionsTest, AVersion2PluginOpensAndClosesSessions) {
  TempDir dir;
  std::string marker = dir.file("marker");
  auto info = load_plugin(ZGRID_TESTSVC_V1, "marker=" + marker);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(info->sessions);
  {
    auto s = info->make();
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(Call(**s, "1", "sum"), "invalid_argument: sum needs a stateful session");
    ASSERT_TRUE((*s)->open_session("abc.1").ok());
    EXPECT_EQ(Call(**s, "5", "sum"), "5");
    EXPECT_EQ(Call(**s, "x", "sum"), "invalid_argument: not an integer");
    EXPECT_EQ(Call(**s, "-2", "sum"), "3");
    EXPECT_EQ(Call(**s, "e", "echo"), "v1:e");
    (*s)->close_session();
    (*s)->close_session();  // once only
  }
  auto lines = Lines(marker);
  EXPECT_EQ(lines,
            (std::vector<std::string>{"init", "session_open abc.1", "session_close", "shutdown"}));
  // A refused session: the message comes back; no close is owed.
  {
    auto s = info->make();
    ASSERT_TRUE(s.ok());
    Status st = (*s)->open_session("refuse.1");
    EXPECT_FALSE(st.ok());
    EXPECT_EQ(st.message(), "session_open failed: refused by testsvc");
    (*s)->close_session();
  }
  lines = Lines(marker);
  EXPECT_EQ(Count(lines, "session_close"), 1u);
  EXPECT_EQ(Count(lines, "shutdown"), 2u);
}

TEST(PluginSessionsTest, TheHostMakesOneInstancePerSessionAndClosesItAtItsEnd) {
  TempDir dir;
  std::string marker = dir.file("marker");
  Registry registry;
  auto info = load_plugin(ZGRID_TESTSVC_V2, "marker=" + marker);
  ASSERT_TRUE(info.ok());
  ASSERT_TRUE(registry.add(std::move(info).value()).ok());
  {
    auto host = Host::start(registry, {}, 2);
    ASSERT_TRUE(host.ok());
    Host::Hosted* h = Hosted(**host, "testsvc");
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(Count(Lines(marker), "init"), 2u);  // the pool
    for (const char* req : {"1", "2", "3"}) {
      auto lease = (*host)->session(*h, "one.1");
      ASSERT_TRUE(lease.ok());
      Call(*lease->get(), req, "sum");
    }
    {
      auto lease = (*host)->session(*h, "one.1");
      ASSERT_TRUE(lease.ok());
      EXPECT_EQ(Call(*lease->get(), "0", "sum"), "6");
    }
    auto refused = (*host)->session(*h, "refuse.1");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().message(),
              "cannot open a stateful session of service testsvc@2: session_open failed: "
              "refused by testsvc");
    EXPECT_EQ(Count(Lines(marker), "init"), 4u);
    (*host)->end_session("one.1");
    ASSERT_TRUE(WaitFor([&] { return Count(Lines(marker), "session_close") == 1; }));
    ASSERT_TRUE(WaitFor([&] { return Count(Lines(marker), "shutdown") == 1; }));
  }
  auto lines = Lines(marker);
  EXPECT_EQ(Count(lines, "init"), 4u);
  EXPECT_EQ(Count(lines, "session_open one.1"), 1u);
  EXPECT_EQ(Count(lines, "session_close"), 1u);
  EXPECT_EQ(Count(lines, "shutdown"), 4u);
}

// ---- the exec bridge ---------------------------------------------------------------

class ExecSessionsTest : public ::testing::Test {
 protected:
  ExecConfig Config(bool sessions) {
    ExecConfig c;
    c.program = kSource + "/tests/exec/test_worker.py";
    c.env = {"PYTHONPATH=" + kSource + "/python", "ZGRID_TEST_SESSION_LOG=" + log_};
    c.label = "crashy@3";
    c.sessions = sessions;
    return c;
  }
  std::unique_ptr<Service> Make(bool sessions = true) {
    auto s = exec_factory(Config(sessions))();
    EXPECT_TRUE(s.ok());
    return std::move(s).value();
  }
  TempDir dir_;
  std::string log_ = dir_.file("sessions.log");
};

TEST_F(ExecSessionsTest, StartRunEndOnItsOwnProcess) {
  auto s = Make();
  ASSERT_TRUE(s->open_session("abc.1").ok());
  EXPECT_EQ(Call(*s, "5", "sum"), "5");
  EXPECT_EQ(Call(*s, "x", "sum").rfind("invalid_argument: ", 0), 0u);
  EXPECT_EQ(Call(*s, "-2", "sum"), "3");
  EXPECT_EQ(Call(*s, "", "session_key"), "abc.1");
  std::string pid = Call(*s, "", "pid");
  // Another session: another process, its own sum.
  auto t = Make();
  ASSERT_TRUE(t->open_session("def.1").ok());
  EXPECT_EQ(Call(*t, "10", "sum"), "10");
  EXPECT_NE(Call(*t, "", "pid"), pid);
  EXPECT_EQ(Call(*s, "1", "sum"), "4");
  s->close_session();
  s.reset();
  EXPECT_EQ(Lines(log_), (std::vector<std::string>{"start abc.1", "start def.1", "end abc.1"}));
  EXPECT_NE(::kill(std::stoi(pid), 0), 0);  // stopped with its instance
}

TEST_F(ExecSessionsTest, ARefusedSessionFailsTheOpenWithTheWorkersMessage) {
  auto s = Make();
  Status st = s->open_session("refuse.1");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(),
            "exec worker of crashy@3 refused the session (service_error): refused by the test "
            "worker");
}

TEST_F(ExecSessionsTest, PerCallInstancesSendNoSessionMessages) {
  auto s = Make();
  EXPECT_EQ(Call(*s, "1", "sum"), "invalid_argument: sum needs a stateful session");
  EXPECT_EQ(Call(*s, "hi", "echo"), "hi");
  s.reset();
  EXPECT_TRUE(Lines(log_).empty());
  // A registration without `sessions = true` opens none.
  auto plain = Make(false);
  EXPECT_EQ(plain->open_session("a.1").message(), "this service does not keep session state");
}

TEST_F(ExecSessionsTest, AWorkerThatDiesLosesTheSessionAndIsNotRestarted) {
  auto s = Make();
  ASSERT_TRUE(s->open_session("abc.1").ok());
  EXPECT_EQ(Call(*s, "1", "sum"), "1");
  std::string crash = Call(*s, "", "crash");
  EXPECT_EQ(crash.rfind("retryable: exec worker of crashy@3 died", 0), 0u) << crash;
  EXPECT_NE(crash.find("the session's state is lost"), std::string::npos) << crash;
  std::string after = Call(*s, "1", "sum");
  EXPECT_EQ(after,
            "retryable: exec worker of crashy@3 for this stateful session is gone: its state is "
            "lost");
  s->close_session();  // nothing to tell
  s.reset();
  EXPECT_EQ(Lines(log_), (std::vector<std::string>{"start abc.1"}));
}

TEST_F(ExecSessionsTest, ATimedOutRequestKillsTheSessionsWorker) {
  auto s = Make();
  ASSERT_TRUE(s->open_session("abc.1").ok());
  std::atomic<bool> cancel{false};
  Output out;
  out.cancel_flag = &cancel;
  std::thread timer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  s->run("hang", "", out);
  timer.join();
  EXPECT_EQ(out.fault_code, "retryable");
  EXPECT_NE(out.data.find("the session's state is lost"), std::string::npos) << out.data;
  EXPECT_EQ(Call(*s, "1", "sum").rfind("retryable: ", 0), 0u);
}

// ---- the exec bridge, pipelined (ExecConfig::pipeline) -----------------------------

// Runs `requests` of operation "do" through run_pipelined, as the node does:
// one cancel flag for all, reset as each answer comes back (done). Checks
// that done() comes once per request, in order.
struct PipelinedRun {
  std::vector<Output> out;
  std::vector<Millis> done_at;  // ms since the start
  Millis took = 0;
};

class ExecPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override { ::signal(SIGPIPE, SIG_IGN); }  // as zgrid-node does
  std::unique_ptr<Service> Make() {
    ExecConfig c;
    c.program = kSource + "/tests/exec/test_worker.py";
    c.env = {"PYTHONPATH=" + kSource + "/python"};
    c.label = "crashy@3";
    c.pipeline = true;
    auto s = exec_factory(c)();
    EXPECT_TRUE(s.ok());
    EXPECT_GT((*s)->pipeline_depth(), 1u);
    return std::move(s).value();
  }
  PipelinedRun Run(Service& s, const std::vector<std::string>& requests) {
    PipelinedRun r;
    r.out.resize(requests.size());
    for (Output& o : r.out) o.cancel_flag = &cancel_;
    std::vector<std::string_view> views(requests.begin(), requests.end());
    const Millis start = SteadyClock::instance().now_ms();
    std::size_t expect = 0;
    s.run_pipelined("do", views, r.out, [&](std::size_t i) {
      EXPECT_EQ(i, expect++);
      r.done_at.push_back(SteadyClock::instance().now_ms() - start);
      cancel_ = false;  // the next request's timer starts
    });
    r.took = SteadyClock::instance().now_ms() - start;
    EXPECT_EQ(expect, requests.size());
    return r;
  }
  static std::string Text(const Output& o) {
    return o.fault_code.empty() ? o.data : o.fault_code + ": " + o.data;
  }
  std::atomic<bool> cancel_{false};
};

TEST_F(ExecPipelineTest, AnswersInOrderOnOneWorker) {
  auto s = Make();
  std::vector<std::string> req;
  for (int i = 0; i < 200; ++i) req.push_back("echo:" + std::to_string(i));
  req.push_back("pid");
  auto r = Run(*s, req);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(Text(r.out[i]), std::to_string(i));
  std::string pid = r.out[200].data;
  EXPECT_EQ(Text(Run(*s, {"pid"}).out[0]), pid);  // the same process
}

TEST_F(ExecPipelineTest, AWorkerDyingMidPipelineFaultsOnlyThatRequestAndIsReplaced) {
  auto s = Make();
  auto r = Run(*s, {"echo:a", "pid", "echo:b", "crash", "echo:d", "pid", "echo:e"});
  EXPECT_EQ(Text(r.out[0]), "a");
  EXPECT_EQ(Text(r.out[2]), "b");
  EXPECT_EQ(Text(r.out[3]).rfind("retryable: exec worker of crashy@3 died (exit status 3)", 0), 0u)
      << Text(r.out[3]);
  EXPECT_EQ(Text(r.out[4]), "d");
  EXPECT_EQ(Text(r.out[6]), "e");
  ASSERT_TRUE(r.out[1].fault_code.empty() && r.out[5].fault_code.empty());
  EXPECT_NE(r.out[1].data, r.out[5].data);  // a new worker ran the rest
  EXPECT_NE(::kill(std::stoi(r.out[1].data), 0), 0);
}

TEST_F(ExecPipelineTest, ATimeoutMidPipelineKillsTheWorkerAndTheRestRunOnANewOne) {
  auto s = Make();
  std::thread timer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel_ = true;  // the node's task timeout, on the first unanswered request
  });
  auto r = Run(*s, {"pid", "echo:a", "hang", "echo:c", "pid"});
  timer.join();
  EXPECT_EQ(Text(r.out[1]), "a");
  EXPECT_EQ(Text(r.out[2]).rfind("retryable: timed out after ", 0), 0u) << Text(r.out[2]);
  EXPECT_NE(r.out[2].data.find("killed and restarted"), std::string::npos);
  EXPECT_EQ(Text(r.out[3]), "c");
  ASSERT_TRUE(r.out[0].fault_code.empty() && r.out[4].fault_code.empty());
  EXPECT_NE(r.out[0].data, r.out[4].data);
  EXPECT_NE(::kill(std::stoi(r.out[0].data), 0), 0);  // the hung one is gone
}

TEST_F(ExecPipelineTest, GarbageMidPipelineFaultsThatRequestAndTheRestAreAnswered) {
  auto s = Make();
  auto r = Run(*s, {"echo:a", "garbage", "echo:c", "echo:d"});
  EXPECT_EQ(Text(r.out[0]), "a");
  EXPECT_EQ(r.out[1].fault_code, "service_error");
  EXPECT_NE(r.out[1].data.find("malformed msgpack; it is restarted"), std::string::npos)
      << r.out[1].data;
  EXPECT_EQ(Text(r.out[2]), "c");
  EXPECT_EQ(Text(r.out[3]), "d");
}

// Both pipes full at once: the worker blocks writing a reply while the node
// has megabytes of requests still to write. Non-blocking writes interleaved
// with reads: no deadlock, every answer right.
TEST_F(ExecPipelineTest, BothPipesFullDoNotDeadlock) {
  auto s = Make();
  std::vector<std::string> req;
  req.push_back("sleep:300");  // the worker reads nothing for a while
  for (int i = 0; i < 48; ++i) req.push_back("echo:" + std::string(400'000, 'a' + i % 26));
  auto r = Run(*s, req);
  ASSERT_TRUE(r.out[0].fault_code.empty()) << Text(r.out[0]);
  for (int i = 1; i <= 48; ++i) {
    EXPECT_TRUE(r.out[i].fault_code.empty()) << i << ": " << r.out[i].fault_code;
    EXPECT_EQ(r.out[i].data, std::string(400'000, 'a' + (i - 1) % 26)) << i;
  }
  EXPECT_LT(r.took, 30'000);
}

// A worker that never reads again while the node has lots to write: the
// request's timeout still ends it, promptly.
TEST_F(ExecPipelineTest, AWorkerThatStopsReadingIsBoundedByTheTimeout) {
  auto s = Make();
  std::vector<std::string> req{"hang"};
  for (int i = 0; i < 32; ++i) req.push_back("echo:" + std::string(500'000, 'x'));
  std::thread timer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel_ = true;
  });
  auto r = Run(*s, req);
  timer.join();
  EXPECT_EQ(Text(r.out[0]).rfind("retryable: timed out after ", 0), 0u) << Text(r.out[0]);
  EXPECT_LT(r.done_at[0], 5'000);
  for (int i = 1; i <= 32; ++i) EXPECT_EQ(r.out[i].data.size(), 500'000u) << i;
}

TEST_F(ExecPipelineTest, NodeStopMidPipelineAnswersEveryRequestRetryableAtOnce) {
  auto s = Make();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    s->cancel();
  });
  auto r = Run(*s, {"echo:a", "hang", "echo:c", "echo:d"});
  stopper.join();
  EXPECT_EQ(Text(r.out[0]), "a");
  for (int i = 1; i < 4; ++i) EXPECT_EQ(Text(r.out[i]), "retryable: node stopping") << i;
  EXPECT_LT(r.took, 5'000);
}

// Without `pipeline`, or on a stateful session's instance: one at a time.
TEST_F(ExecPipelineTest, OffUnlessConfiguredAndNeverForASession) {
  ExecConfig c;
  c.program = kSource + "/tests/exec/test_worker.py";
  c.env = {"PYTHONPATH=" + kSource + "/python"};
  c.label = "crashy@3";
  EXPECT_EQ((*exec_factory(c)())->pipeline_depth(), 1u);
  c.pipeline = true;
  c.sessions = true;
  auto s = std::move(exec_factory(c)()).value();
  EXPECT_GT(s->pipeline_depth(), 1u);
  ASSERT_TRUE(s->open_session("abc.1").ok());
  EXPECT_EQ(s->pipeline_depth(), 1u);
  auto r = Run(*s, {"echo:a", "echo:b"});
  EXPECT_EQ(Text(r.out[0]), "a");
  EXPECT_EQ(Text(r.out[1]), "b");
}

// ---- registration: `sessions = true` ----------------------------------------------

// `pipeline = true` (docs/services.md, "Pipelining"): programs only.
TEST(RegistrationPipelineTest, AProgramOptsInAPluginCannot) {
  TempDir dir;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.file(name)) << text;
    return dir.file(name);
  };
  std::string program = "program = \"" + kSource + "/tests/exec/test_worker.py\"\n";
  Registry r;
  ASSERT_TRUE(
      register_file(write("a.toml", "name = \"a\"\n" + program + "pipeline = true\n"), r).ok());
  ASSERT_TRUE(register_file(write("b.toml", "name = \"b\"\n" + program), r).ok());
  EXPECT_GT((*Find(r, "a")->make())->pipeline_depth(), 1u);
  EXPECT_EQ((*Find(r, "b")->make())->pipeline_depth(), 1u);
  Status lib = register_file(
      write("c.toml", std::string("library = \"") + ZGRID_TESTSVC_V1 + "\"\npipeline = true\n"), r);
  EXPECT_FALSE(lib.ok());
  EXPECT_NE(lib.message().find("key pipeline is for programs"), std::string::npos) << lib.message();
}

TEST(RegistrationSessionsTest, AProgramDeclaresSessionsAPluginsDescriptorSaysItself) {
  TempDir dir;
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.file(name)) << text;
    return dir.file(name);
  };
  std::string program = "program = \"" + kSource + "/tests/exec/test_worker.py\"\n";
  Registry r;
  ASSERT_TRUE(
      register_file(write("a.toml", "name = \"a\"\n" + program + "sessions = true\n"), r).ok());
  ASSERT_TRUE(
      register_file(write("b.toml", "name = \"b\"\n" + program + "sessions = false\n"), r).ok());
  ASSERT_TRUE(register_file(write("c.toml", "name = \"c\"\n" + program), r).ok());
  ASSERT_TRUE(
      register_file(write("d.toml", std::string("library = \"") + ZGRID_TESTSVC_V1 + "\"\n"), r)
          .ok());
  ASSERT_TRUE(
      register_file(write("e.toml", std::string("library = \"") + ZGRID_GARBAGE_PLUGIN + "\"\n"), r)
          .ok());
  EXPECT_TRUE(Find(r, "a")->sessions);
  EXPECT_FALSE(Find(r, "b")->sessions);
  EXPECT_FALSE(Find(r, "c")->sessions);
  EXPECT_TRUE(Find(r, "testsvc")->sessions);
  EXPECT_FALSE(Find(r, "garbage")->sessions);

  Status lib = register_file(
      write("f.toml", std::string("library = \"") + ZGRID_TESTSVC_V1 + "\"\nsessions = true\n"), r);
  EXPECT_FALSE(lib.ok());
  EXPECT_NE(lib.message().find("key sessions is for programs"), std::string::npos) << lib.message();
  Status bad =
      register_file(write("g.toml", "name = \"g\"\n" + program + "sessions = \"maybe\"\n"), r);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("sessions"), std::string::npos) << bad.message();
}

}  // namespace
}  // namespace zgrid::svc
