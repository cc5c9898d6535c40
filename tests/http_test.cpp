// The head's HTTP listener with real processes (docs/operations.md,
// "Watching the grid"): /metrics scraped while a durable session runs and
// checked by promtool, counters agreeing with `zgrid status`, a SIGKILLed
// node in the gauges and events, the default port taken, JSON logs, and
// hostile HTTP clients that must not disturb dispatch.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zgrid/client.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/grid_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/prom_text.hpp"

namespace zgrid {
namespace {

using client::BrokerClient;
using testing::CliResult;
using testing::CounterSamples;
using testing::Get;
using testing::Got;
using testing::Grid;
using testing::Process;
using testing::read_file;
using testing::run_cli;
using testing::Sample;
using testing::TempDir;
using testing::wait_until;

// `promtool check metrics` on an exposition: its verdict and what it said.
bool PromtoolAccepts(const std::string& text, std::string* said) {
  TempDir dir;
  std::string in = dir.file("metrics.txt"), out = dir.file("promtool.out");
  std::ofstream(in) << text;
  int rc = std::system(("promtool check metrics < " + in + " > " + out + " 2>&1").c_str());
  *said = read_file(out);
  return rc == 0;
}

TEST(Http, MetricsDuringADurableSessionPassPromtoolAndAgreeWithStatus) {
  Grid g;
  g.start_durable_head({"--heartbeat", "200ms"});
  ASSERT_FALSE(g.http_url().empty()) << g.head_log();
  g.add_node({"--workers", "2"});
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(2));
  Process submit({ZGRID_CLI_BIN, "--head", g.frontend(), "submit", "--service", "factorize",
                  "--durable", "--random", "600000"},
                 g.dir().file("submit.log"));
  std::map<std::string, double> last;
  int scrapes = 0, during = 0;
  do {
    Got m = Get(g.http_url(), "/metrics");
    ASSERT_EQ(m.status, 200);
    std::string said;
    ASSERT_TRUE(PromtoolAccepts(m.body, &said)) << said << "\n" << m.body;
    auto now = CounterSamples(m.body);
    for (const auto& [k, v] : last) {
      ASSERT_TRUE(now.count(k)) << k << " vanished";
      EXPECT_GE(now[k], v) << k << " decreased";
    }
    last = now;
    ++scrapes;
    if (Sample(m.body, "zgrid_requests_accepted_total{service=\"factorize\"}") > 0) ++during;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (submit.running() && scrapes < 600);
  ASSERT_EQ(submit.wait(60'000), 0) << read_file(g.dir().file("submit.log"));
  EXPECT_GE(during, 1) << "no scrape saw the session's requests";
  std::string out = read_file(g.dir().file("submit.log"));
  std::string sid = out.substr(out.rfind('\n', out.size() - 2) + 1);
  sid.erase(sid.find_last_not_of("\n") + 1);
  ASSERT_EQ(sid.size(), 32u) << out;
  // Complete: the counters agree with `zgrid status`.
  auto conn = g.connect();
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = conn->session_status(sid);
        return st.ok() && st->boolean("complete");
      },
      60'000));
  auto grid = conn->grid_status();
  ASSERT_TRUE(grid.ok());
  std::string text;
  ASSERT_TRUE(wait_until(
      [&] {
        text = Get(g.http_url(), "/metrics").body;
        return Sample(text, "zgrid_sessions{kind=\"durable\",state=\"complete\"}") == 1;
      },
      5'000))
      << text;
  EXPECT_EQ(Sample(text, "zgrid_requests_total{service=\"factorize\",outcome=\"done\"}"),
            static_cast<double>(grid->u64("done")));
  EXPECT_EQ(Sample(text, "zgrid_requests_total{service=\"factorize\",outcome=\"done\"}"), 600000);
  EXPECT_EQ(Sample(text, "zgrid_requests_accepted_total{service=\"factorize\"}"), 600000);
  EXPECT_EQ(Sample(text, "zgrid_request_duration_seconds_count{service=\"factorize\"}"), 600000);
  EXPECT_EQ(Sample(text, "zgrid_journal_syncs_total"),
            static_cast<double>(grid->u64("journal_syncs")));
  EXPECT_EQ(Sample(text, "zgrid_journal_sync_seconds_count"),
            static_cast<double>(grid->u64("journal_syncs")));
  // One sync a group: a durable stream's groups are made durable by their
  // segment file's sync (redo records), the others by LevelDB's.
  const double redo = Sample(text, "zgrid_journal_redo_groups_total");
  EXPECT_GT(redo, 0);
  EXPECT_GE(Sample(text, "zgrid_journal_fsyncs_total{kind=\"segment\"}"), redo);
  EXPECT_EQ(redo + Sample(text, "zgrid_journal_fsyncs_total{kind=\"leveldb\"}"),
            Sample(text, "zgrid_journal_syncs_total"));
  EXPECT_EQ(Sample(text, "zgrid_nodes{state=\"ok\"}"), 2);
  EXPECT_EQ(Sample(text, "zgrid_workers{state=\"ok\"}"), 3);
  EXPECT_EQ(grid->str("dashboard"), g.http_url());
  EXPECT_GT(Sample(text, "process_resident_memory_bytes"), 1e6);
  EXPECT_GT(Sample(text, "process_open_fds"), 3);

  // A node SIGKILLed: the lost gauge and the event.
  g.node(1).kill_now();
  ASSERT_TRUE(wait_until(
      [&] {
        text = Get(g.http_url(), "/metrics").body;
        return Sample(text, "zgrid_nodes{state=\"lost\"}") == 1;
      },
      10'000))
      << text;
  EXPECT_EQ(Sample(text, "zgrid_nodes{state=\"ok\"}"), 1);
  EXPECT_EQ(Sample(text, "zgrid_nodes_lost_total{reason=\"silent\"}") +
                Sample(text, "zgrid_nodes_lost_total{reason=\"unreachable\"}"),
            1);
  auto events = nlohmann::json::parse(Get(g.http_url(), "/api/events").body);
  std::map<std::string, int> kinds;
  for (const auto& e : events["events"]) ++kinds[e["kind"].get<std::string>()];
  EXPECT_EQ(kinds["node_lost"], 1) << events.dump();
  EXPECT_EQ(kinds["node_registered"], 2);
  EXPECT_EQ(kinds["session_committed"], 1);
  EXPECT_EQ(kinds["session_complete"], 1);
  auto sessions = nlohmann::json::parse(Get(g.http_url(), "/api/sessions").body);
  ASSERT_EQ(sessions["total"], 1);
  EXPECT_EQ(sessions["sessions"][0]["session_id"], sid);
  EXPECT_EQ(sessions["sessions"][0]["done"], 600000);
  std::string said;
  EXPECT_TRUE(PromtoolAccepts(text, &said)) << said;
}

// Sends `inputs` on one interactive client of a new session of `service`
// and waits for every answer (when `answers`); the responses by input.
std::map<std::string, proto::Response> Send(client::Connection& conn, const std::string& service,
                                            const std::vector<std::string>& inputs,
                                            bool answers = true) {
  std::map<std::string, proto::Response> got;
  auto info = conn.create_session({service, false, 0});
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  if (!info.ok()) return got;
  auto bc = BrokerClient::open(conn, info->session_id, "hostile");
  EXPECT_TRUE(bc.ok()) << bc.status().ToString();
  if (!bc.ok()) return got;
  proto::Response r;
  for (const auto& in : inputs) {
    EXPECT_TRUE((*bc)->send(in, in).ok());
    while ((*bc)->poll_response(&r)) got.emplace(r.user_data, r);
  }
  EXPECT_TRUE((*bc)->end_requests().ok());
  if (!answers) {
    EXPECT_TRUE(wait_until(
        [&] {
          auto st = conn.session_status(info->session_id);
          return st.ok() && st->u64("total") == inputs.size();
        },
        10'000));
    return got;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (got.size() < inputs.size() && std::chrono::steady_clock::now() < deadline) {
    auto n = (*bc)->next_response(&r, 1000);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (!n.ok()) break;
    if (*n) got.emplace(r.user_data, r);
  }
  EXPECT_EQ(got.size(), inputs.size());
  return got;
}

// The samples of one family ("name{...} value" lines), by their labels.
std::map<std::string, double> Family(const std::string& text, const std::string& name) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0) {
      auto sp = line.rfind(' ');
      out[line.substr(name.size(), sp - name.size())] = std::stod(line.substr(sp + 1));
    }
  return out;
}

// Whatever fault codes and service names clients choose, /metrics stays a
// valid exposition (promtool) of a bounded size, the JSON API stays JSON,
// and each response keeps its raw fault code.
TEST(Http, HostileFaultCodesAndServiceNamesKeepMetricsValidAndBounded) {
  Grid g;
  g.start_head();
  g.add_node({"--workers", "2"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto conn = g.connect();
  std::string text, said;
  auto scrape_is_valid = [&](const char* after) {
    Got m = Get(g.http_url(), "/metrics");
    text = m.body;
    EXPECT_EQ(m.status, 200) << after;
    EXPECT_TRUE(PromtoolAccepts(text, &said)) << after << ": " << said;
    for (const char* path :
         {"/api/status", "/api/nodes", "/api/sessions?limit=500", "/api/events"}) {
      Got j = Get(g.http_url(), path);
      EXPECT_EQ(j.status, 200) << path;
      nlohmann::json parsed;
      EXPECT_NO_THROW(parsed = nlohmann::json::parse(j.body)) << after << ": " << path;
    }
  };
  auto faults = [&] { return Family(text, "zgrid_request_faults_total"); };

  // Codes that are not UTF-8, one cut by the node's 64-byte limit in the
  // middle of a character, a surrogate, and the format's own specials.
  const std::vector<std::string> bad = {"fault:\xff\xfe",
                                        "fault:\xc3",
                                        "fault:" + std::string(63, 'a') + "\xc3\xa9",
                                        "fault:\xed\xa0\x80",
                                        "fault:a\"b\\c}",
                                        "fault:service_error",
                                        "ok:fine"};
  auto got = Send(*conn, "fail", bad);
  ASSERT_EQ(got.size(), bad.size());
  EXPECT_EQ(got["fault:\xff\xfe"].fault_code, "\xff\xfe");  // the raw code, as the service said
  EXPECT_EQ(got["fault:\xc3"].fault_code, "\xc3");
  EXPECT_EQ(got["fault:a\"b\\c}"].fault_code, "a\"b\\c}");
  ASSERT_TRUE(wait_until(
      [&] {
        text = Get(g.http_url(), "/metrics").body;
        return Sample(text, "zgrid_requests_total{service=\"fail\",outcome=\"faulted\"}") == 6;
      },
      5'000))
      << text;
  scrape_is_valid("invalid UTF-8 fault codes");
  EXPECT_EQ(faults(),
            (std::map<std::string, double>{{"{service=\"fail\",code=\"other\"}", 5},
                                           {"{service=\"fail\",code=\"service_error\"}", 1}}))
      << text;

  // 10,000 distinct codes: still one series for all of them.
  std::vector<std::string> many;
  for (int i = 0; i < 10'000; ++i) many.push_back("fault:code" + std::to_string(i));
  got = Send(*conn, "fail", many);
  ASSERT_EQ(got.size(), many.size());
  EXPECT_EQ(got["fault:code9999"].fault_code, "code9999");
  ASSERT_TRUE(wait_until(
      [&] {
        text = Get(g.http_url(), "/metrics").body;
        return Sample(text, "zgrid_request_faults_total{service=\"fail\",code=\"other\"}") ==
               10'005;
      },
      10'000))
      << text.substr(0, 4000);
  scrape_is_valid("10,000 distinct fault codes");
  EXPECT_EQ(faults().size(), 2u) << text.substr(0, 4000);
  std::size_t before = text.size();

  // 300 sessions of services no node offers, each with a request accepted:
  // a bounded number of service labels, the rest under "(other)".
  for (int i = 0; i < 300; ++i) {
    std::string svc = "nosuch" + std::to_string(i);
    Send(*conn, svc, {"x"}, /*answers=*/false);
  }
  ASSERT_TRUE(wait_until(
      [&] {
        text = Get(g.http_url(), "/metrics").body;
        return Sample(text, "zgrid_requests_queued") == 300;
      },
      10'000))
      << text.substr(0, 4000);
  scrape_is_valid("300 service names");
  auto accepted = Family(text, "zgrid_requests_accepted_total");
  std::set<std::string> services;
  double total = 0;
  for (const auto& [labels, v] : accepted) {
    services.insert(labels);
    total += v;
  }
  EXPECT_EQ(total, 300 + 10'007) << text.substr(0, 4000);  // every request counted once
  EXPECT_LE(services.size(), 2u + 20u) << "fail, factorize…: the offered; 20 unoffered; (other)";
  EXPECT_GE(Sample(text, "zgrid_requests_accepted_total{service=\"(other)\"}"), 300 - 20);
  // What a client adds is bounded: a few service families, not one per name.
  EXPECT_LT(text.size(), before + 25 * 3'000) << "scrape grew from " << before;
  EXPECT_LT(text.size(), 150'000u);
  std::printf("scrape: %zu bytes after the fault codes, %zu after the service names\n", before,
              text.size());
}

// Every kind of event the reactor records reaches /api/events: a drained
// and undrained node, a client removed by the idle timeout (and its
// requests in zgrid_requests_total{outcome="removed"}), a purged session,
// and the journal refusing writes and taking them again.
TEST(Http, EventsOfDrainRemovalPurgeAndTheJournal) {
  Grid g;
  std::string fault = g.dir().file("journal-fault");
  g.start_durable_head();
  g.restart_head({"ZGRID_JOURNAL_FAULT_FILE=" + fault});
  g.add_node({"--workers", "1", "--node-id", "n1"});
  ASSERT_TRUE(g.wait_nodes(1));
  auto cli = [&](std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {"--head", g.frontend()});
    return run_cli(args, in);
  };
  EXPECT_EQ(cli({"drain", "n1", "--no-wait"}).code, 0);
  EXPECT_EQ(cli({"drain", "n1", "--undo"}).code, 0);
  CliResult done = cli({"submit", "--durable", "--service", "factorize", "--random", "50"});
  ASSERT_EQ(done.code, 0) << done.err;
  std::string sid = done.out.substr(0, 32);
  ASSERT_EQ(cli({"fetch", sid}).code, 0);
  EXPECT_EQ(cli({"close", sid, "--purge"}).code, 0);
  // Sent, acknowledged, never committed: removed after its 1 s idle timeout.
  CliResult idle = cli({"submit", "--durable", "--no-end", "--client-idle-timeout", "1s",
                        "--service", "factorize", "--random", "20"});
  ASSERT_EQ(idle.code, 0) << idle.err;
  { std::ofstream(fault) << "x"; }
  EXPECT_EQ(cli({"submit", "--durable", "--service", "factorize", "--random", "5"}).code, 2);
  std::filesystem::remove(fault);
  ASSERT_TRUE(wait_until(
      [&] {
        return cli({"submit", "--durable", "--service", "factorize", "--random", "5"}).code == 0;
      },
      20'000, 500));
  std::map<std::string, int> kinds;
  std::string body;
  ASSERT_TRUE(wait_until(
      [&] {
        body = Get(g.http_url(), "/api/events").body;
        kinds.clear();
        nlohmann::json events = nlohmann::json::parse(body);  // alive while iterated
        for (const auto& e : events["events"]) ++kinds[e["kind"].get<std::string>()];
        return kinds["client_removed"] == 1 && kinds["journal_recovered"] == 1;
      },
      15'000))
      << body;
  for (const char* k : {"node_registered", "node_drained", "node_undrained", "session_committed",
                        "session_complete", "session_purged", "client_removed", "journal_unhealthy",
                        "journal_recovered"})
    EXPECT_GE(kinds[k], 1) << k << " in " << body;
  std::string text = Get(g.http_url(), "/metrics").body;
  EXPECT_EQ(Sample(text, "zgrid_requests_total{service=\"factorize\",outcome=\"removed\"}"), 20);
  EXPECT_GE(Sample(text, "zgrid_journal_failed_writes_total"), 1);
  EXPECT_EQ(Sample(text, "zgrid_journal_healthy"), 1);
}

// Holds a listening TCP socket on 127.0.0.1:port (0: any); -1 if another
// listener has it.
int Listen(int port, int* bound) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int yes = 1;  // connections of earlier tests in TIME_WAIT do not count
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *bound = ntohs(a.sin_port);
  return fd;
}

TEST(Http, TheDefaultPortTakenServesOnAnotherAndAGivenOneMustBind) {
  int port = 0;
  int held = Listen(0, &port);
  ASSERT_GE(held, 0);
  TempDir dir;
  Process head({ZGRID_HEAD_BIN, "--frontend", "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0",
                "--http", "127.0.0.1:" + std::to_string(port)},
               dir.file("head.log"));
  EXPECT_EQ(head.wait(10'000), 2);
  std::string log = read_file(dir.file("head.log"));
  EXPECT_NE(
      log.find("zgrid-head: error: --http: cannot listen on 127.0.0.1:" + std::to_string(port)),
      std::string::npos)
      << log;
  ::close(held);

  // The default 9755: hold it and start a head. Every head of the tests
  // running beside this one tries 9755 first, so one of them may have it for
  // a moment: wait (bounded) until this test holds it, or the head started
  // next could get it when that head stops.
  int dflt = 0;
  int held_default = -1;
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       (held_default = Listen(9755, &dflt)) < 0 && std::chrono::steady_clock::now() < until;)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GE(held_default, 0) << "port 9755 stayed taken for 60 s";
  Grid g;
  g.start_head();
  ASSERT_FALSE(g.http_url().empty());
  EXPECT_EQ(g.http_url().find(":9755/"), std::string::npos) << g.http_url();
  EXPECT_NE(g.head_log().find("port 9755 is in use: serving HTTP on port"), std::string::npos)
      << g.head_log();
  EXPECT_EQ(Get(g.http_url(), "/metrics").status, 200);
  ::close(held_default);
  // Two heads on the default: never the same port (no SO_REUSEPORT sharing).
  Grid a, b;
  a.start_head();
  b.start_head();
  EXPECT_NE(a.http_url(), b.http_url());
  auto ia = a.connect()->grid_status(), ib = b.connect()->grid_status();
  ASSERT_TRUE(ia.ok() && ib.ok());
  EXPECT_NE(Get(a.http_url(), "/metrics").body.find(ia->str("instance")), std::string::npos);
  EXPECT_NE(Get(b.http_url(), "/metrics").body.find(ib->str("instance")), std::string::npos);

  // Every interface (nothing is sent anywhere): the warning, like the ZeroMQ ports'.
  Grid wide;
  wide.start_head({"--http", "0.0.0.0:0"});
  EXPECT_NE(wide.head_log().find("is reachable from other hosts and asks no token"),
            std::string::npos)
      << wide.head_log();
  // Off: no listener and no address in the endpoints file.
  Grid off;
  off.start_head({"--http", "off"});
  EXPECT_TRUE(off.http_url().empty());
  auto conn = off.connect();
  auto st = conn->grid_status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->str("dashboard"), "");
}

TEST(Http, LogsAsJsonOneObjectPerLine) {
  Grid g;
  g.start_head({"--log-format", "json"});
  g.add_node({"--workers", "1", "--log-format", "json"});
  ASSERT_TRUE(g.wait_nodes(1));
  CliResult r =
      run_cli({"--head", g.frontend(), "submit", "--service", "factorize", "--file", "-"}, "12\n");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream in(g.head_log() + read_file(g.dir().file("node0.log")));
  std::string line;
  int lines = 0, joined = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;
    for (const char* k : {"time", "level", "component", "message"})
      EXPECT_TRUE(j.contains(k)) << line;
    if (j["message"].get<std::string>().rfind("node joined", 0) == 0) {
      ++joined;
      EXPECT_FALSE(j.value("node", "").empty()) << line;  // key=value words become fields
      EXPECT_EQ(j["workers"], "1");
    }
    ++lines;
  }
  EXPECT_GE(lines, 4);
  EXPECT_EQ(joined, 1);
  Process bad({ZGRID_HEAD_BIN, "--log-format", "xml"}, g.dir().file("bad.log"));
  EXPECT_EQ(bad.wait(10'000), 2);
  EXPECT_NE(read_file(g.dir().file("bad.log")).find("--log-format: expected text or json"),
            std::string::npos);
}

}  // namespace
}  // namespace zgrid
