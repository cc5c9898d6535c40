// Resent requests (docs/protocol.md, "Resent requests") with real processes.
// The client library resends a request that got no reply within a second;
// here the head stops itself (ZGRID_STOP_POINT, SIGSTOP) when the first copy
// of the message under test arrives and the test lets it go on 1.5 s later,
// so every copy reaches the same head: exactly one effect, and the answer of
// the first. A durable head that journaled a session and died before its
// reply gives the resend, on the restarted head, the same session. A raw
// socket sends two copies and checks that the second is answered as the first.
#include <gtest/gtest.h>
#include <signal.h>
#include <zgrid/client.hpp>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "client/transport.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using client::Connection;
using testing::Grid;

constexpr Millis kStallMs = 1'500;  // longer than the library's resend interval (1 s)

// The process state letter of `pid` from /proc ('T': stopped), or 0.
char ProcState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  auto paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ? 0 : line[paren + 2];
}

// Starts a thread that waits for the head to stop itself at its stop point,
// leaves it stopped kStallMs, and sends SIGCONT. join() says whether it did.
class Staller {
 public:
  explicit Staller(pid_t pid)
      : t_([this, pid] {
          stopped_ = testing::wait_until([&] { return ProcState(pid) == 'T'; }, 15'000, 2);
          if (stopped_) std::this_thread::sleep_for(std::chrono::milliseconds(kStallMs));
          ::kill(pid, SIGCONT);
        }) {}
  ~Staller() {
    if (t_.joinable()) t_.join();
  }
  bool join() {
    t_.join();
    return stopped_;
  }

 private:
  bool stopped_ = false;
  std::thread t_;
};

// (Re)starts the head so that it stops at the first client message `type`.
void StopAt(Grid& g, const std::string& type) {
  g.restart_head({"ZGRID_STOP_POINT=" + type + ":1"});
}

std::size_t CountLines(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// A committed client with no requests: the session can complete.
void Commit(Connection& conn, const std::string& sid) {
  auto bc = BrokerClient::open(conn, sid, "c1");
  ASSERT_TRUE(bc.ok()) << bc.status().ToString();
  ASSERT_TRUE((*bc)->end_requests().ok());
}

// ---- create_session -----------------------------------------------------------

void ExpectOneSessionAfterAStalledCreate(bool durable) {
  Grid g;
  if (durable)
    g.start_durable_head();
  else
    g.start_head();
  StopAt(g, "create_session");
  auto conn = g.connect();
  Staller stall(g.head().pid());
  auto info = conn->create_session({"factorize", durable, 0});
  ASSERT_TRUE(stall.join()) << "the head never stopped";
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto list = conn->sessions();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u) << "a resent create_session made a second session";
  EXPECT_EQ((*list)[0].str("session_id"), info->session_id);
  if (!durable) return;
  // And the journal holds that one session alone.
  g.restart_head();
  auto again = g.connect();
  auto after = again->sessions();
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].str("session_id"), info->session_id);
}

TEST(Resent, CreateSessionInteractiveMakesOneSession) {
  ExpectOneSessionAfterAStalledCreate(false);
}

TEST(Resent, CreateSessionDurableMakesOneSession) {
  ExpectOneSessionAfterAStalledCreate(true);
}

// The orphan a resend used to make held a slot of --max-sessions-per-key
// for good: here the key's two slots stay its own.
TEST(Resent, CreateSessionLeavesNoOrphanHoldingAPerKeySlot) {
  Grid g;
  g.start_durable_head({"--max-sessions-per-key", "2"});
  StopAt(g, "create_session");
  auto conn = g.connect();
  Staller stall(g.head().pid());
  auto a = conn->create_session({"factorize", true, 0});
  ASSERT_TRUE(stall.join());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  Commit(*conn, a->session_id);
  ASSERT_TRUE(conn->close_session(a->session_id, proto::CloseMode::kSeal).ok());
  auto b = conn->create_session({"factorize", true, 0});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto c = conn->create_session({"factorize", true, 0});
  ASSERT_TRUE(c.ok()) << "the second open slot is taken: " << c.status().ToString();
  auto list = conn->sessions();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 3u);
}

// Journaled, then the head dies before its reply: the library's resend
// reaches the restarted head, which answers with the same session.
TEST(Resent, CreateSessionJournaledBeforeACrashIsTheSameSessionAfterRestart) {
  Grid g;
  g.start_durable_head();
  g.restart_head({"ZGRID_CRASH_POINT=before-session-info:1"});
  auto conn = g.connect(15'000);
  Result<proto::SessionInfo> info = Status::Internal("not run");
  std::thread creator([&] { info = conn->create_session({"factorize", true, 0}); });
  bool died = g.wait_head_exit(10'000);
  if (died) g.restart_head();
  creator.join();
  ASSERT_TRUE(died) << "the crash point was not reached";
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  auto list = conn->sessions();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u) << "the resend made a second session";
  EXPECT_EQ((*list)[0].str("session_id"), info->session_id);
  // It is an ordinary session from then on.
  Commit(*conn, info->session_id);
  ASSERT_TRUE(conn->close_session(info->session_id, proto::CloseMode::kSeal).ok());
  auto st = conn->session_status(info->session_id);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->boolean("complete"));
}

// ---- every other message the library resends ----------------------------------

class ResentEach : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam())
      g_.start_durable_head();
    else
      g_.start_head();
  }
  // A session with client c1 (not yet committed).
  std::string NewSession(Connection& conn) {
    auto info = conn.create_session({"factorize", GetParam(), 0});
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    return info.ok() ? info->session_id : std::string();
  }
  Grid g_;
};

TEST_P(ResentEach, OpenClientIsTheSameClient) {
  StopAt(g_, "open_client");
  auto conn = g_.connect();
  std::string sid = NewSession(*conn);
  Staller stall(g_.head().pid());
  auto bc = BrokerClient::open(*conn, sid, "c1");
  ASSERT_TRUE(stall.join());
  ASSERT_TRUE(bc.ok()) << bc.status().ToString();
  ASSERT_TRUE((*bc)->send("1001", "a").ok());
  ASSERT_TRUE((*bc)->end_requests().ok());
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("clients"), 1u);
  EXPECT_EQ(st->u64("total"), 1u);
}

TEST_P(ResentEach, EndRequestsAndFlushCommitOnce) {
  StopAt(g_, "end_requests");
  auto conn = g_.connect();
  std::string sid = NewSession(*conn);
  auto bc = BrokerClient::open(*conn, sid, "c1");
  ASSERT_TRUE(bc.ok());
  ASSERT_TRUE((*bc)->send("1001", "a").ok());
  ASSERT_TRUE((*bc)->flush().ok());
  Staller stall(g_.head().pid());
  Status st = (*bc)->end_requests();
  ASSERT_TRUE(stall.join());
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto row = conn->session_status(sid);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->u64("committed"), 1u);
  EXPECT_EQ(row->u64("total"), 1u);
}

TEST_P(ResentEach, FlushIsAnsweredOk) {
  StopAt(g_, "flush");
  auto conn = g_.connect();
  std::string sid = NewSession(*conn);
  auto bc = BrokerClient::open(*conn, sid, "c1");
  ASSERT_TRUE(bc.ok());
  Staller stall(g_.head().pid());
  Status st = (*bc)->flush();  // a bare flush: nothing pending
  ASSERT_TRUE(stall.join());
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST_P(ResentEach, SealCancelAndPurgeAreAnsweredOkAndApplyOnce) {
  for (proto::CloseMode mode :
       {proto::CloseMode::kSeal, proto::CloseMode::kCancel, proto::CloseMode::kPurge}) {
    StopAt(g_, "close");
    auto conn = g_.connect();
    std::string sid = NewSession(*conn);
    Commit(*conn, sid);
    Staller stall(g_.head().pid());
    Status st = conn->close_session(sid, mode);
    ASSERT_TRUE(stall.join());
    ASSERT_TRUE(st.ok()) << "mode " << static_cast<int>(mode) << ": " << st.ToString();
    std::string log = g_.head_log();
    if (mode == proto::CloseMode::kPurge) {
      EXPECT_EQ(CountLines(log, "session purged session=" + sid), 1u) << log;
    }
    auto row = conn->session_status(sid);
    if (mode == proto::CloseMode::kPurge || !GetParam()) {
      // Purged, or an interactive session that completed and left.
      EXPECT_EQ(row.status().code(), Code::kNotFound);
    } else {
      ASSERT_TRUE(row.ok());
      EXPECT_TRUE(row->boolean("complete"));
      EXPECT_EQ(row->str("state"), mode == proto::CloseMode::kSeal ? "sealed" : "cancelled");
    }
  }
}

TEST_P(ResentEach, QueriesAreAnsweredAsTheFirst) {
  for (const char* type : {"status", "sessions", "nodes", "attach_session", "ping", "hello"}) {
    SCOPED_TRACE(type);
    StopAt(g_, type);
    // hello is the first message of a connection: the stall lands in open.
    std::unique_ptr<Connection> conn;
    std::string sid;
    if (std::string(type) != "hello") {
      conn = g_.connect();
      sid = NewSession(*conn);
    }
    Staller stall(g_.head().pid());
    Status st;
    if (std::string(type) == "status") {
      auto r = conn->session_status(sid);
      st = r.ok() && r->str("session_id") == sid ? Status::OK() : r.status();
    } else if (std::string(type) == "sessions") {
      auto r = conn->sessions();  // a durable head still has the earlier rounds' sessions
      std::size_t n = 0;
      if (r.ok())
        for (const auto& row : *r) n += row.str("session_id") == sid ? 1 : 0;
      st = r.ok() && n == 1 ? Status::OK() : Status::Internal("not listed once");
    } else if (std::string(type) == "nodes") {
      st = conn->nodes().status();
    } else if (std::string(type) == "attach_session") {
      auto r = conn->attach(sid);
      st = r.ok() && r->session_id == sid ? Status::OK() : r.status();
    } else if (std::string(type) == "ping") {
      st = conn->transport().probe_instance().status();
    } else {
      auto r = Connection::open(g_.client_options());
      st = r.status();
    }
    ASSERT_TRUE(stall.join());
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
}

// fetch and requests read the journal: durable sessions only.
class ResentDurable : public ResentEach {};

TEST_P(ResentDurable, FetchAndRequestsAreAnsweredAsTheFirst) {
  g_.add_node({"--workers", "1"});
  ASSERT_TRUE(g_.wait_nodes(1));
  for (const char* type : {"fetch", "requests"}) {
    SCOPED_TRACE(type);
    auto conn = g_.connect();
    std::string sid = NewSession(*conn);
    auto bc = BrokerClient::open(*conn, sid, "c1");
    ASSERT_TRUE(bc.ok());
    ASSERT_TRUE((*bc)->send("1001", "a").ok());
    ASSERT_TRUE((*bc)->end_requests().ok());
    auto done = conn->wait_complete(sid, 20'000);
    ASSERT_TRUE(done.ok()) << done.status().ToString();
    // The stop point counts from the head's start: restart it now (the node
    // registers again; the durable session is recovered).
    StopAt(g_, type);
    auto again = g_.connect();
    Staller stall(g_.head().pid());
    if (std::string(type) == "fetch") {
      auto page = again->fetch(sid, 0, 100, 0);
      ASSERT_TRUE(stall.join());
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      ASSERT_EQ(page->responses.size(), 1u);
      EXPECT_EQ(page->responses[0].user_data, "a");
      EXPECT_TRUE(page->complete);
    } else {
      auto r = again->stored_requests(sid, 0, 100);
      ASSERT_TRUE(stall.join());
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_EQ(r->requests.size(), 1u);
      EXPECT_EQ(r->requests[0].payload, "1001");
    }
  }
}

TEST_P(ResentEach, DrainChangesTheNodeOnce) {
  g_.add_node({"--workers", "1", "--node-id", "n1"});
  ASSERT_TRUE(g_.wait_nodes(1));
  StopAt(g_, "drain");
  ASSERT_TRUE(g_.wait_nodes(1));
  auto conn = g_.connect();
  Staller stall(g_.head().pid());
  Status st = conn->drain_node("n1", false);
  ASSERT_TRUE(stall.join());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(CountLines(g_.head_log(), "node draining node=n1"), 1u) << g_.head_log();
  auto nodes = conn->nodes();
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].str("state"), "draining");
}

INSTANTIATE_TEST_SUITE_P(Sessions, ResentEach, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Durable" : "Interactive"; });
INSTANTIATE_TEST_SUITE_P(Sessions, ResentDurable, ::testing::Values(true),
                         [](const auto&) { return "Durable"; });

// ---- the duplicate's own answer, on a raw socket --------------------------------

// A DEALER that sends a message twice, as the library's resend would, and
// reads both answers.
class Raw {
 public:
  explicit Raw(const std::string& endpoint) : sock_(ctx_, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.connect(endpoint);
  }
  // The two replies (bodies) to two copies of `m`.
  std::vector<std::string> twice(const zmq::message_t& m) {
    for (int i = 0; i < 2; ++i) {
      zmq::message_t copy(m.data(), m.size());
      sock_.send(copy, zmq::send_flags::none);
    }
    std::vector<std::string> out;
    sock_.set(zmq::sockopt::rcvtimeo, 10'000);
    for (int i = 0; i < 2; ++i) {
      zmq::message_t r;
      if (!sock_.recv(r)) break;
      out.push_back(r.to_string());
    }
    return out;
  }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
};

std::uint32_t TypeOf(const std::string& body) {
  Envelope e;
  EXPECT_TRUE(decode_envelope(body.data(), body.size(), &e).ok());
  return e.type;
}

std::string ErrorOf(const std::string& body) {
  Envelope e;
  if (!decode_envelope(body.data(), body.size(), &e).ok() || e.type != proto::kError) return "";
  proto::Error err;
  (void)proto::decode_error(e, &err);
  return err.message;
}

std::string SessionIdOf(const std::string& body) {
  Envelope e;
  if (!decode_envelope(body.data(), body.size(), &e).ok()) return "";
  proto::SessionInfo info;
  return proto::decode_session_info(e, &info).ok() ? info.session_id : "";
}

TEST(Resent, TheSecondCopyIsAnsweredAsTheFirst) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "1", "--node-id", "n1"});
  ASSERT_TRUE(g.wait_nodes(1));
  Raw raw(g.frontend());
  auto conn = g.connect();
  for (bool durable : {false, true}) {
    SCOPED_TRACE(durable ? "durable" : "interactive");
    proto::CreateSession cs{"factorize", durable, 0};
    cs.token = durable ? "token-d" : "token-i";
    auto two = raw.twice(proto::encode_create_session(7, cs));
    ASSERT_EQ(two.size(), 2u);
    ASSERT_EQ(TypeOf(two[0]), proto::kSessionInfo) << ErrorOf(two[0]);
    ASSERT_EQ(TypeOf(two[1]), proto::kSessionInfo) << ErrorOf(two[1]);
    std::string sid = SessionIdOf(two[0]);
    EXPECT_EQ(SessionIdOf(two[1]), sid);

    two = raw.twice(proto::encode_open_client(8, {sid, "c1", "opener-1"}));
    ASSERT_EQ(two.size(), 2u);
    EXPECT_EQ(TypeOf(two[0]), proto::kClientOpened) << ErrorOf(two[0]);
    EXPECT_EQ(TypeOf(two[1]), proto::kClientOpened) << ErrorOf(two[1]);
    two = raw.twice(proto::encode_client_ref(proto::kEndRequests, 9, {sid, "c1", 0}));
    ASSERT_EQ(two.size(), 2u);
    EXPECT_EQ(TypeOf(two[0]), proto::kOk) << ErrorOf(two[0]);
    EXPECT_EQ(TypeOf(two[1]), proto::kOk) << ErrorOf(two[1]);
    // Sealed, an interactive session with nothing left leaves at once: the
    // second seal must not be "unknown session".
    two = raw.twice(proto::encode_close(10, {sid, proto::CloseMode::kSeal}));
    ASSERT_EQ(two.size(), 2u);
    EXPECT_EQ(TypeOf(two[0]), proto::kOk) << ErrorOf(two[0]);
    EXPECT_EQ(TypeOf(two[1]), proto::kOk) << ErrorOf(two[1]);
    two = raw.twice(proto::encode_close(11, {sid, proto::CloseMode::kPurge}));
    ASSERT_EQ(two.size(), 2u);
    EXPECT_EQ(TypeOf(two[0]), proto::kOk) << ErrorOf(two[0]);
    EXPECT_EQ(TypeOf(two[1]), proto::kOk) << ErrorOf(two[1]);
  }
  auto two = raw.twice(proto::encode_drain(12, {"n1", false}));
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(TypeOf(two[0]), proto::kOk) << ErrorOf(two[0]);
  EXPECT_EQ(TypeOf(two[1]), proto::kOk) << ErrorOf(two[1]);
  EXPECT_EQ(CountLines(g.head_log(), "node draining node=n1"), 1u);
  auto list = conn->sessions();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 0u);  // both purged, none made twice
}

// An older client sends no token: it still works (and its create_session
// is the head's to make, as before).
TEST(Resent, AnOlderClientWithoutATokenStillWorks) {
  Grid g;
  g.start_head();
  Raw raw(g.frontend());
  auto two = raw.twice(proto::encode_create_session(3, {"factorize", false, 0}));
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(TypeOf(two[0]), proto::kSessionInfo);
  EXPECT_EQ(TypeOf(two[1]), proto::kSessionInfo);
  std::string sid = SessionIdOf(two[0]);
  auto one = raw.twice(proto::encode_open_client(4, {sid, "old"}));
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(TypeOf(one[0]), proto::kClientOpened);
  EXPECT_EQ(TypeOf(one[1]), proto::kClientOpened);  // same connection: the same client
}

}  // namespace
}  // namespace zgrid
