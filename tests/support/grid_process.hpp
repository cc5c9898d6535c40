// Test fixtures: real zgrid-head / zgrid-node / zgrid processes on loopback
// with ephemeral ports, and bounded waits on conditions.
//
// A Process is killed (SIGKILL) and reaped when its owner goes away, so a
// failing test never leaves daemons behind. Only processes started here are
// ever signalled, by PID.
#pragma once

#include <sys/types.h>
#include <zgrid/client.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"

namespace zgrid::testing {

// Polls `cond` every few milliseconds until it holds or `timeout_ms` passes.
bool wait_until(const std::function<bool()>& cond, Millis timeout_ms, Millis step_ms = 5);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

class Process {
 public:
  // Starts argv[0] with stdout and stderr appended to `log_path`, with the
  // extra environment `env` ("NAME=value").
  Process(std::vector<std::string> argv, const std::string& log_path,
          const std::vector<std::string>& env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for exit; returns the exit code (128+signal if killed), or -1 on timeout.
  int wait(Millis timeout_ms);
  void kill_now();  // SIGKILL and reap

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

struct CliResult {
  int code = -1;
  std::string out, err;
};

// Runs the zgrid CLI with `args`, feeding `input` on stdin; bounded by `timeout_ms`.
CliResult run_cli(const std::vector<std::string>& args, const std::string& input = "",
                  Millis timeout_ms = 60'000);

std::string read_file(const std::string& path);

// True when `text` is the factorization of n as the factorize service writes
// it: "p1 * p2 * ..." with every factor prime, ascending, product n ("1" for 1).
bool is_factorization(std::uint64_t n, std::string_view text);

// One zgrid-head of a failover pair (docs/operations.md, "Failover"): a
// head on `data_dir` with an endpoints file of its own, on ephemeral ports
// at its first start and on the same ports when restarted. It may come up
// active or standby.
class HeadProcess {
 public:
  HeadProcess(const TempDir& dir, std::string name, std::string data_dir,
              std::vector<std::string> extra = {}, std::vector<std::string> env = {});
  // Starts (or, killing it first, restarts) the process; with `wait`,
  // waits until it wrote its endpoints file (throws if it did not within 10 s).
  void start(bool wait = true);
  // After start(false): waits for the endpoints file; false after the timeout.
  bool wait_started(Millis timeout_ms);
  void kill_now() {
    if (p_) p_->kill_now();
  }
  // The role its endpoints file says now: "active", "standby" or "" (gone).
  std::string role();
  std::uint64_t epoch() const;
  bool wait_role(const std::string& role, Millis timeout_ms);
  Process& process() { return *p_; }
  bool running() { return p_ && p_->running(); }
  const std::string& frontend() const { return frontend_; }
  const std::string& backend() const { return backend_; }
  const std::string& http() const { return http_; }
  std::string log() const { return read_file(log_); }
  const std::string& name() const { return name_; }

 private:
  std::string field(const std::string& key) const;
  std::string name_, data_dir_, ep_file_, log_;
  std::vector<std::string> extra_, env_;
  std::string frontend_, backend_, http_;
  std::unique_ptr<Process> p_;
};

// A head and its nodes, for one test.
class Grid {
 public:
  Grid() = default;
  ~Grid();

  // Heads check their incremental bookkeeping on every tick
  // (ZGRID_TEST_VERIFY) unless this is turned off; benchmarks turn it off so
  // that they measure the head as it runs in production.
  static void set_verify_tables(bool on);

  // Starts zgrid-head on ephemeral ports with `extra` flags; waits until it listens.
  void start_head(const std::vector<std::string>& extra = {});
  // A command the head is started through from now on, e.g. {"/usr/bin/prlimit",
  // "--nofile=1024:1024", "--"} to lower its descriptor limit.
  void set_head_launcher(std::vector<std::string> launcher) { launcher_ = std::move(launcher); }
  // Extra environment ("NAME=value") every start of the head gets from now
  // on, e.g. a test hook (docs/operations.md, "Test hooks").
  void set_head_env(std::vector<std::string> env) { head_env_ = std::move(env); }
  // Starts a head with a journal in this grid's directory (data/).
  void start_durable_head(const std::vector<std::string>& extra = {});
  std::string data_dir() const { return dir_.file("data"); }
  // Starts a zgrid-node connected to the head; returns its index.
  std::size_t add_node(const std::vector<std::string>& extra = {},
                       const std::vector<std::string>& env = {});
  // Waits until the head lists `n` nodes.
  bool wait_nodes(std::size_t n, Millis timeout_ms = 10'000);
  std::unique_ptr<client::Connection> connect(Millis timeout_ms = 5'000);
  // Options connect() and wait_nodes() use (CURVE keys for a secure head).
  client::ClientOptions client_options() const;
  void set_client_keys(std::string head_key, std::string public_key, std::string secret_key) {
    head_key_ = std::move(head_key);
    public_key_ = std::move(public_key);
    secret_key_ = std::move(secret_key);
  }

  Process& head() { return *head_; }
  Process& node(std::size_t i) { return *nodes_[i]; }
  void kill_head() { head_->kill_now(); }
  // Restarts the head on the same ports and data (killing it first if it runs).
  void restart_head(const std::vector<std::string>& env = {});
  // Waits for the head process to exit by itself (a crash point); true if it did.
  bool wait_head_exit(Millis timeout_ms) { return head_->wait(timeout_ms) >= 0; }
  const std::string& frontend() const { return frontend_; }
  const std::string& backend() const { return backend_; }
  // The HTTP listener's URL (http://127.0.0.1:PORT/), empty when off.
  const std::string& http_url() const { return http_; }
  const TempDir& dir() const { return dir_; }
  std::string head_log() const { return read_file(dir_.file("head.log")); }

 private:
  TempDir dir_;
  std::unique_ptr<Process> head_;
  std::vector<std::unique_ptr<Process>> nodes_;
  std::vector<std::string> head_args_;
  std::vector<std::string> launcher_;
  std::vector<std::string> head_env_;
  std::string frontend_, backend_, http_;
  std::string head_key_, public_key_, secret_key_;
  int head_starts_ = 0;
};

}  // namespace zgrid::testing
