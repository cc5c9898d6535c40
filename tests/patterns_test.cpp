// Batch patterns with real processes (docs/operations.md): resubmitting what
// faulted (BizTalk-style), and the honest end of a session whose submitter
// died before committing (abandoned).
#include <gtest/gtest.h>
#include <zgrid/client.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "tests/support/fetch_all.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::Grid;
using testing::run_cli;
using testing::wait_until;

const std::string kSource = ZGRID_SOURCE_DIR;

void Write(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

// Two registrations of the exec test worker's `picky` operation: version 1
// fails on inputs starting with "bad" (service_error), version 2 is fixed;
// both refuse inputs starting with "junk" (invalid_argument).
std::string PickyRegistrations(const std::string& dir) {
  std::string reg = dir + "/services.d";
  std::filesystem::create_directories(reg);
  for (int v : {1, 2}) {
    Write(reg + "/picky" + std::to_string(v) + ".toml",
          "name = \"picky\"\nversion = \"" + std::to_string(v) + "\"\nprogram = \"" + kSource +
              "/tests/exec/test_worker.py\"\noperations = \"picky\"\nenv = [\"PYTHONPATH=" +
              kSource + "/python\"" + (v == 2 ? ", \"ZGRID_TEST_FIXED=1\"" : "") + "]\n");
  }
  return reg;
}

std::string Input(int i) {
  if (i % 10 == 3) return "bad " + std::to_string(i);
  if (i % 10 == 7) return "junk " + std::to_string(i);
  return "ok " + std::to_string(i);
}

std::vector<proto::Response> FetchAll(client::Connection& conn, const std::string& sid) {
  return testing::fetch_all(conn, sid, 60'000);
}

std::string SessionIdFrom(const std::string& err) {
  auto p = err.find("zgrid: session ");
  return p == std::string::npos ? "" : err.substr(p + 15, 32);
}

// A session with invalid_argument faults and a service failing on some
// inputs; its service_error ones resubmitted to the fixed version give the
// missing results, mapped back by the original request ids; the original
// is unchanged.
TEST(Resubmit, FaultedRequestsRunAgainOnAFixedServiceWithTheirOriginalIds) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2", "--services-dir", PickyRegistrations(g.dir().path())});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto info = conn->create_session({"picky@1", true, 0});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  const std::string sid = info->session_id;
  {
    auto bc = BrokerClient::open(*conn, sid, "c");
    ASSERT_TRUE(bc.ok());
    for (int i = 0; i < 100; ++i) ASSERT_TRUE((*bc)->send(Input(i), Input(i)).ok());
    ASSERT_TRUE((*bc)->end_requests().ok());
  }
  std::map<std::uint64_t, std::string> input_of;  // original request id -> its input
  std::map<std::string, int> codes;
  for (const auto& r : FetchAll(*conn, sid)) {
    input_of[r.request_id] = r.user_data;
    if (!r.ok()) ++codes[r.fault_code];
  }
  ASSERT_EQ(input_of.size(), 100u);
  EXPECT_EQ(codes["service_error"], 10);
  EXPECT_EQ(codes["invalid_argument"], 10);

  // The CLI: only service_error, to the fixed version, durable.
  auto r = run_cli({"--head", g.frontend(), "resubmit", sid, "--codes", "service_error",
                    "--service", "picky@2", "--durable"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string again = SessionIdFrom(r.err);
  ASSERT_EQ(again.size(), 32u) << r.err;
  auto fixed = FetchAll(*conn, again);
  ASSERT_EQ(fixed.size(), 10u);
  for (const auto& x : fixed) {
    ASSERT_TRUE(x.ok()) << x.fault_code << " " << x.data;
    std::uint64_t original = std::stoull(x.user_data);
    ASSERT_TRUE(input_of.count(original)) << x.user_data;
    EXPECT_EQ(input_of[original].rfind("bad ", 0), 0u);
    EXPECT_EQ(x.data, "fixed: " + input_of[original]);
  }
  // Every faulted one, interactive, through the CLI: invalid_argument stays.
  auto all = run_cli(
      {"--head", g.frontend(), "resubmit", sid, "--faulted", "--service", "picky@2", "--json"});
  EXPECT_EQ(all.code, 1) << all.err;  // the junk still faults
  EXPECT_NE(all.err.find("resubmitting 20 requests"), std::string::npos) << all.err;
  int lines = 0;
  for (std::size_t at = 0; (at = all.out.find('\n', at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, 20) << all.out;
  // The library: resubmit() to a durable session.
  proto::CreateSession cs;
  cs.service = "picky@2";
  cs.durable = true;
  auto lib = conn->resubmit(sid, {"service_error"}, cs);
  ASSERT_TRUE(lib.ok()) << lib.status().ToString();
  EXPECT_EQ(FetchAll(*conn, lib->session_id).size(), 10u);
  // The original is as it was.
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->u64("done"), 80u);
  EXPECT_EQ(st->u64("faulted"), 20u);
  // Nothing faulted with that code: nothing to do, exit 0.
  auto none = run_cli({"--head", g.frontend(), "resubmit", again});
  EXPECT_EQ(none.code, 0) << none.err;
  EXPECT_NE(none.err.find("nothing to resubmit"), std::string::npos) << none.err;
}

TEST(Resubmit, RefusedForInteractiveAndIncompleteSessions) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto inter = conn->create_session({"echo", false, 0});
  ASSERT_TRUE(inter.ok());
  auto r = run_cli({"--head", g.frontend(), "resubmit", inter->session_id});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("durable sessions only"), std::string::npos) << r.err;
  auto open = conn->create_session({"echo", true, 0});
  ASSERT_TRUE(open.ok());
  auto bc = BrokerClient::open(*conn, open->session_id, "c");
  ASSERT_TRUE(bc.ok());
  ASSERT_TRUE((*bc)->send("x", "x").ok());
  ASSERT_TRUE((*bc)->flush().ok());
  auto o = run_cli({"--head", g.frontend(), "resubmit", open->session_id});
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.err.find("not complete"), std::string::npos) << o.err;
}

// The submitter died before committing: with a 2 s client idle timeout its
// client is removed; status, sessions and fetch say what happened, and
// fetch ends at once with exit 1 and one line.
TEST(Abandoned, StatusSessionsAndFetchSayWhatHappened) {
  Grid g;
  g.start_durable_head({"--client-idle-timeout", "2s"});
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  std::string input;
  for (int i = 0; i < 20; ++i) input += std::to_string(100 + i) + "\n";
  auto sub = run_cli({"--head", g.frontend(), "submit", "--service", "factorize", "--durable",
                      "--no-end", "--client-id", "lab-pc", "--file", "-"},
                     input);
  ASSERT_EQ(sub.code, 0) << sub.err;
  const std::string sid = SessionIdFrom(sub.err);
  ASSERT_EQ(sid.size(), 32u) << sub.err;
  auto conn = g.connect();
  // Before the removal: open, and who it waits for.
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->str("state"), "open");
  EXPECT_EQ(st->str("waiting_for"), "lab-pc");
  EXPECT_LE(st->u64("removal_in_ms"), 2'000u);
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = conn->session_status(sid);
        return s.ok() && s->u64("clients_removed") == 1;
      },
      15'000));
  st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->str("state"), "abandoned");
  EXPECT_TRUE(st->boolean("complete"));
  EXPECT_EQ(st->u64("removed"), 20u);
  EXPECT_EQ(st->str("waiting_for"), "");
  const std::string removals = st->str("removals");
  EXPECT_NE(removals.find("client lab-pc removed at 20"), std::string::npos) << removals;
  EXPECT_NE(removals.find("idle, before committing, with 20 requests"), std::string::npos)
      << removals;
  auto sessions = run_cli({"--head", g.frontend(), "sessions"});
  ASSERT_EQ(sessions.code, 0) << sessions.err;
  EXPECT_NE(sessions.out.find("abandoned"), std::string::npos) << sessions.out;
  auto status = run_cli({"--head", g.frontend(), "status", sid});
  EXPECT_NE(status.out.find("abandoned"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("lab-pc"), std::string::npos) << status.out;
  const Clock& clock = SteadyClock::instance();
  Millis t0 = clock.now_ms();
  auto f = run_cli({"--head", g.frontend(), "fetch", sid});
  EXPECT_LT(clock.now_ms() - t0, 2'000);
  EXPECT_EQ(f.code, 1);
  EXPECT_EQ(f.out, "");
  EXPECT_EQ(std::count(f.err.begin(), f.err.end(), '\n'), 1) << f.err;
  EXPECT_NE(f.err.find("was abandoned"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("client lab-pc removed at"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("with 20 requests"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("commit"), std::string::npos) << f.err;
  // zgrid wait ends at once too, with the same line and exit 1.
  auto w = run_cli({"--head", g.frontend(), "wait", sid, "--timeout", "5s"});
  EXPECT_EQ(w.code, 1) << w.err;
  EXPECT_NE(w.err.find("was abandoned"), std::string::npos) << w.err;
  // After a head restart the story is the same (the removal is journaled).
  conn.reset();
  g.kill_head();
  g.restart_head();
  auto conn2 = g.connect();
  auto st2 = conn2->session_status(sid);
  ASSERT_TRUE(st2.ok());
  EXPECT_EQ(st2->str("state"), "abandoned");
  EXPECT_EQ(st2->str("removals"), removals);
}

}  // namespace
}  // namespace zgrid
