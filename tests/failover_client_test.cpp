// Clients follow a list of heads (issue 28, docs/operations.md "Failover:
// clients"). First against fake heads in this process (ROUTER sockets that
// answer hello, ping and status as an active head or a standby does), then
// against real zgrid-head processes sharing one --data-dir.
#include <gtest/gtest.h>
#include <zgrid/client.hpp>
#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/transport.hpp"
#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/zmq_util.hpp"
#include "support/grid_process.hpp"

namespace zgrid {
namespace {

using client::ClientOptions;
using client::Connection;

// A fake head: a ROUTER on an ephemeral loopback port, answering each
// request with what `answer` makes of it (nothing: no answer). Its own
// thread owns the socket; the test changes its behaviour through atomics.
class FakeHead {
 public:
  using Answer = std::function<bool(const Envelope& req, zmq::message_t* out)>;
  explicit FakeHead(Answer answer) : answer_(std::move(answer)) {
    zmqu::SocketOptions so;
    so.linger_ms = 0;
    auto s = zmqu::bind_router(ctx_, "tcp://127.0.0.1:*", &endpoint_, so);
    EXPECT_TRUE(s.ok()) << s.status().message();
    sock_ = std::move(s).value();
    thread_ = std::thread([this] { run(); });
  }
  ~FakeHead() {
    stop_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  int requests() const { return requests_; }

 private:
  void run() {
    while (!stop_) {
      zmq::pollitem_t item{static_cast<void*>(sock_), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(10)) <= 0) continue;
      std::vector<zmq::message_t> frames;
      while (zmqu::recv_message(sock_, &frames, 3) == zmqu::RecvStatus::kOk) {
        if (frames.size() != 2) continue;
        ++requests_;
        Envelope env;
        if (!decode_envelope(frames[1].data(), frames[1].size(), &env).ok()) continue;
        zmq::message_t out;
        if (!answer_(env, &out)) continue;
        std::string rid(static_cast<const char*>(frames[0].data()), frames[0].size());
        (void)zmqu::send_routed(sock_, rid, out);
      }
    }
  }

  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
  std::string endpoint_;
  Answer answer_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// An active head with `instance` and `epoch`: hello and ping get hello_ok,
// status a grid status; while `*silent`, nothing.
FakeHead::Answer active(std::string instance, std::uint64_t epoch,
                        const std::atomic<bool>* silent = nullptr) {
  return [=](const Envelope& req, zmq::message_t* out) {
    if (silent && *silent) return false;
    if (req.type == proto::kHello || req.type == proto::kPing) {
      *out = proto::encode_hello_ok(req.corr, "fake", instance, epoch);
      return true;
    }
    if (req.type == proto::kStatus) {
      proto::GridStatus st;
      st.instance = instance;
      st.role = "active";
      st.epoch = epoch;
      *out = proto::encode_grid_status(req.corr, st);
      return true;
    }
    return false;
  };
}

// A standby: status answered (role standby), anything else not_active naming
// `*active_frontend` (empty: no active head yet); once `*took_over`, the
// active head `instance` at `epoch + 1`.
FakeHead::Answer standby(std::uint64_t epoch, const std::string* active_frontend,
                         const std::atomic<bool>* took_over = nullptr,
                         std::string instance = "standby-instance") {
  return [=](const Envelope& req, zmq::message_t* out) {
    if (took_over && *took_over) return active(instance, epoch + 1)(req, out);
    if (req.type == proto::kStatus) {
      proto::GridStatus st;
      st.instance = instance;
      st.role = "standby";
      st.epoch = epoch;
      st.active = *active_frontend;
      *out = proto::encode_grid_status(req.corr, st);
      return true;
    }
    *out =
        proto::encode_not_active(req.corr, "this head is a standby", epoch, *active_frontend, "");
    return true;
  };
}

ClientOptions options(const std::string& heads, Millis timeout_ms) {
  ClientOptions o;
  o.head = heads;
  o.timeout_ms = timeout_ms;
  return o;
}

TEST(FailoverClient, OneEndpointAsBefore) {
  FakeHead a(active("a-instance", 0));
  auto c = Connection::open(options(a.endpoint(), 2000));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ((*c)->head_instance(), "a-instance");
  EXPECT_EQ((*c)->head_endpoint(), a.endpoint());
  EXPECT_EQ((*c)->epoch(), 0u);
}

TEST(FailoverClient, StartFollowsTheStandbyToTheActiveHeadItNames) {
  FakeHead b(active("b-instance", 3));
  std::string named = b.endpoint();
  FakeHead a(standby(3, &named));
  // Only the standby is listed: the head it names is used all the same.
  for (const std::string& list : {a.endpoint(), a.endpoint() + "," + b.endpoint()}) {
    auto c = Connection::open(options(list, 3000));
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ((*c)->head_endpoint(), b.endpoint()) << list;
    EXPECT_EQ((*c)->head_instance(), "b-instance");
    EXPECT_EQ((*c)->epoch(), 3u);
    auto st = (*c)->grid_status();
    ASSERT_TRUE(st.ok()) << st.status().message();
    EXPECT_EQ(st->str("role"), "active");
  }
}

TEST(FailoverClient, NoActiveHeadNamesEveryHeadAndWhatItSaid) {
  std::string none;
  FakeHead a(standby(2, &none));
  FakeHead mute([](const Envelope&, zmq::message_t*) { return false; });
  const Clock& clock = SteadyClock::instance();
  Millis t0 = clock.now_ms();
  auto c = Connection::open(options(a.endpoint() + "," + mute.endpoint(), 1500));
  Millis took = clock.now_ms() - t0;
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_EQ(c.status().message(), "no active head within 1500ms: " + a.endpoint() +
                                      " is a standby (no active head yet), " + mute.endpoint() +
                                      " does not answer");
  EXPECT_GE(took, 1400);
  EXPECT_LT(took, 4000);
  // The standby was asked again and again (every 250 ms), not once.
  EXPECT_GE(a.requests(), 3);
}

TEST(FailoverClient, AHeadWithALowerEpochIsNeverUsed) {
  std::string none;
  FakeHead a(standby(5, &none));
  // A head that lost its lease (epoch 4) answers as active, but after the
  // standby has told the client of epoch 5.
  auto stale = [](const Envelope& req, zmq::message_t* out) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return active("stale-instance", 4)(req, out);
  };
  FakeHead b(stale);
  auto c = Connection::open(options(a.endpoint() + "," + b.endpoint(), 1500));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(
      c.status().message().find(b.endpoint() + " is a stale head (epoch 4, the grid is at 5)"),
      std::string::npos)
      << c.status().message();
}

TEST(FailoverClient, AllRefusedAtStartSaysSoAtOnce) {
  const Clock& clock = SteadyClock::instance();
  Millis t0 = clock.now_ms();
  // Ports nothing listens on (bound and closed again).
  std::string a, b;
  {
    FakeHead x(active("x", 0)), y(active("y", 0));
    a = x.endpoint();
    b = y.endpoint();
  }
  auto c = Connection::open(options(a + "," + b, 10'000));
  ASSERT_FALSE(c.ok());
  EXPECT_LT(clock.now_ms() - t0, 5000);
  EXPECT_EQ(c.status().message(), "no active head: " + a +
                                      " refuses connections (is zgrid-head running there?), " + b +
                                      " refuses connections (is zgrid-head running there?)");
}

TEST(FailoverClient, ASilentHeadIsLeftForTheOneThatTookOver) {
  std::atomic<bool> a_dead{false}, b_took_over{false};
  FakeHead a(active("a-instance", 1, &a_dead));
  std::string named = a.endpoint();
  FakeHead b(standby(1, &named, &b_took_over, "b-instance"));
  auto c = Connection::open(options(a.endpoint() + "," + b.endpoint(), 8000));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ((*c)->head_endpoint(), a.endpoint());
  EXPECT_EQ((*c)->epoch(), 1u);
  a_dead = true;  // the machine is gone: no answer, no refusal
  std::thread takeover([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    b_took_over = true;
  });
  const Clock& clock = SteadyClock::instance();
  Millis t0 = clock.now_ms();
  auto st = (*c)->grid_status();  // idempotent: resent to the new head
  Millis took = clock.now_ms() - t0;
  takeover.join();
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->str("instance"), "b-instance");
  EXPECT_EQ((*c)->head_endpoint(), b.endpoint());
  EXPECT_EQ((*c)->head_instance(), "b-instance");
  EXPECT_EQ((*c)->epoch(), 2u);
  EXPECT_GE(took, 2400);
  EXPECT_LT(took, 6000);
  // The old head is never used again, even when it answers once more.
  a_dead = false;
  auto again = (*c)->grid_status();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->str("instance"), "b-instance");
}

TEST(FailoverClient, ANotActiveAnswerWhileRunningIsFollowed) {
  // The head in use restarts as a standby at the same endpoint (the other
  // took over): its not_active answer names the active one.
  std::atomic<bool> b_active{false};
  FakeHead b(active("b-instance", 7));
  std::string named = b.endpoint();
  std::atomic<bool> a_demoted{false};
  FakeHead a([&](const Envelope& req, zmq::message_t* out) {
    if (a_demoted) return standby(7, &named)(req, out);
    return active("a-instance", 6)(req, out);
  });
  auto c = Connection::open(options(a.endpoint(), 3000));
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto c2 = Connection::open(options(a.endpoint(), 3000));
  ASSERT_TRUE(c2.ok()) << c2.status().message();
  EXPECT_EQ((*c)->head_instance(), "a-instance");
  a_demoted = true;
  // A request the standby answers not_active (a ping): sent again to b.
  auto inst = (*c2)->transport().probe_instance();
  ASSERT_TRUE(inst.ok()) << inst.status().message();
  EXPECT_EQ(*inst, "b-instance");
  EXPECT_EQ((*c2)->head_endpoint(), b.endpoint());
  // The grid status, which a standby answers itself (role standby): b's.
  auto st = (*c)->grid_status();
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->str("instance"), "b-instance");
  EXPECT_EQ((*c)->head_endpoint(), b.endpoint());
  EXPECT_EQ((*c)->epoch(), 7u);
  (void)b_active;
}

TEST(FailoverClient, HeadsTableAsksEachHeadDirectly) {
  std::atomic<bool> a_dead{false};
  FakeHead a(active("a-instance", 4));
  std::string named = a.endpoint();
  FakeHead b(standby(4, &named));
  FakeHead mute([](const Envelope&, zmq::message_t*) { return false; });
  const Clock& clock = SteadyClock::instance();
  Millis t0 = clock.now_ms();
  auto rows =
      Connection::heads(options(a.endpoint() + "," + b.endpoint() + "," + mute.endpoint(), 10'000));
  EXPECT_LT(clock.now_ms() - t0, 2500);  // one silent head costs about 1 s, not the timeout
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].str("endpoint"), a.endpoint());
  EXPECT_EQ(rows[0].str("role"), "active");
  EXPECT_EQ(rows[0].str("epoch"), "4");
  EXPECT_EQ(rows[0].str("instance"), "a-instance");
  EXPECT_EQ(rows[1].str("role"), "standby");
  EXPECT_EQ(rows[1].str("active"), a.endpoint());
  EXPECT_EQ(rows[2].str("role"), "no answer");
  (void)a_dead;
}

// ---- real heads: an active and a standby on one data directory ----------------

using testing::HeadProcess;
using testing::Process;
using testing::run_cli;
using testing::TempDir;
using testing::wait_until;

class FailoverCli : public ::testing::Test {
 protected:
  std::unique_ptr<HeadProcess> Head(const std::string& name) {
    return std::make_unique<HeadProcess>(
        dir_, name, dir_.file("data"),
        std::vector<std::string>{"--http", "off", "--heartbeat", "250ms"});
  }
  std::unique_ptr<Process> Node(const std::string& backend, const std::string& log) {
    return std::make_unique<Process>(
        std::vector<std::string>{ZGRID_NODE_BIN, "--head", backend, "--workers", "2"},
        dir_.file(log));
  }
  std::string Log(const std::string& name) const { return testing::read_file(dir_.file(name)); }
  TempDir dir_;
};

// Lines of `text` that are not the CLI's own (stderr, "zgrid: ...").
std::vector<std::string> OutputLines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line.rfind("zgrid:", 0) != 0) out.push_back(line);
  return out;
}

// The session id a submit's log names ("zgrid: session ID (durable, ...)").
std::string SessionOf(const std::string& log) {
  auto at = log.find("zgrid: session ");
  if (at == std::string::npos) return {};
  at += 15;
  return log.substr(at, log.find(' ', at) - at);
}

TEST_F(FailoverCli, DurableSubmitFetchAndWaitFinishExactlyOnceAcrossTwoTakeovers) {
  auto a = Head("a");
  a->start();
  ASSERT_TRUE(a->wait_role("active", 10'000)) << a->log();
  auto b = Head("b");
  b->start();
  ASSERT_TRUE(b->wait_role("standby", 10'000)) << b->log();
  const std::string heads = a->frontend() + "," + b->frontend();

  // zgrid status lists both heads, their roles and the epoch.
  auto st = run_cli({"--head", heads, "status"}, "", 30'000);
  ASSERT_EQ(st.code, 0) << st.err;
  EXPECT_NE(st.out.find(a->frontend() + "  active"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find(b->frontend() + "  standby"), std::string::npos) << st.out;
  auto js = run_cli({"--head", heads, "status", "--json"}, "", 30'000);
  ASSERT_EQ(js.code, 0) << js.err;
  EXPECT_EQ(js.out.rfind(
                "{\"heads\": [{\"endpoint\": \"" + a->frontend() + "\", \"role\": \"active\"", 0),
            0u)
      << js.out;

  constexpr std::uint64_t kFirst = 1'000'000;
  constexpr std::size_t kN = 200'000;
  {
    std::ofstream in(dir_.file("input.txt"));
    for (std::size_t i = 0; i < kN; ++i) in << kFirst + i << "\n";
  }
  auto na = Node(a->backend(), "node-a.log");
  // 1. The active head dies while a durable submit is sending.
  Process submit({ZGRID_CLI_BIN, "--head", heads, "--timeout", "30s", "submit", "--durable",
                  "--service", "factorize", "--file", dir_.file("input.txt")},
                 dir_.file("submit.log"));
  ASSERT_TRUE(wait_until([&] { return !SessionOf(Log("submit.log")).empty(); }, 30'000))
      << Log("submit.log");
  const std::string sid = SessionOf(Log("submit.log"));
  ASSERT_TRUE(submit.running()) << "the submit ended before the head was killed";
  a->kill_now();
  na->kill_now();
  ASSERT_TRUE(b->wait_role("active", 10'000)) << b->log();
  ASSERT_EQ(submit.wait(60'000), 0) << Log("submit.log");
  EXPECT_NE(Log("submit.log").find(sid), std::string::npos);

  // 2. The old head back as a standby; no node yet: fetch and wait wait.
  a->start();
  ASSERT_TRUE(a->wait_role("standby", 10'000)) << a->log();
  Process fetch({ZGRID_CLI_BIN, "--head", heads, "--timeout", "30s", "fetch", sid},
                dir_.file("fetch.log"));
  Process wait({ZGRID_CLI_BIN, "--head", heads, "--timeout", "30s", "wait", sid},
               dir_.file("wait.log"));
  auto nb = Node(b->backend(), "node-b.log");
  ASSERT_TRUE(wait_until([&] { return OutputLines(Log("fetch.log")).size() >= 1000; }, 60'000))
      << Log("fetch.log").substr(0, 2000);
  // 3. The active head dies during the fetch and the wait.
  b->kill_now();
  nb->kill_now();
  ASSERT_TRUE(fetch.running() && wait.running()) << "done before the kill";
  ASSERT_TRUE(a->wait_role("active", 10'000)) << a->log();
  auto na2 = Node(a->backend(), "node-a2.log");
  ASSERT_EQ(fetch.wait(180'000), 0) << Log("fetch.log").substr(0, 2000);
  ASSERT_EQ(wait.wait(60'000), 0) << Log("wait.log");
  EXPECT_NE(Log("wait.log").find(std::to_string(kN) + " done, 0 faulted, 0 removed"),
            std::string::npos)
      << Log("wait.log");

  // Every request answered exactly once, every factorization multiplying back.
  std::multiset<std::uint64_t> seen;
  for (const std::string& line : OutputLines(Log("fetch.log"))) {
    auto eq = line.find(" = ");
    ASSERT_NE(eq, std::string::npos) << line;
    std::uint64_t v = std::stoull(line.substr(0, eq));
    ASSERT_TRUE(testing::is_factorization(v, line.substr(eq + 3))) << line;
    seen.insert(v);
  }
  ASSERT_EQ(seen.size(), kN);
  for (std::size_t i = 0; i < kN; ++i) ASSERT_EQ(seen.count(kFirst + i), 1u) << kFirst + i;
}

TEST_F(FailoverCli, AnInteractiveSessionOnADeadHeadEndsWithOneLineNamingTheFailover) {
  auto a = Head("a");
  a->start();
  ASSERT_TRUE(a->wait_role("active", 10'000)) << a->log();
  auto b = Head("b");
  b->start();
  ASSERT_TRUE(b->wait_role("standby", 10'000)) << b->log();
  const std::string heads = a->frontend() + "," + b->frontend();
  auto na = Node(a->backend(), "node-a.log");
  {
    std::ofstream in(dir_.file("sleeps.txt"));
    for (int i = 0; i < 200; ++i) in << "2000\n";
  }
  Process submit({ZGRID_CLI_BIN, "--head", heads, "--timeout", "20s", "submit", "--service",
                  "sleep", "--file", dir_.file("sleeps.txt")},
                 dir_.file("submit.log"));
  // Some answers came (the CLI buffers its output: ask the head): the
  // session is running on a.
  ASSERT_TRUE(wait_until([&] { return !SessionOf(Log("submit.log")).empty(); }, 30'000));
  const std::string sid = SessionOf(Log("submit.log"));
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = run_cli({"--head", a->frontend(), "status", sid, "--json"}, "", 10'000);
        auto at = s.out.find("\"done\": ");
        return at != std::string::npos && std::stoull(s.out.substr(at + 8)) >= 2;
      },
      30'000, 200))
      << Log("submit.log");
  a->kill_now();
  na->kill_now();
  const Clock& clock = SteadyClock::instance();
  Millis killed = clock.now_ms();
  ASSERT_TRUE(b->wait_role("active", 10'000)) << b->log();
  EXPECT_EQ(submit.wait(30'000), 2) << Log("submit.log");
  EXPECT_LT(clock.now_ms() - killed, 15'000);
  std::vector<std::string> errors;
  std::istringstream in(Log("submit.log"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("zgrid: error:", 0) == 0) errors.push_back(line);
  ASSERT_EQ(errors.size(), 1u) << Log("submit.log");
  EXPECT_NE(errors[0].find("the head failed over to " + b->frontend() + " (epoch 2)"),
            std::string::npos)
      << errors[0];
  EXPECT_NE(errors[0].find("interactive sessions do not survive a failover"), std::string::npos)
      << errors[0];
}

}  // namespace
}  // namespace zgrid
