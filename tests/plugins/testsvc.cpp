// Test plug-in written with the C++ helper (zgrid/service.hpp), ABI version 2
// with stateful sessions. Built twice: TESTSVC_VERSION "1" and "2" (version
// selection tests).
//
// config: "marker=PATH" appends "init" / "shutdown" / "session_open KEY" /
// "session_close" lines to PATH (load, unload and session tests); "fail"
// makes init fail.
// Operations: echo (answers "vVERSION:" + request), throw (throws),
// version, sum (stateful sessions only: the running sum of the session's
// integers). A session key starting with "refuse" is refused by open_session.
#include <zgrid/service.hpp>

#include <fstream>
#include <stdexcept>
#include <string>

#ifndef TESTSVC_VERSION
#define TESTSVC_VERSION "1"
#endif

class TestSvc {
 public:
  explicit TestSvc(std::string_view config) {
    if (config == "fail") throw std::runtime_error("told to fail by its config");
    if (config.rfind("marker=", 0) == 0) marker_ = std::string(config.substr(7));
    note("init");
  }
  ~TestSvc() { note("shutdown"); }

  void open_session(std::string_view key) {
    if (key.rfind("refuse", 0) == 0) throw std::runtime_error("refused by testsvc");
    note("session_open " + std::string(key));
    in_session_ = true;
  }
  void close_session() {
    note("session_close");
    in_session_ = false;
  }

  void handle(std::string_view op, std::string_view req, zgrid::Reply& reply) {
    if (op == "throw" || req == "throw") throw std::runtime_error("requested exception");
    if (op == "version") return reply.result(TESTSVC_VERSION);
    if (op == "sum") {
      if (!in_session_) return reply.fault("invalid_argument", "sum needs a stateful session");
      std::size_t used = 0;
      long long n = 0;
      try {
        n = std::stoll(std::string(req), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != req.size()) return reply.fault("invalid_argument", "not an integer");
      sum_ += n;
      return reply.result(std::to_string(sum_));
    }
    reply.result("v" TESTSVC_VERSION ":" + std::string(req));
  }

 private:
  void note(const std::string& what) {
    if (marker_.empty()) return;
    std::ofstream(marker_, std::ios::app) << what << "\n";
  }
  std::string marker_;
  bool in_session_ = false;
  long long sum_ = 0;
};

ZGRID_EXPORT_SERVICE(TestSvc, "testsvc", TESTSVC_VERSION, "echo,throw,version,sum")
