#include "tests/support/grid_process.hpp"

#include "services/factorize_kernel.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace zgrid::testing {

bool wait_until(const std::function<bool()>& cond, Millis timeout_ms, Millis step_ms) {
  const Clock& clock = SteadyClock::instance();
  Millis deadline = clock.now_ms() + timeout_ms;
  while (true) {
    if (cond()) return true;
    if (clock.now_ms() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(step_ms));
  }
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "zgrid-test-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  if (std::getenv("ZGRID_KEEP_TEST_DIRS") == nullptr) std::filesystem::remove_all(path_, ec);
}

Process::Process(std::vector<std::string> argv, const std::string& log_path,
                 const std::vector<std::string>& env) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    for (const auto& e : env) putenv(strdup(e.c_str()));
    execv(args[0], args.data());
    _exit(127);
  }
}

Process::~Process() {
  kill_now();
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int st;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    pid_ = -1;
    return false;
  }
  return true;
}

void Process::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Process::wait(Millis timeout_ms) {
  bool done = wait_until([&] { return !running(); }, timeout_ms, 2);
  if (!done) return -1;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

void Process::kill_now() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int st;
  waitpid(pid_, &st, 0);
  status_ = st;
  pid_ = -1;
}

bool is_factorization(std::uint64_t n, std::string_view text) {
  if (n == 1) return text == "1";
  unsigned __int128 product = 1;
  std::uint64_t last = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find(" * ", pos);
    std::string part(
        text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
    char* stop = nullptr;
    std::uint64_t p = std::strtoull(part.c_str(), &stop, 10);
    if (part.empty() || *stop != '\0' || p < last || !factor::is_prime(p)) return false;
    last = p;
    product *= p;
    if (end == std::string_view::npos) break;
    pos = end + 3;
  }
  return product == n;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

CliResult run_cli(const std::vector<std::string>& args, const std::string& input,
                  Millis timeout_ms) {
  TempDir dir;
  std::string in_path = dir.file("in"), out_path = dir.file("out"), err_path = dir.file("err");
  {
    std::ofstream f(in_path, std::ios::binary);
    f << input;
  }
  std::vector<std::string> argv{ZGRID_CLI_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargs;
  for (auto& a : argv) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int in = open(in_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(cargs[0], cargs.data());
    _exit(127);
  }
  CliResult r;
  int st = 0;
  bool done = wait_until([&] { return waitpid(pid, &st, WNOHANG) == pid; }, timeout_ms, 2);
  if (!done) {
    ::kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    r.code = -1;
  } else {
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

Grid::~Grid() {
  for (auto& n : nodes_) n->kill_now();
  if (head_) head_->kill_now();
}

void Grid::start_head(const std::vector<std::string>& extra) {
  head_args_ = extra;
  restart_head();
}

void Grid::start_durable_head(const std::vector<std::string>& extra) {
  std::vector<std::string> args{"--data-dir", data_dir()};
  args.insert(args.end(), extra.begin(), extra.end());
  start_head(args);
}

namespace {
bool g_verify_tables = true;
}  // namespace

void Grid::set_verify_tables(bool on) {
  g_verify_tables = on;
}

void Grid::restart_head(const std::vector<std::string>& env) {
  if (head_) head_->kill_now();
  std::string ep_file = dir_.file("endpoints");
  std::remove(ep_file.c_str());
  std::vector<std::string> argv{ZGRID_HEAD_BIN, "--endpoints-file", ep_file};
  // Restarts reuse the first ports so that clients and nodes reconnect.
  if (frontend_.empty()) {
    argv.insert(argv.end(), {"--frontend", "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0"});
  } else {
    argv.insert(argv.end(), {"--frontend", frontend_, "--backend", backend_});
  }
  argv.insert(argv.end(), head_args_.begin(), head_args_.end());
  argv.insert(argv.begin(), launcher_.begin(), launcher_.end());
  ++head_starts_;
  // Every test head checks its incremental bookkeeping on each tick.
  std::vector<std::string> head_env;
  if (g_verify_tables) head_env.push_back("ZGRID_TEST_VERIFY=1");
  head_env.insert(head_env.end(), head_env_.begin(), head_env_.end());
  head_env.insert(head_env.end(), env.begin(), env.end());
  head_ = std::make_unique<Process>(argv, dir_.file("head.log"), head_env);
  // Up once it serves: a head on a data directory first takes its lease
  // (at once when the previous holder is gone, head/lease.hpp).
  bool up = wait_until(
      [&] {
        std::string s = read_file(ep_file);
        return s.find("role=active") != std::string::npos ||
               s.find("role=single") != std::string::npos || !head_->running();
      },
      10'000);
  std::string s = read_file(ep_file);
  if (!up || s.find("pid=") == std::string::npos)
    throw std::runtime_error("zgrid-head did not start: " + head_log());
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("frontend=", 0) == 0) frontend_ = line.substr(9);
    if (line.rfind("backend=", 0) == 0) backend_ = line.substr(8);
    if (line.rfind("http=", 0) == 0) http_ = line.substr(5);
  }
}

HeadProcess::HeadProcess(const TempDir& dir, std::string name, std::string data_dir,
                         std::vector<std::string> extra, std::vector<std::string> env)
    : name_(std::move(name)),
      data_dir_(std::move(data_dir)),
      ep_file_(dir.file(name_ + ".endpoints")),
      log_(dir.file(name_ + ".log")),
      extra_(std::move(extra)),
      env_(std::move(env)) {}

void HeadProcess::start(bool wait) {
  if (p_) p_->kill_now();
  std::remove(ep_file_.c_str());
  std::vector<std::string> argv{ZGRID_HEAD_BIN, "--endpoints-file", ep_file_, "--data-dir",
                                data_dir_};
  if (frontend_.empty())
    argv.insert(argv.end(), {"--frontend", "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0"});
  else
    argv.insert(argv.end(), {"--frontend", frontend_, "--backend", backend_});
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  std::vector<std::string> env;
  if (g_verify_tables) env.push_back("ZGRID_TEST_VERIFY=1");
  env.insert(env.end(), env_.begin(), env_.end());
  p_ = std::make_unique<Process>(argv, log_, env);
  if (wait && !wait_started(10'000))
    throw std::runtime_error("zgrid-head " + name_ + " did not start: " + log());
}

bool HeadProcess::wait_started(Millis timeout_ms) {
  bool up = wait_until(
      [&] { return read_file(ep_file_).find("pid=") != std::string::npos || !p_->running(); },
      timeout_ms);
  if (!up || read_file(ep_file_).find("pid=") == std::string::npos) return false;
  frontend_ = field("frontend");
  backend_ = field("backend");
  http_ = field("http");
  return true;
}

std::string HeadProcess::field(const std::string& key) const {
  std::istringstream in(read_file(ep_file_));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  return "";
}

std::string HeadProcess::role() {
  if (!running()) return "";
  return field("role");
}

std::uint64_t HeadProcess::epoch() const {
  return std::strtoull(field("epoch").c_str(), nullptr, 10);
}

bool HeadProcess::wait_role(const std::string& role, Millis timeout_ms) {
  return wait_until([&] { return this->role() == role; }, timeout_ms, 10);
}

std::size_t Grid::add_node(const std::vector<std::string>& extra,
                           const std::vector<std::string>& env) {
  std::vector<std::string> argv{ZGRID_NODE_BIN, "--head", backend_};
  argv.insert(argv.end(), extra.begin(), extra.end());
  std::size_t i = nodes_.size();
  nodes_.push_back(
      std::make_unique<Process>(argv, dir_.file("node" + std::to_string(i) + ".log"), env));
  return i;
}

bool Grid::wait_nodes(std::size_t n, Millis timeout_ms) {
  auto conn = connect();
  return wait_until(
      [&] {
        auto nodes = conn->nodes();
        return nodes.ok() && nodes->size() == n;
      },
      timeout_ms, 20);
}

client::ClientOptions Grid::client_options() const {
  client::ClientOptions o;
  o.head = frontend_;
  o.head_key = head_key_;
  o.public_key = public_key_;
  o.secret_key = secret_key_;
  return o;
}

std::unique_ptr<client::Connection> Grid::connect(Millis timeout_ms) {
  client::ClientOptions o = client_options();
  o.timeout_ms = timeout_ms;
  auto c = client::Connection::open(o);
  if (!c.ok()) throw std::runtime_error("cannot connect to the head: " + c.status().ToString());
  return std::move(c).value();
}

}  // namespace zgrid::testing
