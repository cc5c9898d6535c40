// head/options: one Validate for every range, and ParseFlags' precedence and
// errors, in-process.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <functional>

#include "head/head.hpp"
#include "head/options.hpp"
#include "support/grid_process.hpp"

namespace zgrid::head {
namespace {

int Parse(std::vector<std::string> args, HeadCommand* cmd, const std::string& env = "") {
  args.insert(args.begin(), "zgrid-head");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return ParseFlags(static_cast<int>(argv.size()), argv.data(), cmd, env);
}

TEST(HeadOptions, DefaultsAreValid) {
  EXPECT_TRUE(Validate(HeadOptions{}).ok());
}

TEST(HeadOptions, EachRangeHoldsAtItsBoundsAndNamesTheFlagPastThem) {
  struct Case {
    const char* flag;
    std::function<void(HeadOptions&, std::int64_t)> set;
    std::int64_t lo, hi;
  };
  const std::vector<Case> cases{
      {"--heartbeat", [](HeadOptions& o, std::int64_t v) { o.heartbeat_ms = v; }, 1, 3'600'000},
      {"--heartbeat-misses",
       [](HeadOptions& o, std::int64_t v) { o.heartbeat_misses = static_cast<int>(v); }, 1, 1000},
      {"--max-retries", [](HeadOptions& o, std::int64_t v) { o.max_retries = static_cast<int>(v); },
       0, 1000},
      {"--queue-hwm", [](HeadOptions& o, std::int64_t v) { o.queue_hwm = v; }, 1, 1ll << 40},
      {"--response-window", [](HeadOptions& o, std::int64_t v) { o.response_window = v; }, 1,
       1ll << 32},
      {"--response-queue-max", [](HeadOptions& o, std::int64_t v) { o.response_queue_max = v; }, 1,
       1ll << 32},
      {"--max-task-batch", [](HeadOptions& o, std::int64_t v) { o.max_task_batch = v; }, 1, 65536},
      {"durable window", [](HeadOptions& o, std::int64_t v) { o.durable_window = v; }, 1,
       1ll << 32},
      {"--client-idle-timeout",
       [](HeadOptions& o, std::int64_t v) { o.client_idle_timeout_ms = v; }, 1, 365ll * 86'400'000},
      {"--task-timeout", [](HeadOptions& o, std::int64_t v) { o.task_timeout_ms = v; }, 0,
       365ll * 86'400'000},
      {"--handshake-timeout", [](HeadOptions& o, std::int64_t v) { o.handshake_timeout_ms = v; }, 1,
       3'600'000},
  };
  for (const auto& c : cases) {
    for (std::int64_t ok : {c.lo, c.hi}) {
      HeadOptions o;
      c.set(o, ok);
      EXPECT_TRUE(Validate(o).ok()) << c.flag << " " << ok << ": " << Validate(o).message();
    }
    for (std::int64_t bad : {c.lo - 1, c.hi + 1}) {
      HeadOptions o;
      c.set(o, bad);
      Status st = Validate(o);
      EXPECT_EQ(st.code(), Code::kInvalidArgument) << c.flag << " " << bad;
      EXPECT_NE(st.message().find(c.flag), std::string::npos) << st.message();
    }
  }
  HeadOptions o;
  o.service_task_timeout_ms["sleep"] = -1;
  EXPECT_NE(Validate(o).message().find("--service-timeout sleep"), std::string::npos);
}

// run_head called directly is held to the same rules: a zero durable window
// used to start a head that never loaded a stored batch.
TEST(HeadOptions, RunHeadRefusesWhatValidateRefuses) {
  HeadOptions o;
  o.frontend = "tcp://127.0.0.1:0";
  o.backend = "tcp://127.0.0.1:0";
  o.durable_window = 0;
  std::atomic<bool> stop{true};
  Status st = run_head(o, stop);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("durable window"), std::string::npos) << st.message();
}

TEST(HeadOptions, FlagBeatsEnvironmentBeatsConfigBeatsDefault) {
  testing::TempDir d;
  std::string conf = d.file("head.ini");
  std::ofstream(conf) << "heartbeat = 5s\nmax-retries = 7\nqueue-hwm = 11\n";
  ::setenv("ZGTESTOPT_HEARTBEAT", "3s", 1);
  ::setenv("ZGTESTOPT_MAX_RETRIES", "8", 1);
  HeadCommand cmd;
  ASSERT_EQ(Parse({"--config", conf, "--max-retries", "9"}, &cmd, "ZGTESTOPT_"), -1);
  ::unsetenv("ZGTESTOPT_HEARTBEAT");
  ::unsetenv("ZGTESTOPT_MAX_RETRIES");
  EXPECT_EQ(cmd.options.max_retries, 9);       // flag
  EXPECT_EQ(cmd.options.heartbeat_ms, 3'000);  // environment over config
  EXPECT_EQ(cmd.options.queue_hwm, 11u);       // config
  EXPECT_EQ(cmd.options.heartbeat_misses, 3);  // default
  EXPECT_FALSE(cmd.options.allow_python_functions);
}

TEST(HeadOptions, AllowPythonFunctionsFromTheFlagOrTheConfigFile) {
  testing::TempDir d;
  std::string conf = d.file("head.toml");
  std::ofstream(conf) << "allow-python-functions = true\n";
  HeadCommand from_file, from_flag;
  ASSERT_EQ(Parse({"--config", conf}, &from_file), -1);
  EXPECT_TRUE(from_file.options.allow_python_functions);
  ASSERT_EQ(Parse({"--allow-python-functions"}, &from_flag), -1);
  EXPECT_TRUE(from_flag.options.allow_python_functions);
}

TEST(HeadOptions, SizesDurationsAndServiceTimeoutsAreParsed) {
  HeadCommand cmd;
  ASSERT_EQ(
      Parse({"--min-free-space", "1G", "--disk-reserve", "0", "--service-timeout", "sleep=300ms",
             "--service-timeout", "factorize=2m", "--data-dir", "/x", "--purge-session", "abc"},
            &cmd),
      -1);
  EXPECT_EQ(cmd.options.min_free_bytes, 1ull << 30);
  EXPECT_EQ(cmd.options.disk_reserve_bytes, 0u);
  EXPECT_EQ(cmd.options.service_task_timeout_ms.at("sleep"), 300);
  EXPECT_EQ(cmd.options.service_task_timeout_ms.at("factorize"), 120'000);
  EXPECT_EQ(cmd.purge_sessions, std::vector<std::string>{"abc"});
}

TEST(HeadOptions, BadValuesExitTwo) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--heartbeat", "soon"},
                                             {"--max-retries", "-4"},
                                             {"--heartbeat-misses", "0"},
                                             {"--min-free-space", "lots"},
                                             {"--service-timeout", "sleep"},
                                             {"--service-timeout", "=1s"},
                                             {"--purge-session", "abc"},  // needs --data-dir
                                             {"--no-such-flag"}}) {
    HeadCommand cmd;
    ::testing::internal::CaptureStderr();
    int rc = Parse(args, &cmd);
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(rc, 2) << args[0];
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_EQ(err.rfind("zgrid-head: error: ", 0), 0u) << err;
  }
  HeadCommand cmd;
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(Parse({"--help"}, &cmd), 0);
  EXPECT_NE(::testing::internal::GetCapturedStdout().find("--handshake-timeout"),
            std::string::npos);
}

}  // namespace
}  // namespace zgrid::head
