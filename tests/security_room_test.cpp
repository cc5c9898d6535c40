// head/security in-process: which key options start CURVE, the ipc check
// without it, and who may act on a session. (The ZAP handler's self-test
// and the handshakes are tested with real processes in security_test.)
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "head/security.hpp"
#include "head/session_table.hpp"
#include "support/grid_process.hpp"

namespace zgrid::head {
namespace {

struct Keys {
  testing::TempDir dir;
  std::string secret, clients, nodes, admins;
  std::string alice, bob, admin;  // public keys

  Keys() {
    clients = dir.file("clients");
    nodes = dir.file("nodes");
    admins = dir.file("admins");
    for (const auto& d : {clients, nodes, admins}) std::filesystem::create_directories(d);
    auto head = curve::generate();
    EXPECT_TRUE(head.ok());
    auto paths = curve::write_pair(dir.path(), "head", *head, true);
    EXPECT_TRUE(paths.ok());
    secret = paths->second;  // (public file, secret file)
    for (auto [name, where, out] :
         {std::tuple{"alice", clients, &alice}, std::tuple{"bob", clients, &bob},
          std::tuple{"root", admins, &admin}}) {
      auto kp = curve::generate();
      EXPECT_TRUE(curve::write_pair(where, name, *kp, true).ok());
      *out = kp->public_z85;
    }
  }
  HeadOptions options() const {
    HeadOptions o;
    o.curve_secret_file = secret;
    o.authorized_clients_dir = clients;
    o.authorized_nodes_dir = nodes;
    o.admin_keys_dir = admins;
    o.hooks.no_zap = true;  // no handler thread here: nothing is served
    return o;
  }
};

TEST(SecurityRoom, PlainUnlessKeysAreGivenAndAllThreeAreNeeded) {
  zmq::context_t ctx(1);
  HeadOptions plain;
  Security s(plain, ctx);
  ASSERT_TRUE(s.start().ok());
  EXPECT_FALSE(s.curve());
  SessionTable table;
  Session& mine = table.create("");
  EXPECT_TRUE(s.check_owner(mine, "anyone").ok());  // without CURVE all share one key
  EXPECT_FALSE(s.is_admin("anyone"));

  HeadOptions strict;
  strict.require_curve = true;
  Security r(strict, ctx);
  EXPECT_EQ(r.start().code(), Code::kFailedPrecondition);

  Keys k;
  HeadOptions partial = k.options();
  partial.authorized_nodes_dir.clear();
  Security p(partial, ctx);
  EXPECT_EQ(p.start().code(), Code::kInvalidArgument);
}

TEST(SecurityRoom, WithCurveASessionBelongsToItsKeyAndToAdmins) {
  zmq::context_t ctx(1);
  Keys k;
  HeadOptions o = k.options();
  Security s(o, ctx);
  Status started = s.start();
  ASSERT_TRUE(started.ok()) << started.message();
  EXPECT_TRUE(s.curve());
  zmqu::SocketOptions fo, bo;
  s.apply(&fo, &bo);
  EXPECT_TRUE(fo.curve_server);
  EXPECT_EQ(fo.zap_domain, kClientsDomain);
  EXPECT_EQ(bo.zap_domain, kNodesDomain);

  SessionTable table;
  Session& sess = table.create(k.alice, std::string(32, 'x'));
  EXPECT_TRUE(s.check_owner(sess, k.alice).ok());
  Status st = s.check_owner(sess, k.bob);
  EXPECT_EQ(st.code(), Code::kPermissionDenied);
  EXPECT_NE(st.message().find("belongs to another key"), std::string::npos);
  EXPECT_TRUE(s.check_owner(sess, k.admin).ok());
  EXPECT_TRUE(s.is_admin(k.admin));
  EXPECT_FALSE(s.is_admin(k.alice));
  EXPECT_EQ(s.name_of(k.alice), "alice");
  EXPECT_EQ(s.name_of(""), "");
}

TEST(SecurityRoom, WithoutCurveAnIpcEndpointMustBeInAPrivateDirectory) {
  testing::TempDir d;
  std::string priv = d.file("private"), open = d.file("open");
  std::filesystem::create_directories(priv);
  std::filesystem::create_directories(open);
  ::chmod(priv.c_str(), 0700);
  ::chmod(open.c_str(), 0755);
  EXPECT_TRUE(Security::check_ipc("tcp://127.0.0.1:5555").ok());
  EXPECT_TRUE(Security::check_ipc("ipc://" + priv + "/head.sock").ok());
  EXPECT_EQ(Security::check_ipc("ipc://" + open + "/head.sock").code(), Code::kPermissionDenied);
  EXPECT_EQ(Security::check_ipc("ipc://@abstract").code(), Code::kInvalidArgument);
  EXPECT_EQ(Security::check_ipc("ipc://" + d.file("missing") + "/x").code(),
            Code::kInvalidArgument);
}

// The python service runs pickled functions: decided once at start, from the
// frontend, CURVE and --allow-python-functions (docs/security.md).
TEST(SecurityRoom, PythonFunctionsOnlyOnLoopbackWithCurveOrWhenAllowed) {
  zmq::context_t ctx(1);
  testing::TempDir d;
  std::string priv = d.file("private");
  std::filesystem::create_directories(priv);
  ::chmod(priv.c_str(), 0700);
  for (const std::string& ep : std::vector<std::string>{
           "tcp://127.0.0.1:5555", "tcp://127.3.2.1:0", "tcp://localhost:5555", "tcp://[::1]:5555",
           "ipc://" + priv + "/head.sock", "inproc://head"}) {
    HeadOptions o;
    o.frontend = ep;
    Security s(o, ctx);
    ASSERT_TRUE(s.start().ok()) << ep;
    EXPECT_TRUE(s.python_functions()) << ep;
    EXPECT_TRUE(s.check_service("python").ok()) << ep;
  }
  for (const std::string& ep :
       std::vector<std::string>{"tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.0.2.7:5555",
                                "tcp://[::]:5555", "tcp://eth0:5555", "tcp://grid.example:5555"}) {
    HeadOptions o;
    o.frontend = ep;
    Security s(o, ctx);
    ASSERT_TRUE(s.start().ok()) << ep;
    EXPECT_FALSE(s.python_functions()) << ep;
    for (const char* svc : {"python", "python@1", "python@1/call", "python@2.0"}) {
      Status st = s.check_service(svc);
      EXPECT_EQ(st.code(), Code::kPermissionDenied) << ep << " " << svc;
      EXPECT_NE(st.message().find("--allow-python-functions"), std::string::npos);
      EXPECT_NE(st.message().find("CURVE"), std::string::npos);
      EXPECT_NE(st.message().find(ep), std::string::npos);
      EXPECT_EQ(st.message().find('\n'), std::string::npos);  // one line
    }
    // Other services, and names that merely start with python, are not its business.
    for (const char* svc : {"factorize", "pythonic", "python3", "py", "montecarlo@2/pi"})
      EXPECT_TRUE(s.check_service(svc).ok()) << ep << " " << svc;
    o.allow_python_functions = true;
    Security allowed(o, ctx);
    ASSERT_TRUE(allowed.start().ok());
    EXPECT_TRUE(allowed.python_functions());
    EXPECT_TRUE(allowed.check_service("python@1").ok());
  }
  // A plain node port off loopback: anyone there could register as a node,
  // read every call and answer with a pickle the client unpickles.
  for (const std::string& ep : std::vector<std::string>{"tcp://0.0.0.0:5556", "tcp://*:5556"}) {
    HeadOptions o;
    o.frontend = "tcp://127.0.0.1:5555";
    o.backend = ep;
    Security s(o, ctx);
    ASSERT_TRUE(s.start().ok()) << ep;
    EXPECT_FALSE(s.python_functions()) << ep;
    Status st = s.check_service("python");
    EXPECT_EQ(st.code(), Code::kPermissionDenied) << ep;
    EXPECT_NE(st.message().find("node port " + ep), std::string::npos) << st.message();
  }
  Keys k;
  HeadOptions curve = k.options();
  curve.frontend = "tcp://0.0.0.0:5555";
  Security c(curve, ctx);
  ASSERT_TRUE(c.start().ok());
  EXPECT_TRUE(c.python_functions());
  EXPECT_TRUE(c.check_service("python").ok());
}

}  // namespace
}  // namespace zgrid::head
