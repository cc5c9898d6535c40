#include "services/exec_bridge.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/codec.hpp"
#include "common/log.hpp"
#include "common/protocol.hpp"
#include "common/util.hpp"

extern char** environ;

namespace zgrid::svc {

namespace {

constexpr const char* kLog = "exec";
constexpr Millis kSliceMs = 50;  // a cancel is noticed within this
constexpr std::size_t kMaxFrame = proto::kMaxPayload + 4096;
// Stateful sessions: how long the program may take to start and accept a
// session, and to answer its end.
constexpr Millis kSessionStartMs = 60'000;
constexpr Millis kSessionEndMs = 5'000;
constexpr std::string_view kSessionStart = ":session_start";
constexpr std::string_view kSessionEnd = ":session_end";

// Pipelining: at most this many requests in one run_pipelined call (the node
// claims fewer when they are long: node/worker_pool.cpp), frames encoded this
// far ahead of what the pipe took, replies read in chunks of this.
constexpr std::size_t kDepth = 64;
constexpr std::size_t kWriteAhead = 256 << 10;
constexpr std::size_t kReadChunk = 64 << 10;

enum class Io { kOk, kClosed, kTimeout, kCancelled, kBadFrame };

Millis now_ms() {
  return SteadyClock::instance().now_ms();
}

class ExecService final : public Service {
 public:
  explicit ExecService(const ExecConfig& c) : c_(c) {}
  ~ExecService() override { stop_worker(true); }

  void handle(std::string_view request, Output& out) override { run("", request, out); }

  void cancel() override { cancelled_.store(true); }

  // A stateful session: this instance's own worker process, started now,
  // told [id, ":session_start", key]; it accepts with [id, nil, ...].
  Status open_session(std::string_view session_key) override {
    if (!c_.sessions) return Service::open_session(session_key);
    if (cancelled_.load()) return Status::Unavailable("node stopping");
    if (Status st = start_worker(); !st.ok()) return st;
    session_ = true;
    Output reply;
    if (Status st = control(kSessionStart, session_key, kSessionStartMs, reply); !st.ok())
      return st;
    if (!reply.fault_code.empty())
      return Status::InvalidArgument("exec worker of " + c_.label + " refused the session (" +
                                     reply.fault_code + "): " + reply.data);
    key_.assign(session_key);
    return Status::OK();
  }

  // Tells the worker [id, ":session_end", key] and waits (bounded) for its
  // answer; the process is stopped when the instance is destroyed.
  void close_session() override {
    if (!session_ || key_.empty() || pid_ < 0 || cancelled_.load()) return;
    Output reply;
    if (Status st = control(kSessionEnd, key_, kSessionEndMs, reply); !st.ok())
      ZG_LOG(kWarn, kLog, st.message());
    else if (!reply.fault_code.empty())
      ZG_LOG(kWarn, kLog,
             "exec worker of " + c_.label + " answered the end of session " + key_ + " with " +
                 reply.fault_code + ": " + reply.data);
    key_.clear();
  }

  std::size_t pipeline_depth() const override { return c_.pipeline && !session_ ? kDepth : 1; }

  // Pipelined (ExecConfig::pipeline, per-call instances): the frames of
  // requests[next..] are written with non-blocking writes interleaved with
  // reading the replies, in order (one poll() on both pipes: a worker that
  // stops reading while its replies fill the other pipe cannot deadlock us).
  // A failure at request i (the worker died, timed out, sent garbage) answers
  // request i as run() would, stops the worker, and the rest go on a
  // restarted one (with the usual backoff): the worker answers in order, so
  // it never started the requests after the first unanswered one.
  void run_pipelined(std::string_view operation, std::span<const std::string_view> requests,
                     std::span<Output> out, const std::function<void(std::size_t)>& done) override {
    if (pipeline_depth() <= 1) return Service::run_pipelined(operation, requests, out, done);
    std::size_t next = 0;
    while (next < requests.size()) {
      if (cancelled_.load() || pid_ < 0) {
        // Node stop, or no worker: run() answers (and starts one) as for one request.
        run(operation, requests[next], out[next]);
        done(next++);
        continue;
      }
      next = pipeline(operation, requests, next, out, done);
    }
  }

  void run(std::string_view operation, std::string_view request, Output& out) override {
    if (cancelled_.load()) return out.fault(kRetryable, "node stopping");
    if (pid_ < 0) {
      // A session's state lives in its process: a new one would not have it.
      if (session_)
        return out.fault(kRetryable, "exec worker of " + c_.label +
                                         " for this stateful session is gone: its state is lost");
      if (Status st = start_worker(); !st.ok()) return out.fault(kRetryable, st.message());
    }
    // No deadline of its own: the node times the task from its start and sets
    // out.cancelled() past the task timeout (which a session may lengthen).
    const Millis deadline = 0;
    const Millis started = now_ms();
    std::uint64_t id = ++next_id_;
    out_ = &out;
    Io io = exchange(id, operation, request, deadline);
    const char* restarted = session_ ? "; the session's state is lost" : "; it is restarted";
    switch (io) {
      case Io::kOk:
        break;
      case Io::kBadFrame:
        return garbage(out, "a frame length out of bounds");
      case Io::kClosed:
        return lost(
            out, "exec worker of " + c_.label + " died (" + stop_worker(false) + ")" + restarted);
      case Io::kTimeout:  // no deadline is set: not reached
      case Io::kCancelled:
        stop_worker(false);
        if (out.cancelled())  // past the task timeout: the node reported it already
          return lost(out, "timed out after " + format_duration(now_ms() - started) +
                               ": exec worker of " + c_.label + " killed" +
                               (session_ ? "; the session's state is lost" : " and restarted"));
        return out.fault(kRetryable, "node stopping");
    }
    decode_reply(id, out);
  }

 private:
  // Appends the frame [id, operation, payload] to `buf`: a 4-byte big-endian
  // length, then the msgpack value (the one encoder of both exchanges).
  static void append_frame(std::string& buf, std::uint64_t id, std::string_view operation,
                           std::string_view payload) {
    Writer w(payload.size() + 64);
    w.array(3).u64(id).str(operation).bin(payload);
    const std::uint32_t len = static_cast<std::uint32_t>(w.size());
    for (int i = 0; i < 4; ++i) buf.push_back(static_cast<char>((len >> (24 - 8 * i)) & 0xff));
    buf.append(w.data(), w.size());
  }

  // One pipelined exchange with the running worker, from request `first`:
  // returns the index of the first request not answered yet (requests.size()
  // when all were). Every request before it got its answer and done().
  std::size_t pipeline(std::string_view operation, std::span<const std::string_view> requests,
                       std::size_t first, std::span<Output> out,
                       const std::function<void(std::size_t)>& done) {
    const std::size_t n = requests.size();
    const std::uint64_t base = next_id_ + 1;  // request i has id base + (i - first)
    next_id_ += n - first;
    std::size_t answered = first;  // the next reply is this request's
    std::size_t encoded = first;   // requests before this are in wbuf_ (or written)
    wbuf_.clear();
    std::size_t woff = 0;
    std::size_t rlen = 0, roff = 0;  // rbuf_[roff, rlen): read, not yet a whole reply
    bool writable = true;            // false after EPIPE: the replies already sent may still come
    bool room = true;  // the pipe to the worker may take more (else: wait for POLLOUT)
    Millis started = now_ms();
    out_ = &out[answered];
    while (answered < n) {
      // Write what the pipe takes, encoding up to kWriteAhead bytes ahead.
      while (writable && room) {
        if (woff == wbuf_.size()) {
          if (encoded == n) break;
          wbuf_.clear();
          woff = 0;
          while (encoded < n && wbuf_.size() < kWriteAhead) {
            append_frame(wbuf_, base + (encoded - first), operation, requests[encoded]);
            ++encoded;
          }
        }
        ssize_t w = write(to_, wbuf_.data() + woff, wbuf_.size() - woff);
        if (w > 0) {
          woff += static_cast<std::size_t>(w);
        } else if (w < 0 && errno == EAGAIN) {
          room = false;  // full: wait for POLLOUT
        } else if (w < 0 && errno != EINTR) {
          writable = false;  // EPIPE: the worker is gone; read what it said before
        }
      }
      // Every whole reply in rbuf_ answers the next request.
      while (answered < n && rlen - roff >= 4) {
        std::size_t body = 0;
        for (int i = 0; i < 4; ++i)
          body =
              (body << 8) | static_cast<unsigned char>(rbuf_[roff + static_cast<std::size_t>(i)]);
        if (body == 0 || body > kMaxFrame) {
          garbage(out[answered], "a frame length out of bounds");
          done(answered);
          return answered + 1;
        }
        if (rlen - roff - 4 < body) break;
        decode_reply(base + (answered - first), std::string_view(rbuf_.data() + roff + 4, body),
                     out[answered]);
        roff += 4 + body;
        bool stopped = pid_ < 0;  // garbage: the worker was stopped
        done(answered);
        ++answered;
        started = now_ms();
        if (stopped) return answered;
        if (answered < n) out_ = &out[answered];
      }
      if (answered == n) break;
      if (roff > 0) {  // keep the unread part at the front
        std::memmove(rbuf_.data(), rbuf_.data() + roff, rlen - roff);
        rlen -= roff;
        roff = 0;
      }
      // Wait for a reply, or for room to write.
      if (cancelled_.load() || out[answered].cancelled()) {
        stop_worker(false);
        if (out[answered].cancelled())
          lost(out[answered], "timed out after " + format_duration(now_ms() - started) +
                                  ": exec worker of " + c_.label + " killed and restarted");
        else
          out[answered].fault(kRetryable, "node stopping");
        done(answered);
        return answered + 1;
      }
      pollfd p[2] = {{from_, POLLIN, 0}, {to_, POLLOUT, 0}};
      bool want_write = writable && !room;
      int k = poll(p, want_write ? 2 : 1, static_cast<int>(kSliceMs));
      if (k < 0 && errno != EINTR) return died(out, answered, done);
      if (k <= 0) continue;
      if (want_write && (p[1].revents & (POLLERR | POLLHUP))) writable = false;
      if (want_write && (p[1].revents & POLLOUT)) room = true;
      if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (rbuf_.size() < rlen + kReadChunk) rbuf_.resize(rlen + kReadChunk);
        ssize_t r = read(from_, rbuf_.data() + rlen, kReadChunk);
        if (r > 0) rlen += static_cast<std::size_t>(r);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
          return died(out, answered, done);  // EOF: it died while running request `answered`
      }
    }
    out_ = nullptr;
    return n;
  }

  // The worker is gone (EOF) while request `i` was the first unanswered.
  std::size_t died(std::span<Output> out, std::size_t i,
                   const std::function<void(std::size_t)>& done) {
    lost(out[i],
         "exec worker of " + c_.label + " died (" + stop_worker(false) + "); it is restarted");
    done(i);
    return i + 1;
  }

  // Writes the frame [id, operation, payload] and reads the reply's body
  // into in_, within `deadline` (0: none).
  Io exchange(std::uint64_t id, std::string_view operation, std::string_view payload,
              Millis deadline) {
    std::string frame;
    append_frame(frame, id, operation, payload);
    Io io = write_all(frame, deadline);
    if (io == Io::kOk) io = read_exact(4, deadline);
    if (io != Io::kOk) return io;
    std::size_t body = 0;
    for (int i = 0; i < 4; ++i) body = (body << 8) | static_cast<unsigned char>(in_[i]);
    if (body == 0 || body > kMaxFrame) return Io::kBadFrame;
    return read_exact(body, deadline);
  }

  // A session message (":session_start", ":session_end") with its own
  // deadline; `reply` gets the worker's answer. Errors: the worker died,
  // did not answer in time, or answered garbage (it is stopped then).
  Status control(std::string_view what, std::string_view key, Millis timeout_ms, Output& reply) {
    out_ = nullptr;  // no task's cancel flag: the deadline and node stop bound it
    std::uint64_t id = ++next_id_;
    Io io = exchange(id, what, key, now_ms() + timeout_ms);
    std::string why;
    switch (io) {
      case Io::kOk:
        decode_reply(id, reply);
        if (pid_ < 0) return Status::InvalidArgument(reply.data);  // garbage: stopped
        return Status::OK();
      case Io::kBadFrame:
        garbage(reply, "a frame length out of bounds");
        return Status::InvalidArgument(reply.data);
      case Io::kClosed:
        why = "died (" + stop_worker(false) + ")";
        break;
      case Io::kTimeout:
        stop_worker(false);
        why = "did not answer within " + format_duration(timeout_ms) + " (killed)";
        break;
      case Io::kCancelled:
        stop_worker(false);
        return Status::Unavailable("node stopping");
    }
    return Status::InvalidArgument("exec worker of " + c_.label + " " + why + " at " +
                                   std::string(what) + " of session " + std::string(key));
  }

  void lost(Output& out, const std::string& why) {
    ++failures_;
    ZG_LOG(kWarn, kLog, why);
    out.fault(kRetryable, why);
  }

  void garbage(Output& out, const std::string& what) {
    std::string why = "exec worker of " + c_.label + " sent " + what +
                      (session_ ? "; the session's state is lost" : "; it is restarted");
    ZG_LOG(kWarn, kLog, why);
    stop_worker(false);
    ++failures_;
    out.fault(kServiceError, why);
  }

  void decode_reply(std::uint64_t id, Output& out) { decode_reply(id, in_, out); }

  void decode_reply(std::uint64_t id, std::string_view body, Output& out) {
    msgpack::object_handle oh;
    try {
      std::size_t off = 0;
      msgpack::unpack_limit limit(16, 16, kMaxFrame, kMaxFrame, 0, 4);
      oh = msgpack::unpack(body.data(), body.size(), off, nullptr, nullptr, limit);
      if (off != body.size()) return garbage(out, "trailing bytes after a reply");
    } catch (const std::exception&) {
      return garbage(out, "malformed msgpack");
    }
    const msgpack::object& root = oh.get();
    if (root.type != msgpack::type::ARRAY || root.via.array.size != 3)
      return garbage(out, "a reply that is not [id, fault, data]");
    const msgpack::object* e = root.via.array.ptr;
    if (e[0].type != msgpack::type::POSITIVE_INTEGER || e[0].via.u64 != id)
      return garbage(out, "a reply with the wrong id");
    auto text = [](const msgpack::object& o, std::string_view* v) {
      if (o.type == msgpack::type::STR)
        *v = {o.via.str.ptr, o.via.str.size};
      else if (o.type == msgpack::type::BIN)
        *v = {o.via.bin.ptr, o.via.bin.size};
      else
        return false;
      return true;
    };
    std::string_view code, data;
    if (e[1].type != msgpack::type::NIL && !text(e[1], &code))
      return garbage(out, "a fault code that is not a string");
    if (!text(e[2], &data)) return garbage(out, "data that is neither bin nor str");
    if (data.size() > proto::kMaxPayload) return garbage(out, "a result over the payload limit");
    bool code_ok = code.size() <= 64;
    for (char ch : code)
      if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) code_ok = false;
    if (e[1].type != msgpack::type::NIL && (code.empty() || !code_ok))
      return garbage(out, "a malformed fault code");
    failures_ = 0;
    if (e[1].type == msgpack::type::NIL) {
      out.data.assign(data);
    } else {
      out.fault(code, data);
    }
  }

  Status start_worker() {
    if (failures_ > 0) {
      // It keeps dying without answering: back off (bounded) before the next try.
      Millis wait = std::min<Millis>(c_.max_backoff_ms, Millis{50} << std::min(failures_, 10));
      Millis until = now_ms() + wait;
      while (now_ms() < until && !cancelled_.load())
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min<Millis>(kSliceMs, wait)));
    }
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0)
      return Status::Internal("pipe: " + std::string(strerror(errno)));
    if (pipe2(from_child, O_CLOEXEC) != 0) {
      close(to_child[0]);
      close(to_child[1]);
      return Status::Internal("pipe: " + std::string(strerror(errno)));
    }
    // Everything the child needs is built before fork: after it, only
    // async-signal-safe calls (the node is multithreaded).
    std::vector<std::string> argv_s{c_.program};
    argv_s.insert(argv_s.end(), c_.args.begin(), c_.args.end());
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string_view kv(*e);
      bool overridden = false;
      for (const auto& x : c_.env)
        if (kv.substr(0, kv.find('=') + 1) == std::string_view(x).substr(0, x.find('=') + 1))
          overridden = true;
      if (!overridden) env_s.emplace_back(kv);
    }
    env_s.insert(env_s.end(), c_.env.begin(), c_.env.end());
    std::vector<char*> envp;
    for (auto& s : env_s) envp.push_back(s.data());
    envp.push_back(nullptr);
    pid_t parent = getpid();

    pid_t pid = fork();
    if (pid < 0) {
      for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) close(fd);
      return Status::Internal("fork: " + std::string(strerror(errno)));
    }
    if (pid == 0) {
      // The worker must not outlive the node.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(to_child[0], 0);
      dup2(from_child[1], 1);
      signal(SIGPIPE, SIG_DFL);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    to_ = to_child[1];
    from_ = from_child[0];
    // Non-blocking, so a worker that stops reading cannot pin us in write():
    // write_all waits with poll() up to the deadline instead.
    (void)fcntl(to_, F_SETFL, fcntl(to_, F_GETFL) | O_NONBLOCK);
    pid_ = pid;
    ZG_LOG(kDebug, kLog, "started exec worker of " + c_.label + " pid=" + std::to_string(pid));
    return Status::OK();
  }

  // Stops the worker: gently (close its stdin, wait a moment) at node stop,
  // else at once. Returns how it ended, for messages.
  std::string stop_worker(bool gently) {
    if (pid_ < 0) return "not running";
    if (to_ >= 0) close(to_);
    to_ = -1;
    int status = 0;
    pid_t r = 0;
    Millis until = now_ms() + (gently ? 1000 : 100);
    while ((r = waitpid(pid_, &status, WNOHANG)) == 0 && now_ms() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::string how;
    if (r == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      how = "killed";
    } else if (r > 0 && WIFEXITED(status)) {
      how = "exit status " + std::to_string(WEXITSTATUS(status));
    } else if (r > 0 && WIFSIGNALED(status)) {
      how = "signal " + std::to_string(WTERMSIG(status));
    } else {
      how = "gone";
    }
    if (from_ >= 0) close(from_);
    from_ = -1;
    pid_ = -1;
    return how;
  }

  // Waits for `events` on `fd` until `deadline` (0: none), in slices.
  Io wait(int fd, short events, Millis deadline) {
    while (true) {
      if (cancelled_.load() || (out_ != nullptr && out_->cancelled())) return Io::kCancelled;
      Millis slice = kSliceMs;
      if (deadline > 0) {
        Millis left = deadline - now_ms();
        if (left <= 0) return Io::kTimeout;
        slice = std::min(slice, left);
      }
      pollfd p{fd, events, 0};
      int n = poll(&p, 1, static_cast<int>(slice));
      if (n < 0 && errno != EINTR) return Io::kClosed;
      if (n > 0) return Io::kOk;
    }
  }

  Io write_all(const std::string& data, Millis deadline) {
    std::size_t done = 0;
    while (done < data.size()) {
      Io io = wait(to_, POLLOUT, deadline);
      if (io != Io::kOk) return io;
      ssize_t n = write(to_, data.data() + done, data.size() - done);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return Io::kClosed;  // EPIPE: the worker is gone
      done += static_cast<std::size_t>(n);
    }
    return Io::kOk;
  }

  Io read_exact(std::size_t len, Millis deadline) {
    in_.resize(len);
    std::size_t done = 0;
    while (done < len) {
      Io io = wait(from_, POLLIN, deadline);
      if (io != Io::kOk) return io;
      ssize_t n = read(from_, in_.data() + done, len - done);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return Io::kClosed;  // EOF: the worker is gone
      done += static_cast<std::size_t>(n);
    }
    return Io::kOk;
  }

  const ExecConfig c_;
  std::atomic<bool> cancelled_{false};  // node stop: every request gives up
  const Output* out_ = nullptr;         // the request being run (its cancel flag)
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  bool session_ = false;  // a stateful session's instance: its process is never restarted
  std::string key_;       // the session accepted by the worker (until its end is sent)
  std::uint64_t next_id_ = 0;
  int failures_ = 0;  // consecutive deaths without an answer (restart backoff)
  std::string in_;
  // Pipelining's buffers, kept between runs (their capacity).
  std::string wbuf_;
  std::vector<char> rbuf_;  // grows to the largest reply (+ a read chunk), never shrinks
};

}  // namespace

MakeService exec_factory(ExecConfig config) {
  return [config]() -> Result<std::unique_ptr<Service>> {
    return std::unique_ptr<Service>(std::make_unique<ExecService>(config));
  };
}

}  // namespace zgrid::svc
