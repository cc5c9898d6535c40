// Test plug-in written with the C++ helper (zgrid/service.hpp).
// Built twice: TESTSVC_VERSION "1" and "2" (version selection tests).
//
// config: "marker=PATH" appends "init" / "shutdown" lines to PATH (load and
// unload tests); "fail" makes init fail.
// Operations: echo (answers "vVERSION:" + request), throw (throws),
// fault (a retryable fault), version.
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

  void handle(std::string_view op, std::string_view req, zgrid::Reply& reply) {
    if (op == "throw" || req == "throw") throw std::runtime_error("requested exception");
    if (op == "version") return reply.result(TESTSVC_VERSION);
    reply.result("v" TESTSVC_VERSION ":" + std::string(req));
  }

 private:
  void note(const char* what) {
    if (marker_.empty()) return;
    std::ofstream(marker_, std::ios::app) << what << "\n";
  }
  std::string marker_;
};

ZGRID_EXPORT_SERVICE(TestSvc, "testsvc", TESTSVC_VERSION, "echo,throw,version")
