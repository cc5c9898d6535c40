#include "services/python_functions.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "common/protocol.hpp"
#include "common/util.hpp"
#include "services/exec_bridge.hpp"

extern char** environ;

namespace zgrid::svc {

namespace {

bool executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// What the check runs: exit 0 when this Python can run the worker; else it
// prints why (one line) and exits 3 (too old) or 4 (no cloudpickle).
constexpr const char* kCheck =
    "import sys\n"
    "if sys.version_info < (3, 6):\n"
    "    sys.stdout.write('%d.%d' % sys.version_info[:2]); sys.exit(3)\n"
    "try:\n"
    "    import cloudpickle\n"
    "except Exception as e:\n"
    "    sys.stdout.write('%s: %s' % (type(e).__name__, e)); sys.exit(4)\n";

std::string install_hint(const std::string& python) {
  return "install cloudpickle for that Python (Debian: apt install python3-cloudpickle; "
         "otherwise: " +
         python + " -m pip install cloudpickle), or give --python one that has it";
}

}  // namespace

Result<std::string> resolve_program(const std::string& program, const char* path_env) {
  namespace fs = std::filesystem;
  if (program.empty()) return Status::InvalidArgument("--python: empty program name");
  if (program.find('/') != std::string::npos) {
    std::error_code ec;
    fs::path p = fs::absolute(program, ec);
    if (ec) return Status::InvalidArgument("--python " + program + ": " + ec.message());
    std::string abs = p.lexically_normal().string();
    if (!executable_file(abs))
      return Status::InvalidArgument("--python " + program + ": not an executable file");
    return abs;
  }
  std::string path =
      path_env != nullptr && *path_env != '\0' ? path_env : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = end > start ? path.substr(start, end - start) : std::string(".");
    std::error_code ec;
    std::string candidate = fs::absolute(fs::path(dir) / program, ec).lexically_normal().string();
    if (!ec && executable_file(candidate)) return candidate;
    start = end + 1;
  }
  return Status::InvalidArgument("--python " + program + ": not found on PATH");
}

Status check_python(const std::string& python, Millis timeout_ms) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0)
    return Status::Internal("--python " + python + ": pipe: " + strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::string check = kCheck;
  std::string dash_c = "-c";
  std::string prog = python;
  char* argv[] = {prog.data(), dash_c.data(), check.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, python.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    return Status::InvalidArgument("--python " + python + ": cannot run it (" + strerror(rc) + ")");
  }
  // Read what it says until EOF, then reap it; all within the deadline.
  std::string said;
  const Millis deadline = SteadyClock::instance().now_ms() + timeout_ms;
  bool eof = false;
  while (!eof) {
    Millis left = deadline - SteadyClock::instance().now_ms();
    if (left <= 0) break;
    pollfd p{out[0], POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(std::min<Millis>(left, 1000)));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    char buf[512];
    ssize_t got = read(out[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      eof = true;
    } else if (said.size() < 400) {
      said.append(buf, static_cast<std::size_t>(got));
    }
  }
  close(out[0]);
  int status = 0;
  pid_t r = 0;
  while ((r = waitpid(pid, &status, WNOHANG)) == 0 && SteadyClock::instance().now_ms() < deadline)
    usleep(5'000);
  if (r == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return Status::InvalidArgument("--python " + python + ": `" + python +
                                   " -c \"import cloudpickle\"` did not finish within " +
                                   format_duration(timeout_ms));
  }
  for (char& c : said)
    if (c == '\n' || c == '\r') c = ' ';
  if (WIFEXITED(status)) {
    switch (WEXITSTATUS(status)) {
      case 0:
        return Status::OK();
      case 3:
        return Status::InvalidArgument("--python " + python + " is Python " + said +
                                       ": the Python function worker needs Python 3 with "
                                       "cloudpickle");
      case 4:
        return Status::InvalidArgument("--python " + python + " cannot import cloudpickle (" +
                                       said + "): " + install_hint(python));
      default:
        break;
    }
    return Status::InvalidArgument("--python " + python + " is not a Python 3 with cloudpickle (`" +
                                   python + " -c \"import cloudpickle\"` exited with status " +
                                   std::to_string(WEXITSTATUS(status)) + ")");
  }
  return Status::InvalidArgument("--python " + python + " is not a Python 3 with cloudpickle (`" +
                                 python + " -c \"import cloudpickle\"` ended by signal " +
                                 std::to_string(WTERMSIG(status)) + ")");
}

ServiceInfo python_service(const std::string& python, int concurrency, const std::string& node_id) {
  ExecConfig c;
  c.program = python;
  c.args = {"-c", std::string(python_worker_source())};
  c.env = {"ZGRID_NODE=" + node_id, "ZGRID_MAX_PAYLOAD=" + std::to_string(proto::kMaxPayload)};
  c.label = "python@1";
  c.pipeline = true;  // per-call instances; a stateful session's runs one call at a time
  c.sessions = true;  // the worker accepts :session_start/:session_end (_worker.py)
  ServiceInfo info;
  // (Moved in: GCC 12 warns falsely (-Wrestrict) about assigning short literals here.)
  std::string name("python"), version("1");
  info.name = std::move(name);
  info.version = std::move(version);
  info.operations = {std::string("call")};
  info.concurrency = concurrency;
  info.sessions = true;  // zgrid.Executor(stateful=True): one worker process per session
  info.source = "built in (--python " + python + ")";
  info.make = exec_factory(std::move(c));
  return info;
}

Status register_python(const std::string& python, int concurrency, const std::string& node_id,
                       Registry& registry) {
  auto abs = resolve_program(python, std::getenv("PATH"));
  if (!abs.ok()) return abs.status();
  ZG_RETURN_IF_ERROR(check_python(*abs));
  return registry.add(python_service(*abs, concurrency, node_id));
}

}  // namespace zgrid::svc
