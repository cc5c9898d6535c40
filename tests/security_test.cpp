// Security (issue 6, docs/security.md): CURVE on both ports, a ZAP handler
// that admits only listed keys, sessions owned by their key, fair shares
// between keys, per-key caps and safe defaults. Real processes on loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zgrid/client.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/curve.hpp"
#include "support/grid_process.hpp"
#include "support/http_client.hpp"

namespace zgrid {
namespace {

using testing::CliResult;
using testing::Grid;
using testing::Process;
using testing::read_file;
using testing::run_cli;
using testing::TempDir;
using testing::wait_until;

// Key pairs written the way `zgrid keygen` writes them, and the head's
// authorized directories.
class Keys {
 public:
  Keys() {
    for (const char* d : {"clients", "nodes", "admins"}) ::mkdir(dir_.file(d).c_str(), 0755);
    for (const char* n : {"head", "alice", "bob", "carol", "node1", "mallory"}) make(n);
    allow("alice", "clients");
    allow("bob", "clients");
    allow("carol", "admins");
    allow("node1", "nodes");
  }
  void make(const std::string& name) {
    auto kp = curve::generate();
    EXPECT_TRUE(kp.ok());
    pairs_[name] = *kp;
    auto paths = curve::write_pair(dir_.path(), name, *kp, false);
    EXPECT_TRUE(paths.ok()) << paths.status().ToString();
  }
  void allow(const std::string& name, const std::string& list) {
    std::ifstream in(pub(name));
    std::ofstream out(dir_.file(list + "/" + name + ".pub"));
    out << in.rdbuf();
  }
  std::string pub(const std::string& name) const { return dir_.file(name + ".pub"); }
  std::string key(const std::string& name) const { return dir_.file(name + ".key"); }
  const curve::KeyPair& pair(const std::string& name) { return pairs_[name]; }
  std::string dir(const std::string& list) const { return dir_.file(list); }

  std::vector<std::string> head_flags() const {
    return {"--curve-secret",     key("head"),  "--authorized-clients", dir("clients"),
            "--authorized-nodes", dir("nodes"), "--admin-keys",         dir("admins")};
  }
  std::vector<std::string> node_flags(const std::string& name) const {
    return {"--head-key", pub("head"), "--key", key(name), "--workers", "2"};
  }
  std::vector<std::string> cli(const Grid& g, const std::string& name,
                               std::vector<std::string> args) const {
    std::vector<std::string> a{"--head",    g.frontend(), "--head-key",
                               pub("head"), "--key",      key(name)};
    a.insert(a.end(), args.begin(), args.end());
    return a;
  }
  client::ClientOptions options(const Grid& g, const std::string& name) {
    client::ClientOptions o = g.client_options();
    o.head_key = pair("head").public_z85;
    o.public_key = pair(name).public_z85;
    o.secret_key = pair(name).secret_z85;
    o.timeout_ms = 10'000;
    return o;
  }

 private:
  TempDir dir_;
  std::map<std::string, curve::KeyPair> pairs_;
};

std::string sorted_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grid.start_durable_head(keys.head_flags());
    grid.set_client_keys(keys.pair("head").public_z85, keys.pair("alice").public_z85,
                         keys.pair("alice").secret_z85);
  }
  void add_node() { grid.add_node(keys.node_flags("node1")); }

  Keys keys;
  Grid grid;
};

TEST_F(SecurityTest, AdmittedKeysWorkEndToEnd) {
  add_node();
  ASSERT_TRUE(grid.wait_nodes(1));
  CliResult r = run_cli(
      keys.cli(grid, "alice", {"submit", "--service", "factorize", "--file", "-"}), "12\n35\n97\n");
  ASSERT_EQ(r.code, 0) << r.err;
  // Interactive results arrive as they complete: compare them in order.
  EXPECT_EQ(sorted_lines(r.out), "12 = 2 * 2 * 3\n35 = 5 * 7\n97 = 97\n");
  // The same keys from a config file ...
  std::string conf = grid.dir().file("zgrid.toml");
  {
    std::ofstream f(conf);
    f << "head = \"" << grid.frontend() << "\"\nhead-key = \"" << keys.pub("head") << "\"\nkey = \""
      << keys.key("bob") << "\"\n";
  }
  r = run_cli({"--config", conf, "submit", "--service", "factorize", "--file", "-"}, "10\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "10 = 2 * 5\n");
  // ... and from the environment.
  ::setenv("ZGRID_HEAD_KEY", keys.pub("head").c_str(), 1);
  ::setenv("ZGRID_KEY", keys.key("alice").c_str(), 1);
  r = run_cli({"--head", grid.frontend(), "submit", "--service", "factorize", "--file", "-"},
              "14\n");
  ::unsetenv("ZGRID_HEAD_KEY");
  ::unsetenv("ZGRID_KEY");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "14 = 2 * 7\n");
}

TEST_F(SecurityTest, UnknownClientKeyGetsAClearErrorQuickly) {
  Millis t0 = SteadyClock::instance().now_ms();
  auto c = client::Connection::open(keys.options(grid, "mallory"));
  Millis took = SteadyClock::instance().now_ms() - t0;
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kUnauthenticated) << c.status().ToString();
  EXPECT_NE(c.status().message().find("refused this key"), std::string::npos);
  EXPECT_LT(took, 5'000);  // bounded, well under the 10 s request timeout

  CliResult r = run_cli(keys.cli(grid, "mallory", {"status"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("zgrid: error: unauthenticated: the head refused this key"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(wait_until(
      [&] { return grid.head_log().find("refused client key") != std::string::npos; }, 5'000));
}

// Issue 13.7: a client holding the wrong server key cannot even complete a
// handshake (the head cannot open its HELLO and hangs up). It used to wait
// out the whole 10 s request timeout; now it fails within 2 s, naming the
// likely cause, while the other two mistakes stay as fast as they were.
TEST_F(SecurityTest, WrongHeadKeyFailsFastNamingTheLikelyCause) {
  const Clock& clock = SteadyClock::instance();
  std::vector<std::string> args{"--head",        grid.frontend(), "--head-key",
                                keys.pub("bob"), "--key",         keys.key("alice"),
                                "--timeout",     "10s",           "status"};
  Millis t0 = clock.now_ms();
  CliResult r = run_cli(args);
  Millis wrong_key = clock.now_ms() - t0;
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("zgrid: error: unauthenticated: the head closed the CURVE handshake"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--head-key is most likely not this head's public key"), std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_LT(wrong_key, 2'000);

  t0 = clock.now_ms();
  r = run_cli(keys.cli(grid, "mallory", {"status"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_LT(clock.now_ms() - t0, 1'000) << "unlisted key";
  t0 = clock.now_ms();
  r = run_cli({"--head", grid.frontend(), "status"});
  EXPECT_EQ(r.code, 2);
  EXPECT_LT(clock.now_ms() - t0, 1'000) << "plain client";
  // The right key still works.
  r = run_cli(keys.cli(grid, "alice", {"status"}));
  EXPECT_EQ(r.code, 0) << r.err;
}

TEST_F(SecurityTest, PlaintextClientCannotTalkToACurveHead) {
  CliResult r = run_cli({"--head", grid.frontend(), "--timeout", "5s", "status"});
  EXPECT_EQ(r.code, 2);
  // Which side notices the mismatch first varies: either way one clear line.
  EXPECT_TRUE(r.err.find("unauthenticated: security mismatch") != std::string::npos ||
              r.err.find("unauthenticated: handshake with the head failed") != std::string::npos ||
              r.err.find("unauthenticated: the head closed the handshake") != std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(SecurityTest, UnknownNodeKeyCannotRegister) {
  // A client's key is not a node's key: the lists are separate.
  std::size_t bad = grid.add_node(keys.node_flags("alice"));
  std::string log = grid.dir().file("node" + std::to_string(bad) + ".log");
  ASSERT_TRUE(wait_until(
      [&] { return read_file(log).find("the head refused this key") != std::string::npos; },
      10'000))
      << read_file(log);
  EXPECT_TRUE(wait_until(
      [&] { return grid.head_log().find("refused node key") != std::string::npos; }, 5'000));
  auto conn = grid.connect();
  auto nodes = conn->nodes();
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ(nodes->size(), 0u);
  // A listed node key registers (the same head, the same moment).
  add_node();
  ASSERT_TRUE(grid.wait_nodes(1));
  nodes = conn->nodes();
  ASSERT_TRUE(nodes.ok());
  EXPECT_NE(grid.head_log().find("holds node key node1"), std::string::npos);
}

TEST_F(SecurityTest, SessionsBelongToTheirKey) {
  add_node();
  ASSERT_TRUE(grid.wait_nodes(1));
  CliResult r = run_cli(
      keys.cli(grid, "alice", {"submit", "--durable", "--service", "factorize", "--file", "-"}),
      "6\n15\n");
  ASSERT_EQ(r.code, 0) << r.err;
  std::string sid = r.out.substr(0, r.out.find('\n'));
  ASSERT_EQ(sid.size(), 32u) << r.out;

  // Bob is an admitted client, but not the owner.
  for (std::vector<std::string> args : {std::vector<std::string>{"fetch", sid},
                                        {"fetch", sid, "--no-wait"},
                                        {"status", sid},
                                        {"cancel", sid},
                                        {"close", sid},
                                        {"close", "--purge", sid}}) {
    CliResult b = run_cli(keys.cli(grid, "bob", args));
    EXPECT_EQ(b.code, 2) << args[0] << ": " << b.err;
    EXPECT_NE(b.err.find("permission_denied: session " + sid + " belongs to another key"),
              std::string::npos)
        << args[0] << ": " << b.err;
  }
  {
    auto conn = client::Connection::open(keys.options(grid, "bob"));
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    auto a = (*conn)->attach(sid);
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.status().code(), Code::kPermissionDenied);
    // Bob does not even see it listed.
    auto list = (*conn)->sessions();
    ASSERT_TRUE(list.ok());
    EXPECT_TRUE(list->empty());
  }
  // The owner can; the data is intact after bob's attempts.
  CliResult a = run_cli(keys.cli(grid, "alice", {"fetch", sid}));
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(sorted_lines(a.out), "15 = 3 * 5\n6 = 2 * 3\n");
  // An admin key may act on any session, and sees whose it is.
  CliResult c = run_cli(keys.cli(grid, "carol", {"fetch", sid}));
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_EQ(c.out, a.out);
  c = run_cli(keys.cli(grid, "carol", {"sessions"}));
  EXPECT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("owner"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find(sid.substr(0, 8)), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("alice"), std::string::npos) << c.out;
  // Ownership survives a head crash (it is journaled with the session).
  grid.kill_head();
  grid.restart_head();
  CliResult b = run_cli(keys.cli(grid, "bob", {"fetch", sid}));
  EXPECT_EQ(b.code, 2) << b.err;
  EXPECT_NE(b.err.find("permission_denied"), std::string::npos) << b.err;
  CliResult p = run_cli(keys.cli(grid, "alice", {"close", "--purge", sid}));
  EXPECT_EQ(p.code, 0) << p.err;
}

TEST_F(SecurityTest, DrainNeedsAnAdminKey) {
  add_node();
  ASSERT_TRUE(grid.wait_nodes(1));
  auto nodes = grid.connect()->nodes();
  ASSERT_TRUE(nodes.ok() && nodes->size() == 1);
  std::string id = (*nodes)[0].str("node_id");
  CliResult r = run_cli(keys.cli(grid, "alice", {"drain", "--no-wait", id}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("permission_denied"), std::string::npos) << r.err;
  r = run_cli(keys.cli(grid, "carol", {"drain", "--no-wait", id}));
  EXPECT_EQ(r.code, 0) << r.err;
}

// A TCP relay between the client and the head that keeps every byte it
// forwards, in both directions: what an eavesdropper on the wire would see.
class Relay {
 public:
  explicit Relay(const std::string& target_endpoint) {
    auto colon = target_endpoint.rfind(':');
    target_port_ = static_cast<std::uint16_t>(std::stoi(target_endpoint.substr(colon + 1)));
    listen_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~Relay() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
  }
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  std::string captured() {
    std::lock_guard<std::mutex> lock(mu_);
    return bytes_;
  }

 private:
  void run() {
    std::vector<std::pair<int, int>> pairs;  // (client side, head side)
    while (!stop_) {
      std::vector<pollfd> fds{{listen_, POLLIN, 0}};
      for (auto [c, h] : pairs) {
        fds.push_back({c, POLLIN, 0});
        fds.push_back({h, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int c = ::accept(listen_, nullptr, nullptr);
        int h = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(target_port_);
        if (c >= 0 && ::connect(h, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
          pairs.emplace_back(c, h);
        } else {
          if (c >= 0) ::close(c);
          ::close(h);
        }
        continue;
      }
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        for (int side = 0; side < 2; ++side) {
          if (!(fds[1 + 2 * i + side].revents & (POLLIN | POLLHUP | POLLERR))) continue;
          int from = side == 0 ? pairs[i].first : pairs[i].second;
          int to = side == 0 ? pairs[i].second : pairs[i].first;
          char buf[65536];
          ssize_t n = ::read(from, buf, sizeof buf);
          if (n <= 0) {
            ::shutdown(to, SHUT_WR);
            continue;
          }
          {
            std::lock_guard<std::mutex> lock(mu_);
            bytes_.append(buf, static_cast<std::size_t>(n));
          }
          for (ssize_t off = 0; off < n;) {
            ssize_t w = ::write(to, buf + off, static_cast<std::size_t>(n - off));
            if (w <= 0) break;
            off += w;
          }
        }
      }
    }
    for (auto [c, h] : pairs) {
      ::close(c);
      ::close(h);
    }
  }

  int listen_ = -1;
  std::uint16_t port_ = 0, target_port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string bytes_;
};

std::string echo_input() {
  std::string in;
  for (int i = 0; i < 50; ++i) in += "TOPSECRET-payload-" + std::to_string(i) + "\n";
  return in;
}

TEST_F(SecurityTest, TrafficIsEncrypted) {
  add_node();
  ASSERT_TRUE(grid.wait_nodes(1));
  Relay relay(grid.frontend());
  std::vector<std::string> args{"--head", relay.endpoint(),  "--head-key", keys.pub("head"),
                                "--key",  keys.key("alice"), "submit",     "--service",
                                "echo",   "--file",          "-"};
  CliResult r = run_cli(args, echo_input());
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_NE(r.out.find("TOPSECRET-payload-49"), std::string::npos) << r.out;  // it went through
  std::string wire = relay.captured();
  EXPECT_GT(wire.size(), 1000u);
  EXPECT_NE(wire.find("CURVE"), std::string::npos);    // the ZMTP greeting names the mechanism
  EXPECT_NE(wire.find("HELLO"), std::string::npos);    // CurveZMQ handshake commands
  EXPECT_NE(wire.find("WELCOME"), std::string::npos);  // (in clear by design)
  EXPECT_EQ(wire.find("TOPSECRET"), std::string::npos) << "payload or result in clear text";
  EXPECT_EQ(wire.find("echo"), std::string::npos) << "service name in clear text";
  EXPECT_NE(wire.find("MESSAGE"), std::string::npos);  // data travels in MESSAGE boxes
}

TEST(SecurityPlain, TheRelaySeesPlaintextWithoutCurve) {
  // The control for TrafficIsEncrypted: the same capture of a plain head
  // shows the payloads, so the relay does see what crosses the port.
  Grid grid;
  grid.start_head();
  grid.add_node({"--workers", "2"});
  ASSERT_TRUE(grid.wait_nodes(1));
  Relay relay(grid.frontend());
  CliResult r = run_cli({"--head", relay.endpoint(), "submit", "--service", "echo", "--file", "-"},
                        echo_input());
  ASSERT_EQ(r.code, 0) << r.err;
  std::string wire = relay.captured();
  EXPECT_NE(wire.find("TOPSECRET-payload-7"), std::string::npos);
  EXPECT_EQ(wire.find("CURVE"), std::string::npos);
}

TEST_F(SecurityTest, KeysShareNodesFairlyWhateverTheirSessionCounts) {
  // Everything is queued before any node exists; then one node with two
  // workers and one task of prefetch each decides the order.
  auto submit = [&](const std::string& who, int n) {
    std::string in;
    for (int i = 0; i < n; ++i) in += "4\n";
    CliResult r = run_cli(
        keys.cli(grid, who, {"submit", "--durable", "--service", "sleep", "--file", "-"}), in);
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out.substr(0, 32);
  };
  std::vector<std::string> alice{submit("alice", 400)};
  std::vector<std::string> bob;
  for (int i = 0; i < 6; ++i) bob.push_back(submit("bob", 100));
  grid.add_node({"--head-key", keys.pub("head"), "--key", keys.key("node1"), "--workers", "2",
                 "--prefetch", "1"});
  // Alice may read only her session; an admin (carol) reads them all.
  auto admin = client::Connection::open(keys.options(grid, "carol"));
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  auto count = [&](const std::vector<std::string>& ids) {
    std::uint64_t d = 0;
    for (const auto& id : ids) {
      auto st = (*admin)->session_status(id);
      EXPECT_TRUE(st.ok()) << st.status().ToString();
      if (st.ok()) d += st->u64("done");
    }
    return d;
  };
  ASSERT_TRUE(wait_until([&] { return count(alice) + count(bob) >= 240; }, 60'000, 20));
  std::uint64_t a = count(alice), b = count(bob);
  std::fprintf(stderr, "fair shares: alice (1 session) %llu, bob (6 sessions) %llu\n",
               static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  double ratio = static_cast<double>(a) / static_cast<double>(b);
  // Per session it would be 1:6; per key it is 1:1.
  EXPECT_GT(ratio, 0.7) << "alice " << a << " bob " << b;
  EXPECT_LT(ratio, 1.43) << "alice " << a << " bob " << b;
}

TEST_F(SecurityTest, PerKeyCapsAreRefusedWithAClearError) {
  std::vector<std::string> flags = keys.head_flags();
  flags.insert(flags.end(), {"--max-sessions-per-key", "2", "--max-queued-per-key", "100",
                             "--max-journal-bytes-per-key", "64K"});
  Grid g;
  g.start_durable_head(flags);
  auto conn = client::Connection::open(keys.options(g, "alice"));
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  proto::CreateSession cs;
  cs.service = "echo";
  cs.durable = true;
  auto s1 = (*conn)->create_session(cs);
  ASSERT_TRUE(s1.ok()) << s1.status().ToString();
  // 100 queued requests fit (no node runs them); one more is refused.
  std::string hundred;
  for (int i = 0; i < 100; ++i) hundred += "x\n";
  CliResult r = run_cli(
      keys.cli(g, "alice", {"submit", "--service", "echo", "--durable", "--file", "-"}), hundred);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_cli(keys.cli(g, "alice", {"submit", "--service", "echo", "--durable", "--file", "-"}),
              "one more\n");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("resource_exhausted"), std::string::npos) << r.err;
  // The refused submit left no session, and the one of 100 (one message)
  // is sealed, not open: with s2, two are open, and a third is refused ...
  ASSERT_TRUE((*conn)->create_session(cs).ok());
  auto s3 = (*conn)->create_session(cs);
  ASSERT_FALSE(s3.ok());
  EXPECT_EQ(s3.status().code(), Code::kResourceExhausted);
  EXPECT_NE(s3.status().message().find("open sessions"), std::string::npos);
  // ... while bob, another key, has his own allowance.
  auto bconn = client::Connection::open(keys.options(g, "bob"));
  ASSERT_TRUE(bconn.ok());
  ASSERT_TRUE((*bconn)->create_session(cs).ok());
  // Journal bytes: big payloads hit the 64 KiB cap before the queue cap.
  std::string big;
  for (int i = 0; i < 20; ++i) big += std::string(8000, 'a' + i % 26) + "\n";
  r = run_cli(keys.cli(g, "bob", {"submit", "--service", "echo", "--durable", "--file", "-"}), big);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("journal bytes"), std::string::npos) << r.err;
}

TEST_F(SecurityTest, SighupAdmitsANewKeyWithoutARestart) {
  auto before = client::Connection::open(keys.options(grid, "mallory"));
  ASSERT_FALSE(before.ok());
  keys.allow("mallory", "clients");
  grid.head().signal(SIGHUP);
  ASSERT_TRUE(wait_until(
      [&] {
        auto c = client::Connection::open(keys.options(grid, "mallory"));
        return c.ok();
      },
      10'000, 50));
  EXPECT_NE(grid.head_log().find("SIGHUP: authorized keys re-read"), std::string::npos);
  EXPECT_EQ(grid.head().running(), true);
}

TEST_F(SecurityTest, RestartsWhileAdmittedClientsKeepCalling) {
  // The start-up self-test must not mistake a real client's message (one
  // that reconnects at once after a restart) for a key nobody checked.
  auto conn = client::Connection::open(keys.options(grid, "alice"));
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  std::atomic<bool> done{false};
  std::atomic<int> answered{0};
  std::thread caller([&] {
    auto o = keys.options(grid, "alice");
    o.timeout_ms = 500;
    while (!done) {
      auto c = client::Connection::open(o);
      if (c.ok() && (*c)->grid_status().ok()) ++answered;
    }
  });
  for (int i = 0; i < 3; ++i) {
    int before = answered.load();
    ASSERT_TRUE(wait_until([&] { return answered.load() > before; }, 10'000));
    ASSERT_NO_THROW(grid.restart_head()) << grid.head_log();
  }
  done = true;
  caller.join();
  EXPECT_TRUE((*conn)->grid_status().ok());
}

TEST_F(SecurityTest, NoSecretEverReachesALogOrAnError) {
  add_node();
  ASSERT_TRUE(grid.wait_nodes(1));
  (void)run_cli(keys.cli(grid, "alice", {"submit", "--service", "factorize", "--file", "-"}),
                "91\n");
  CliResult m = run_cli(keys.cli(grid, "mallory", {"status"}));
  std::string all = grid.head_log() + read_file(grid.dir().file("node0.log")) + m.err;
  for (const char* who : {"head", "alice", "node1", "mallory"})
    EXPECT_EQ(all.find(keys.pair(who).secret_z85), std::string::npos) << who;
}

TEST(SecurityStart, HeadWithoutAWorkingZapHandlerRefusesToStart) {
  Keys keys;
  TempDir dir;
  std::vector<std::string> argv{ZGRID_HEAD_BIN, "--frontend", "tcp://127.0.0.1:0", "--backend",
                                "tcp://127.0.0.1:0"};
  for (auto& f : keys.head_flags()) argv.push_back(f);
  Process head(argv, dir.file("head.log"), {"ZGRID_TEST_NO_ZAP=1"});
  EXPECT_EQ(head.wait(15'000), 2);
  std::string log = read_file(dir.file("head.log"));
  EXPECT_NE(log.find("an unknown key was admitted: no working ZAP handler. Refusing to start"),
            std::string::npos)
      << log;
}

TEST(SecurityStart, LooseSecretKeyPermissionsAreRefused) {
  Keys keys;
  ::chmod(keys.key("head").c_str(), 0644);
  TempDir dir;
  std::vector<std::string> argv{ZGRID_HEAD_BIN, "--frontend", "tcp://127.0.0.1:0", "--backend",
                                "tcp://127.0.0.1:0"};
  for (auto& f : keys.head_flags()) argv.push_back(f);
  Process head(argv, dir.file("head.log"));
  EXPECT_EQ(head.wait(15'000), 2);
  std::string log = read_file(dir.file("head.log"));
  EXPECT_NE(log.find("may be read by others (mode 0644): run chmod 600"), std::string::npos) << log;
  ::chmod(keys.key("alice").c_str(), 0640);
  CliResult r = run_cli({"--head-key", keys.pub("head"), "--key", keys.key("alice"), "status"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;
  // Partial configuration is refused too, rather than silently plain.
  Process half({ZGRID_HEAD_BIN, "--frontend", "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0",
                "--authorized-clients", keys.dir("clients")},
               dir.file("half.log"));
  EXPECT_EQ(half.wait(15'000), 2);
  EXPECT_NE(read_file(dir.file("half.log")).find("CURVE needs all of"), std::string::npos);
}

TEST(SecurityStart, NonLoopbackWithoutCurveWarnsAndRequireCurveRefuses) {
  {
    Grid g;
    // Binds every interface (nothing is sent anywhere): the loud warning.
    g.start_head({"--frontend", "tcp://0.0.0.0:0"});
    EXPECT_TRUE(wait_until(
        [&] {
          return g.head_log().find("WITHOUT CURVE: anyone who can reach") != std::string::npos;
        },
        5'000))
        << g.head_log();
  }
  TempDir dir;
  Process head({ZGRID_HEAD_BIN, "--frontend", "tcp://0.0.0.0:0", "--backend", "tcp://127.0.0.1:0",
                "--require-curve"},
               dir.file("head.log"));
  EXPECT_EQ(head.wait(15'000), 2);
  EXPECT_NE(read_file(dir.file("head.log")).find("--require-curve: refusing to start"),
            std::string::npos);
}

// The HTTP listener under CURVE (docs/operations.md, "Watching the grid"):
// no token, no listener (an explicit --http is an error); a token file
// others can read is refused; with the token the API answers only to it.
TEST(SecurityStart, WithCurveTheHttpListenerNeedsAPrivateToken) {
  Keys keys;
  {
    Grid g;
    g.start_head(keys.head_flags());
    EXPECT_TRUE(g.http_url().empty());
    EXPECT_NE(g.head_log().find("no HTTP listener: with CURVE the dashboard and /metrics need "
                                "--http-token FILE"),
              std::string::npos)
        << g.head_log();
  }
  TempDir dir;
  std::vector<std::string> argv{ZGRID_HEAD_BIN,      "--frontend", "tcp://127.0.0.1:0", "--backend",
                                "tcp://127.0.0.1:0", "--http",     "127.0.0.1:0"};
  for (auto& f : keys.head_flags()) argv.push_back(f);
  Process explicit_http(argv, dir.file("explicit.log"));
  EXPECT_EQ(explicit_http.wait(15'000), 2);
  EXPECT_NE(read_file(dir.file("explicit.log")).find("--http with CURVE needs --http-token FILE"),
            std::string::npos);
  std::string token = dir.file("http.token");
  std::ofstream(token) << "0123456789abcdef-secret\n";
  ::chmod(token.c_str(), 0644);
  argv.insert(argv.end(), {"--http-token", token});
  Process loose(argv, dir.file("loose.log"));
  EXPECT_EQ(loose.wait(15'000), 2);
  EXPECT_NE(read_file(dir.file("loose.log")).find("is readable by others; chmod 600 it"),
            std::string::npos)
      << read_file(dir.file("loose.log"));
  ::chmod(token.c_str(), 0600);
  Grid g;
  std::vector<std::string> flags = keys.head_flags();
  flags.insert(flags.end(), {"--http-token", token});
  g.start_head(flags);
  ASSERT_FALSE(g.http_url().empty()) << g.head_log();
  auto get = [&](const std::string& auth) {
    return testing::Raw(
        testing::ParseUrl(g.http_url()),
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + auth + "\r\n");
  };
  EXPECT_EQ(get("").rfind("HTTP/1.1 401", 0), 0u);
  EXPECT_EQ(get("Authorization: Bearer wrong-token-123456\r\n").rfind("HTTP/1.1 401", 0), 0u);
  std::string ok = get("Authorization: Bearer 0123456789abcdef-secret\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u) << ok.substr(0, 200);
  EXPECT_NE(ok.find("zgrid_refused_handshakes_total{port=\"client\"}"), std::string::npos);
}

TEST(SecurityStart, IpcFrontendInAPrivateDirectoryIsTheSingleUserOption) {
  TempDir dir;
  std::string priv = dir.file("private");
  ASSERT_EQ(::mkdir(priv.c_str(), 0700), 0);
  Grid g;
  g.start_head({"--frontend", "ipc://" + priv + "/head.sock"});
  g.add_node({"--workers", "1"});
  ASSERT_TRUE(g.wait_nodes(1));
  CliResult r = run_cli(
      {"--head", "ipc://" + priv + "/head.sock", "submit", "--service", "factorize", "--file", "-"},
      "21\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "21 = 3 * 7\n");
  // A directory others may enter is refused without CURVE.
  std::string open_dir = dir.file("open");
  ASSERT_EQ(::mkdir(open_dir.c_str(), 0755), 0);
  ::chmod(open_dir.c_str(), 0755);
  Process head({ZGRID_HEAD_BIN, "--frontend", "ipc://" + open_dir + "/head.sock", "--backend",
                "tcp://127.0.0.1:0"},
               dir.file("head.log"));
  EXPECT_EQ(head.wait(15'000), 2);
  EXPECT_NE(read_file(dir.file("head.log")).find("must be in a directory only you can enter"),
            std::string::npos);
}

// ---- Python functions (issue 30, docs/security.md "Python functions") ----
// The built-in service `python` unpickles what clients send: running code.
// A head bound to every interface (0.0.0.0 on an ephemeral port; the test
// talks to it over 127.0.0.1 only) without CURVE refuses its sessions on
// every path that creates one, unless --allow-python-functions.

// The loopback address of a head bound to 0.0.0.0.
std::string ViaLoopback(const std::string& ep) {
  auto p = ep.find("://0.0.0.0:");
  return p == std::string::npos ? ep : ep.substr(0, p) + "://127.0.0.1:" + ep.substr(p + 11);
}

std::unique_ptr<client::Connection> ConnectVia(const client::ClientOptions& base,
                                               const std::string& ep) {
  client::ClientOptions o = base;
  o.head = ViaLoopback(ep);
  o.timeout_ms = 10'000;
  auto c = client::Connection::open(o);
  if (!c.ok()) throw std::runtime_error("cannot connect: " + c.status().ToString());
  return std::move(c).value();
}

bool WaitNodesVia(client::Connection& conn, std::size_t n) {
  return wait_until(
      [&] {
        auto nodes = conn.nodes();
        return nodes.ok() && nodes->size() == n;
      },
      10'000, 20);
}

constexpr const char* kHowToEnable = "--allow-python-functions";

// Creating a session of `service` through create_session and the
// one-message submit; OK or the first error.
Status CreateBothWays(client::Connection& conn, const std::string& service, bool durable) {
  auto info = conn.create_session({service, durable, 0});
  if (!info.ok()) return info.status();
  std::vector<client::BrokerClient::Item> items{{"payload", "u"}};
  auto bc = client::BrokerClient::submit(conn, {service, durable, 0}, "c", items);
  if (!bc.ok()) return bc.status();
  return Status::OK();
}

TEST(SecurityPython, PlainNonLoopbackHeadRefusesPythonSessionsOnEveryPath) {
  Grid g;
  g.start_durable_head({"--frontend", "tcp://0.0.0.0:0"});
  g.add_node({"--workers", "1"});
  auto conn = ConnectVia(g.client_options(), g.frontend());
  ASSERT_TRUE(WaitNodesVia(*conn, 1));
  EXPECT_NE(g.head_log().find("sessions of the python service are refused"), std::string::npos)
      << g.head_log();
  // create_session and submit, interactive and durable, any version spec.
  for (const char* svc : {"python", "python@1", "python@1/call"}) {
    for (bool durable : {false, true}) {
      auto info = conn->create_session({svc, durable, 0});
      ASSERT_FALSE(info.ok()) << svc;
      EXPECT_EQ(info.status().code(), Code::kPermissionDenied) << info.status().ToString();
      EXPECT_NE(info.status().message().find(kHowToEnable), std::string::npos);
      EXPECT_NE(info.status().message().find("CURVE"), std::string::npos);
      std::vector<client::BrokerClient::Item> items{{"x", "1"}};
      auto bc = client::BrokerClient::submit(*conn, {svc, durable, 0}, "c", items);
      ASSERT_FALSE(bc.ok()) << svc;
      EXPECT_EQ(bc.status().code(), Code::kPermissionDenied) << bc.status().ToString();
      EXPECT_NE(bc.status().message().find(kHowToEnable), std::string::npos);
    }
  }
  // Resubmit: a complete durable session of another service with faults,
  // its faulted requests sent to `python` (library and CLI).
  std::vector<client::BrokerClient::Item> inputs{{"12", "12"}, {"abc", "abc"}};
  auto made = client::BrokerClient::submit(*conn, {"factorize", true, 0}, "c", inputs);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  const std::string sid = (*made)->session_id();
  auto done = conn->wait_complete(sid, 30'000);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  ASSERT_EQ(done->u64("faulted"), 1u);
  proto::CreateSession to_python;
  to_python.service = "python";
  to_python.durable = true;
  auto again = conn->resubmit(sid, {}, to_python);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), Code::kPermissionDenied) << again.status().ToString();
  // The CLI shows the one line and exits 2, for submit and resubmit.
  const std::string head = ViaLoopback(g.frontend());
  CliResult r = run_cli({"--head", head, "submit", "--service", "python", "--file", "-"}, "x\n");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(kHowToEnable), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = run_cli({"--head", head, "resubmit", sid, "--faulted", "--service", "python@1"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(kHowToEnable), std::string::npos) << r.err;
  // Other services are served as ever.
  r = run_cli({"--head", head, "submit", "--service", "factorize", "--file", "-"}, "21\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "21 = 3 * 7\n");
  EXPECT_TRUE(CreateBothWays(*conn, "factorize", true).ok());
  auto resub = conn->resubmit(sid, {}, {"factorize", true, 0});
  EXPECT_TRUE(resub.ok()) << resub.status().ToString();
}

TEST(SecurityPython, AllowPythonFunctionsAcceptsThemAndWarns) {
  Grid g;
  g.start_durable_head({"--frontend", "tcp://0.0.0.0:0", "--allow-python-functions"});
  auto conn = ConnectVia(g.client_options(), g.frontend());
  for (bool durable : {false, true}) {
    Status st = CreateBothWays(*conn, "python@1", durable);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_NE(
      g.head_log().find(
          "WARNING: --allow-python-functions with its client port tcp://0.0.0.0:0 WITHOUT CURVE"),
      std::string::npos)
      << g.head_log();
}

TEST(SecurityPython, CurveOrLoopbackAcceptsThemWithoutTheFlag) {
  Keys keys;
  {
    Grid g;
    std::vector<std::string> flags = keys.head_flags();
    flags.insert(flags.end(), {"--frontend", "tcp://0.0.0.0:0"});
    g.start_durable_head(flags);
    auto conn = ConnectVia(keys.options(g, "alice"), g.frontend());
    for (bool durable : {false, true}) {
      Status st = CreateBothWays(*conn, "python", durable);
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
  }
  Grid g;
  g.start_durable_head();  // tcp://127.0.0.1, plain
  auto conn = g.connect();
  for (bool durable : {false, true}) {
    Status st = CreateBothWays(*conn, "python", durable);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(g.head_log().find("python service are refused"), std::string::npos);
  EXPECT_EQ(g.head_log().find("WARNING: --allow-python-functions"), std::string::npos);
}

}  // namespace
}  // namespace zgrid
