// One-message sessions (BrokerClient::submit, the `submit` message) with real
// processes: every answer right and exactly once; an interactive session
// leaves the head once delivered; a durable one survives SIGKILL of the head
// after its reply, and a crash between its sync and its reply.
#include <gtest/gtest.h>
#include <zgrid/client.hpp>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "common/protocol.hpp"
#include "tests/support/fetch_all.hpp"
#include "tests/support/grid_process.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::Grid;

// Numbers to factorize, as payload and user_data.
std::vector<std::string> Numbers(std::uint64_t first, std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(std::to_string(first + 7919 * i));
  return out;
}

std::vector<BrokerClient::Item> ItemsOf(const std::vector<std::string>& numbers) {
  std::vector<BrokerClient::Item> items;
  for (const auto& n : numbers) items.push_back({n, n});
  return items;
}

// Every number answered exactly once with its factorization.
void ExpectAnswered(const std::vector<proto::Response>& all,
                    const std::vector<std::string>& numbers) {
  ASSERT_EQ(all.size(), numbers.size());
  std::set<std::uint64_t> ids;
  std::multiset<std::string> seen;
  for (const auto& r : all) {
    EXPECT_TRUE(ids.insert(r.request_id).second) << "request " << r.request_id << " twice";
    ASSERT_TRUE(r.ok()) << r.fault_code << ": " << r.data;
    EXPECT_TRUE(testing::is_factorization(std::stoull(r.user_data), r.data))
        << r.user_data << " = " << r.data;
    seen.insert(r.user_data);
  }
  EXPECT_EQ(seen, std::multiset<std::string>(numbers.begin(), numbers.end()));
}

std::vector<proto::Response> Receive(BrokerClient& bc, std::size_t n) {
  std::vector<proto::Response> all;
  proto::Response r;
  while (all.size() < n) {
    auto got = bc.next_response(&r, 30'000);
    if (!got.ok() || !*got) break;
    all.push_back(r);
  }
  return all;
}

TEST(Submit, AnInteractiveSessionInOneMessageIsAnsweredAndLeavesTheHead) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto numbers = Numbers(1'000'003, 300);
  auto bc = BrokerClient::submit(*conn, {"factorize", false, 0}, "cell-1", ItemsOf(numbers));
  ASSERT_TRUE(bc.ok()) << bc.status().ToString();
  std::string sid = (*bc)->session_id();
  EXPECT_EQ(sid.size(), 32u);
  EXPECT_EQ((*bc)->acked(), 300u);
  ExpectAnswered(Receive(**bc, numbers.size()), numbers);
  // Committed already: end_requests has nothing to do, send is refused.
  EXPECT_TRUE((*bc)->end_requests().ok());
  EXPECT_EQ((*bc)->send("12", "").code(), Code::kFailedPrecondition);
  // Sealed and delivered: the head forgets it, with no close from the client.
  EXPECT_TRUE(testing::wait_until(
      [&] { return conn->session_status(sid).status().code() == Code::kNotFound; }, 10'000, 10));
}

// submit_wait_ms: the reply brings every answer, interactive (delivered: the
// head forgets the session) and durable (committed: a head killed after the
// reply still serves them), and one that does not come in time is replied
// alone and its answers follow as after any submit.
TEST(Submit, WithWaitTheReplyCarriesEveryAnswer) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  client::BrokerOptions bo;
  bo.submit_wait_ms = 30'000;
  auto numbers = Numbers(3'000'017, 100);
  auto bc = BrokerClient::submit(*conn, {"factorize", false, 0}, "c", ItemsOf(numbers), bo);
  ASSERT_TRUE(bc.ok()) << bc.status().ToString();
  // Already here: next_response does not wait for the head.
  ExpectAnswered(Receive(**bc, numbers.size()), numbers);
  std::string sid = (*bc)->session_id();
  EXPECT_TRUE(testing::wait_until(
      [&] { return conn->session_status(sid).status().code() == Code::kNotFound; }, 10'000, 10));
  auto dnumbers = Numbers(4'000'037, 50);
  auto dbc = BrokerClient::submit(*conn, {"factorize", true, 0}, "c", ItemsOf(dnumbers), bo);
  ASSERT_TRUE(dbc.ok()) << dbc.status().ToString();
  ExpectAnswered(Receive(**dbc, dnumbers.size()), dnumbers);
  std::string dsid = (*dbc)->session_id();
  g.kill_head();  // the answers it sent were committed
  g.restart_head();
  auto conn2 = g.connect();
  ExpectAnswered(testing::fetch_all(*conn2, dsid), dnumbers);
  // No node: the wait ends, the reply comes alone, the answers follow.
  g.node(0).kill_now();
  ASSERT_TRUE(g.wait_nodes(0));
  bo.submit_wait_ms = 300;
  auto late = BrokerClient::submit(*conn2, {"factorize", false, 0}, "c", ItemsOf(numbers), bo);
  ASSERT_TRUE(late.ok()) << late.status().ToString();
  proto::Response r;
  auto none = (*late)->next_response(&r, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none);
  g.add_node({"--workers", "2"});
  ExpectAnswered(Receive(**late, numbers.size()), numbers);
}

TEST(Submit, RefusalsAreClearAndTheHeadKeepsServing) {
  Grid g;
  g.start_head();  // no journal
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  auto durable = BrokerClient::submit(*conn, {"echo", true, 0}, "c", {{"p", "u"}});
  EXPECT_EQ(durable.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(durable.status().message().find("--data-dir"), std::string::npos);
  EXPECT_EQ(BrokerClient::submit(*conn, {"echo", false, 0}, "bad id", {{"p", "u"}}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(BrokerClient::submit(*conn, {"no such!", false, 0}, "c", {{"p", "u"}}).status().code(),
            Code::kInvalidArgument);
  // More than one message holds: refused before anything is sent.
  std::vector<BrokerClient::Item> many(2'000, {"p", "u"});
  auto over = BrokerClient::submit(*conn, {"echo", false, 0}, "c", many);
  EXPECT_EQ(over.status().code(), Code::kInvalidArgument);
  EXPECT_NE(over.status().message().find("create_session"), std::string::npos);
  // An item over the payload limit is refused alone; the others run.
  std::string big(proto::kMaxPayload + 1, 'x');
  client::BrokerOptions wide;
  wide.batch_bytes = 4u << 20;
  auto bc = BrokerClient::submit(*conn, {"echo", false, 0}, "c",
                                 {{"a", "1"}, {big, "2"}, {"c", "3"}}, wide);
  ASSERT_TRUE(bc.ok()) << bc.status().ToString();
  EXPECT_EQ((*bc)->rejected(), 1u);
  auto got = Receive(**bc, 2);
  ASSERT_EQ(got.size(), 2u);
  std::map<std::string, std::string> by_user;
  for (const auto& r : got) by_user[r.user_data] = r.data;
  EXPECT_EQ(by_user["1"], "a");
  EXPECT_EQ(by_user["3"], "c");
  EXPECT_TRUE(conn->grid_status().ok());
}

TEST(Submit, ADurableSessionInOneMessageSurvivesAKillOfTheHead) {
  Grid g;
  g.start_durable_head();  // no node yet: nothing runs before the kill
  std::string sid;
  auto numbers = Numbers(2'000'029, 200);
  {
    auto conn = g.connect();
    auto bc = BrokerClient::submit(*conn, {"factorize", true, 0}, "c", ItemsOf(numbers));
    ASSERT_TRUE(bc.ok()) << bc.status().ToString();
    sid = (*bc)->session_id();
  }
  g.kill_head();
  g.restart_head();
  g.add_node({"--workers", "2"});
  auto conn = g.connect();
  ExpectAnswered(testing::fetch_all(*conn, sid), numbers);
  auto st = conn->session_status(sid);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->str("state"), "sealed");
  EXPECT_EQ(st->u64("total"), 200u);
  EXPECT_EQ(st->u64("committed"), 200u);
  EXPECT_TRUE(st->boolean("complete"));
  // Kept until purged.
  EXPECT_TRUE(conn->close_session(sid, proto::CloseMode::kPurge).ok());
  EXPECT_EQ(conn->session_status(sid).status().code(), Code::kNotFound);
}

TEST(Submit, AHeadKilledBetweenTheSyncAndTheReplyKeepsTheSession) {
  Grid g;
  g.start_durable_head();
  g.restart_head({"ZGRID_CRASH_POINT=before-ack:1"});
  auto numbers = Numbers(3'000'017, 50);
  {
    auto conn = g.connect(2'000);
    auto bc = BrokerClient::submit(*conn, {"factorize", true, 0}, "c", ItemsOf(numbers));
    // The head died after the write was synced and before it answered.
    EXPECT_EQ(bc.status().code(), Code::kUnavailable) << bc.status().ToString();
  }
  ASSERT_TRUE(g.wait_head_exit(10'000));
  g.restart_head();
  g.add_node({"--workers", "2"});
  auto conn = g.connect();
  auto list = conn->sessions();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);  // committed, so kept: one session, not two
  std::string sid = (*list)[0].str("session_id");
  ExpectAnswered(testing::fetch_all(*conn, sid), numbers);
}

// Lines "N = factors" of `zgrid fetch`, each input once and rightly factored.
void ExpectFetchedOnce(const std::string& out, const std::vector<std::string>& numbers) {
  std::multiset<std::string> seen;
  std::size_t p = 0;
  while (p < out.size()) {
    std::size_t e = out.find('\n', p);
    std::string line = out.substr(p, e - p);
    p = e == std::string::npos ? out.size() : e + 1;
    std::size_t eq = line.find(" = ");
    ASSERT_NE(eq, std::string::npos) << line;
    EXPECT_TRUE(testing::is_factorization(std::stoull(line.substr(0, eq)), line.substr(eq + 3)))
        << line;
    seen.insert(line.substr(0, eq));
  }
  EXPECT_EQ(seen, std::multiset<std::string>(numbers.begin(), numbers.end())) << out;
}

// A small durable one-message session is one journal record (with its
// answer, when that is ready in time, in the same write). Killed at each
// crash point — after the synced write, before the reply, after the answer
// was recorded — a restarted head has the session exactly once, and another
// process fetches every answer exactly once.
// after-segment-sync (journal format v4): its answer durable in the segment
// file (a redo record) and not yet in LevelDB — with answers kept in
// segment files (ZGRID_JOURNAL_INLINE_MAX=0).
TEST(Submit, ASmallDurableSessionSurvivesAKillAtEveryCrashPoint) {
  for (const char* point :
       {"after-sync:1", "before-ack:1", "after-results:1", "after-segment-sync:1"}) {
    SCOPED_TRACE(point);
    Grid g;
    g.start_durable_head();
    std::vector<std::string> env{std::string("ZGRID_CRASH_POINT=") + point};
    if (std::string_view(point).starts_with("after-segment-sync"))
      env.push_back("ZGRID_JOURNAL_INLINE_MAX=0");
    g.restart_head(env);
    g.add_node({"--workers", "2"});
    ASSERT_TRUE(g.wait_nodes(1));
    auto numbers = Numbers(4'000'037, 3);  // a frame of well under 512 bytes: one record
    {
      auto conn = g.connect(2'000);
      auto bc = BrokerClient::submit(*conn, {"factorize", true, 0}, "c", ItemsOf(numbers));
      // The reply may or may not have left before the kill.
      if (!bc.ok()) {
        EXPECT_EQ(bc.status().code(), Code::kUnavailable) << bc.status().ToString();
      }
    }
    ASSERT_TRUE(g.wait_head_exit(10'000)) << "the head did not reach " << point;
    EXPECT_NE(g.head_log().find("crash point"), std::string::npos) << g.head_log();
    g.restart_head();
    auto conn = g.connect();
    auto list = conn->sessions();
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list->size(), 1u);  // synced before the kill: one session, not none, not two
    std::string sid = (*list)[0].str("session_id");
    auto f = testing::run_cli({"--head", g.frontend(), "fetch", sid});
    ASSERT_EQ(f.code, 0) << f.err;
    ExpectFetchedOnce(f.out, numbers);
    auto st = conn->session_status(sid);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->str("state"), "sealed");
    EXPECT_EQ(st->u64("total"), 3u);
    EXPECT_EQ(st->u64("done"), 3u);
    EXPECT_TRUE(st->boolean("complete"));
    // And once more after a second restart: nothing doubled.
    g.kill_head();
    g.restart_head();
    auto f2 = testing::run_cli({"--head", g.frontend(), "fetch", sid});
    ASSERT_EQ(f2.code, 0) << f2.err;
    ExpectFetchedOnce(f2.out, numbers);
  }
}

TEST(Submit, ManySmallSessionsFromSeveralThreadsEachGetTheirOwnAnswers) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  constexpr int kThreads = 4, kEach = 100;
  std::atomic<int> good{0};
  std::vector<std::string> durable_ids[kThreads];
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      auto conn = g.connect(30'000);
      for (int i = 0; i < kEach; ++i) {
        bool durable = i % 2 == 1;
        std::string tag = std::to_string(t).append("-").append(std::to_string(i));
        auto bc = BrokerClient::submit(*conn, {"echo", durable, 0}, "c", {{"p" + tag, tag}});
        if (!bc.ok()) {
          ADD_FAILURE() << tag << " submit: " << bc.status().ToString();
          continue;
        }
        proto::Response r;
        if (durable) {
          durable_ids[t].push_back((*bc)->session_id());
          auto page = conn->fetch((*bc)->session_id(), 0, 16, 30'000);
          if (!page.ok() || page->responses.size() != 1) {
            ADD_FAILURE() << tag << " fetch: " << page.status().ToString();
            continue;
          }
          r = page->responses[0];
        } else {
          auto got = (*bc)->next_response(&r, 30'000);
          if (!got.ok() || !*got) {
            ADD_FAILURE() << tag << " answer: " << got.status().ToString();
            continue;
          }
        }
        if (r.user_data == tag && r.data == "p" + tag) ++good;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(good.load(), kThreads * kEach);
  // The interactive ones left the head; the durable ones are kept.
  auto conn = g.connect();
  EXPECT_TRUE(testing::wait_until(
      [&] {
        auto list = conn->sessions();
        return list.ok() && list->size() == static_cast<std::size_t>(kThreads * kEach / 2);
      },
      10'000, 20));
}

// `zgrid submit` of a small regular file takes the one-message path (the
// session is sealed from the start); a big one takes the steps (open, and
// "complete" once every request is answered).
TEST(Submit, TheCliSendsASmallFileAsOneMessage) {
  Grid g;
  g.start_durable_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto write = [&](const std::string& name, const std::vector<std::string>& numbers) {
    std::ofstream out(g.dir().file(name));
    for (const auto& n : numbers) out << n << "\n";
    return g.dir().file(name);
  };
  auto small = Numbers(4'000'037, 40), big = Numbers(5'000'011, 1'500);
  std::string small_file = write("small.txt", small), big_file = write("big.txt", big);
  auto conn = g.connect();
  for (const auto& [file, numbers, state] :
       {std::tuple{small_file, small, "sealed"}, std::tuple{big_file, big, "complete"}}) {
    SCOPED_TRACE(file);
    auto r = testing::run_cli({"--head", g.frontend(), "submit", "--durable", "--service",
                               "factorize", "--file", file, "-q"});
    ASSERT_EQ(r.code, 0) << r.err;
    std::string sid = r.out.substr(0, 32);
    ASSERT_EQ(sid.size(), 32u) << r.out;
    ExpectAnswered(testing::fetch_all(*conn, sid), numbers);
    auto st = conn->session_status(sid);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->str("state"), state);
    EXPECT_EQ(st->u64("committed"), numbers.size());
  }
  // Interactive: one line per request, the session gone afterwards.
  auto r = testing::run_cli(
      {"--head", g.frontend(), "submit", "--service", "factorize", "--file", small_file, "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 40);
  EXPECT_NE(r.err.find("zgrid: session "), std::string::npos) << r.err;
}

}  // namespace
}  // namespace zgrid
