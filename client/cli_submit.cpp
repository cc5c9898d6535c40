// zgrid submit and zgrid resubmit: requests from a file, standard input, a
// random generator or another session's faulted ones, into a session;
// interactive results printed as they come, durable ones committed.
#include <sys/stat.h>
#include <unistd.h>
#include <msgpack.hpp>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "client/cli_app.hpp"
#include "client/progress.hpp"
#include "common/clock.hpp"
#include "common/util.hpp"

namespace zgrid::cli_app {
namespace {

// What a durable submit says when SIGINT or SIGTERM ends it before the
// commit (docs/operations.md): the line is written by the handler itself
// (write and _exit are async-signal-safe), wherever the submit is blocked.
std::atomic<const std::string*> g_interrupt_line{nullptr};

void on_interrupt(int sig) {
  const std::string* line = g_interrupt_line.load();
  if (line == nullptr) {  // nothing to say: die of the signal, as before
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  (void)!::write(STDERR_FILENO, line->data(), line->size());
  ::_exit(kExitIncomplete);
}

// Produces input lines from a file, stdin or a random generator (or the
// requests resubmit picked).
class Input {
 public:
  explicit Input(const SubmitArgs& a) : a_(a) {
    if (a.requests != nullptr) {
      return;
    } else if (a.random > 0) {
      rng_.seed(a.seed);
      max_ = a.bits >= 64 ? UINT64_MAX : (std::uint64_t{1} << a.bits) - 1;
    } else if (a.file == "-") {
      in_ = &std::cin;
    } else {
      file_.open(a.file);
      in_ = &file_;
    }
  }
  bool ok() const {
    return a_.requests != nullptr || a_.random > 0 || a_.file == "-" || file_.is_open();
  }
  // The next request's payload and user_data (the input as text); false at
  // the end or on an error (then error() says why).
  bool next_request(std::string* payload, std::string* user_data) {
    if (a_.requests != nullptr) {
      if (produced_ >= a_.requests->size()) return false;
      const auto& q = (*a_.requests)[produced_++];
      *payload = q.payload;
      *user_data = q.user_data;
      return true;
    }
    if (a_.input_format == "msgpack") return next_msgpack(payload, user_data);
    if (!next(user_data)) return false;
    ++line_no_;
    if (a_.input_format == "json") {
      auto packed = zgrid::client::json_to_msgpack(*user_data);
      if (!packed.ok()) {
        error_ = "input line " + std::to_string(line_no_) + ": " + packed.status().message();
        return false;
      }
      *payload = std::move(packed).value();
    } else {
      *payload = *user_data;
    }
    return true;
  }
  const std::string& error() const { return error_; }
  // Blank input lines skipped (each line of text is one request; a blank one
  // is none, and submit says how many it skipped).
  std::uint64_t blank() const { return blank_; }

  // Next line (without newline); false at the end.
  bool next(std::string* line) {
    if (a_.random > 0) {
      if (produced_ >= a_.random) return false;
      ++produced_;
      std::uint64_t v = 1 + (max_ == UINT64_MAX ? rng_() % UINT64_MAX : rng_() % max_);
      *line = std::to_string(v);
      return true;
    }
    while (std::getline(*in_, *line)) {
      if (!line->empty() && line->back() == '\r') line->pop_back();
      if (line->find_first_not_of(" \t") == std::string::npos) {  // blank: not a request
        ++blank_;
        continue;
      }
      return true;
    }
    return false;
  }
  // True when reading more could block (a pipe with nothing buffered).
  bool would_block() const { return in_ == &std::cin && std::cin.rdbuf()->in_avail() <= 0; }
  // All of it is there now: generated, picked, or a regular file (standard
  // input redirected from one too). A pipe, FIFO or terminal may still be
  // being written, and reading ahead would wait for its writer.
  bool all_there() const {
    if (a_.requests != nullptr || a_.random > 0) return true;
    struct stat st {};
    int rc = a_.file == "-" ? ::fstat(STDIN_FILENO, &st) : ::stat(a_.file.c_str(), &st);
    return rc == 0 && S_ISREG(st.st_mode);
  }

 private:
  // A stream of msgpack values, each one request; user_data is its JSON form
  // (cut at 4 KiB).
  bool next_msgpack(std::string* payload, std::string* user_data) {
    msgpack::object_handle oh;
    while (true) {
      try {
        if (unpacker_.next(oh)) break;
      } catch (const std::exception& e) {
        error_ = std::string("input is not a msgpack stream: ") + e.what();
        return false;
      }
      unpacker_.reserve_buffer(1 << 16);
      in_->read(unpacker_.buffer(), 1 << 16);
      std::streamsize n = in_->gcount();
      if (n <= 0) {
        if (unpacker_.nonparsed_size() > 0) error_ = "input ends inside a msgpack value";
        return false;
      }
      unpacker_.buffer_consumed(static_cast<std::size_t>(n));
    }
    msgpack::sbuffer buf;
    msgpack::pack(buf, oh.get());
    payload->assign(buf.data(), buf.size());
    *user_data = zgrid::client::result_to_json(*payload);
    if (user_data->size() > 4096) user_data->resize(4096);
    return true;
  }

  msgpack::unpacker unpacker_{
      nullptr, nullptr, 1 << 16,
      msgpack::unpack_limit(1 << 20, 1 << 16, 1 << 20, 1 << 20, 1 << 20, 32)};
  std::string error_;
  std::uint64_t line_no_ = 0, blank_ = 0;
  const SubmitArgs& a_;
  std::ifstream file_;
  std::istream* in_ = nullptr;
  std::mt19937_64 rng_;
  std::uint64_t max_ = 0, produced_ = 0;
};

// What one message may carry: the client library's batch bytes.
constexpr std::size_t kOneMessageBytes = 1 << 20;

// What an interrupt of a durable submit says (on_interrupt writes one of
// them): before the commit, and while committing.
std::string g_uncommitted_line, g_committing_line;

// The flags as submit takes them: checked, with the defaults drawn (seed,
// client id). An exit status when they are refused.
std::optional<int> check_args(SubmitArgs& a) {
  if (a.durable && a.interactive) return fail("choose one of --durable and --interactive");
  if (a.requests == nullptr && (a.random > 0) == !a.file.empty())
    return fail("give exactly one of --file F (or -) and --random N");
  if (a.bits < 2 || a.bits > 64) return fail("--bits must be in 2..64");
  if (a.input_format != "lines" && a.input_format != "json" && a.input_format != "msgpack")
    return fail("--input-format must be lines, json or msgpack");
  if (a.random > 0 && a.input_format != "lines") return fail("--random makes lines of numbers");
  if (!a.operation.empty()) {
    if (a.service.find('/') != std::string::npos)
      return fail("give the operation once: --service NAME/OP or --operation OP");
    a.service += "/" + a.operation;
  }
  if (auto sp = zgrid::spec::parse(a.service); !sp.ok()) return fail(sp.status());
  if (!a.seed_given) a.seed = zgrid::random_u64();
  if (a.client_id.empty()) a.client_id = "cli-" + zgrid::random_id64();
  if (!zgrid::valid_name(a.client_id))
    return fail("--client-id must be 1..64 printable characters");
  return std::nullopt;
}

// One `zgrid submit`, in the order its steps run (run()): read ahead, open
// the session and its client, send, then commit and report (durable) or
// wait for every response (interactive). A step that ends the command
// returns its exit status. Owns everything the command made, on main's
// thread; destroyed in reverse (the progress line and the printer, then the
// client, then the connection).
class SubmitRun {
 public:
  SubmitRun(const Global& g, SubmitArgs a) : g_(g), a_(std::move(a)), input_(a_) {}
  int run();

 private:
  using Exit = std::optional<int>;
  void read_ahead();
  Exit open_session();
  void arm_interrupt();
  Exit send_all();
  bool next_request(std::string* payload, std::string* line);
  void draw(std::uint64_t total, bool force = false);
  int end_without_commit();
  Exit commit();
  int report_durable();
  Exit wait_responses();
  int report_interactive();

  const Global& g_;
  SubmitArgs a_;
  Input input_;
  // A small input that is all there already is read ahead: [payload, line].
  std::vector<std::pair<std::string, std::string>> first_;
  bool whole_ = false;     // first_ is the whole input: one `submit` message
  std::size_t ahead_ = 0;  // of first_, sent (when not whole_)
  std::unique_ptr<Connection> conn_;
  std::unique_ptr<BrokerClient> client_;
  std::string sid_;
  Millis created_at_ = 0;
  std::optional<Printer> printer_;
  std::optional<zgrid::cli::ProgressLine> progress_;
  std::uint64_t count_ = 0;     // requests sent
  std::uint64_t expected_ = 0;  // interactive: responses to wait for
};

int SubmitRun::run() {
  if (!input_.ok()) return fail("cannot read " + a_.file);
  if (a_.requests != nullptr)
    std::fprintf(stderr,
                 "zgrid: resubmitting %zu requests (user data: their request ids in the "
                 "original)\n",
                 a_.requests->size());
  read_ahead();
  if (Exit rc = open_session()) return *rc;
  printer_.emplace(a_.json, is_factorize(a_.service));
  // On a terminal: what was sent and, interactive, what came back.
  progress_.emplace(stderr, zgrid::cli::show_progress(a_.quiet, !a_.durable));
  if (Exit rc = send_all()) return *rc;
  if (a_.no_end) return end_without_commit();
  if (Exit rc = commit()) return *rc;
  if (a_.durable) return report_durable();
  if (Exit rc = wait_responses()) return *rc;
  return report_interactive();
}

// A small input that is all there already (a regular file, --random,
// resubmit) is a whole session in one message: one round trip and,
// durable, one journal write (docs/protocol.md, "One-message sessions").
void SubmitRun::read_ahead() {
  if (a_.no_end || !input_.all_there()) return;
  std::size_t bytes = 0;
  std::string payload, line;
  while (first_.size() <= a_.batch && bytes <= kOneMessageBytes) {
    if (!input_.next_request(&payload, &line)) {
      whole_ = input_.error().empty();
      break;
    }
    bytes += payload.size() + line.size();
    first_.emplace_back(std::move(payload), std::move(line));
  }
  whole_ = whole_ && first_.size() <= a_.batch && bytes <= kOneMessageBytes;
}

// Connects, makes the session (whole: with its requests, committed) and
// opens this client of it.
SubmitRun::Exit SubmitRun::open_session() {
  auto conn = connect(g_);
  if (!conn.ok()) return fail(conn.status());
  conn_ = std::move(conn).value();
  zgrid::proto::CreateSession cs;
  cs.service = a_.service;
  cs.durable = a_.durable;
  cs.client_idle_timeout_ms = static_cast<std::uint64_t>(a_.client_idle_timeout_ms);
  cs.task_timeout_ms = static_cast<std::uint64_t>(a_.task_timeout_ms);
  cs.deadline_ms = static_cast<std::uint64_t>(a_.deadline_ms);
  cs.stateful = a_.stateful;
  zgrid::client::BrokerOptions bo;
  bo.batch_items = a_.batch;
  // Durable: flush as we go so the grid starts before the last request is
  // sent; each batch carries the flush (a bare flush per batch was a
  // journal write and a round trip the sending waited for).
  bo.flush_batches = a_.durable && !a_.no_end;
  if (whole_) {
    std::vector<BrokerClient::Item> items;
    items.reserve(first_.size());
    for (const auto& [payload, line] : first_) items.push_back({payload, line});
    auto made = BrokerClient::submit(*conn_, cs, a_.client_id, items, bo);
    if (!made.ok()) return fail(made.status());
    client_ = std::move(made).value();
    sid_ = client_->session_id();
  } else {
    auto info = conn_->create_session(cs);
    if (!info.ok()) return fail(info.status());
    sid_ = info->session_id;
  }
  created_at_ = zgrid::SteadyClock::instance().now_ms();
  std::fprintf(stderr, "zgrid: session %s (%s%s, %s)\n", sid_.c_str(),
               a_.durable ? "durable" : "interactive", a_.stateful ? ", stateful" : "",
               a_.service.c_str());
  if (a_.durable && !a_.no_end && !whole_) arm_interrupt();
  if (!whole_) {
    auto bc = BrokerClient::open(*conn_, sid_, a_.client_id, bo);
    if (!bc.ok()) return fail(bc.status());
    client_ = std::move(bc).value();
  }
  count_ = whole_ ? first_.size() : 0;
  return std::nullopt;
}

// Durable, until committed: an interrupt says what becomes of the session.
void SubmitRun::arm_interrupt() {
  auto st = conn_->session_status(sid_);
  std::string idle =
      zgrid::format_duration(st.ok() ? static_cast<Millis>(st->u64("client_idle_timeout_ms")) : 0);
  g_uncommitted_line = "\nzgrid: interrupted: session " + sid_ +
                       " was not committed; the requests sent are removed with this client once "
                       "it has been idle " +
                       idle + "; remove them now with: zgrid close " + sid_ + " --purge\n";
  g_committing_line = "\nzgrid: interrupted while committing session " + sid_ +
                      ": see whether it was with: zgrid status " + sid_ + "\n";
  g_interrupt_line.store(&g_uncommitted_line);
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
}

// On a terminal: what was sent and, interactive, what came back.
void SubmitRun::draw(std::uint64_t total, bool force) {
  if (!progress_->enabled()) return;
  if (a_.durable) {
    progress_->text("sending: " + std::to_string(total) + " sent, " +
                        std::to_string(client_->acked()) + " acknowledged",
                    force);
    return;
  }
  zgrid::cli::Progress p;
  p.total = total;
  p.faulted = printer_->faulted();
  p.done = printer_->count() - p.faulted;
  p.running_known = false;
  progress_->update(p, force);
}

// The next request to send: what was read ahead, then the rest of the
// input (nothing more when the read-ahead went whole).
bool SubmitRun::next_request(std::string* payload, std::string* line) {
  if (whole_) return false;
  if (ahead_ < first_.size()) {
    *payload = std::move(first_[ahead_].first);
    *line = std::move(first_[ahead_].second);
    ++ahead_;
    return true;
  }
  return input_.next_request(payload, line);
}

// Sends every request (batched by the client), printing interactive
// responses as they come.
SubmitRun::Exit SubmitRun::send_all() {
  BrokerClient& c = *client_;
  zgrid::proto::Response r;
  std::string line, payload;
  while (next_request(&payload, &line)) {
    Status st = c.send(payload, line);
    if (!st.ok()) return fail(st);
    ++count_;
    if (input_.would_block()) {
      st = a_.no_end ? c.send_pending() : c.flush();
      if (!st.ok()) return fail(st);
    }
    if (!a_.durable)
      while (c.poll_response(&r)) printer_->print(r);
    if ((count_ & 1023) == 0) draw(count_);
  }
  draw(count_, true);
  if (!input_.error().empty()) return fail(input_.error());
  if (input_.blank() > 0) {
    progress_->finish();
    std::fprintf(stderr, "zgrid: %llu blank input line%s skipped (not requests)\n",
                 static_cast<unsigned long long>(input_.blank()), input_.blank() == 1 ? "" : "s");
  }
  return std::nullopt;
}

// --no-end: every request acknowledged, neither flushed nor ended.
int SubmitRun::end_without_commit() {
  Status st = client_->wait_acked();
  if (!st.ok()) return fail(st);
  progress_->finish();
  std::printf("%s\n", sid_.c_str());
  std::fprintf(stderr, "zgrid: %llu requests acknowledged, not flushed, not ended (--no-end)\n",
               static_cast<unsigned long long>(client_->acked()));
  return kExitOk;
}

// Ends this client's requests: committed.
SubmitRun::Exit SubmitRun::commit() {
  if (g_interrupt_line.load()) g_interrupt_line.store(&g_committing_line);
  Status st = client_->end_requests();
  g_interrupt_line.store(nullptr);  // committed (or failed): no longer ours to explain
  if (!st.ok()) return fail(st);
  if (client_->rejected() > 0 && (progress_->finish(), true))
    std::fprintf(stderr, "zgrid: %llu requests refused (over the size limit)\n",
                 static_cast<unsigned long long>(client_->rejected()));
  return std::nullopt;
}

int SubmitRun::report_durable() {
  progress_->finish();
  std::printf("%s\n", sid_.c_str());
  // Committed: it runs whenever it can. If it cannot now, say why (no
  // node offers its service, the journal's disk is full), not an error.
  if (auto stt = conn_->session_status(sid_); stt.ok() && !stt->str("paused").empty())
    std::fprintf(stderr,
                 "zgrid: session %s is committed and will run when it can; it is paused: %s\n",
                 sid_.c_str(), stt->str("paused").c_str());
  return client_->rejected() > 0 ? kExitFaulted : kExitOk;
}

// Interactive: the responses belong to this client; wait for the last one.
// While none comes, the session's status says whether it can run at all:
// the head's verdict that no node offers the service (`unoffered`: past
// its node reconnect window, none since the session was made) ends the
// wait, after the grace for nodes starting with it, unless
// --wait-for-nodes. Any other reason (nodes still registering after a
// head restart, nodes gone mid-run or draining) is said, and waited for.
SubmitRun::Exit SubmitRun::wait_responses() {
  BrokerClient& c = *client_;
  expected_ = count_ - c.rejected();
  const zgrid::Clock& clock = zgrid::SteadyClock::instance();
  Millis last_check = clock.now_ms();
  std::string said_paused;
  zgrid::proto::Response r;
  while (printer_->count() < expected_) {
    draw(expected_);
    auto got = c.next_response(&r, progress_->enabled() ? 250 : 1000);
    if (!got.ok()) return fail(got.status());
    if (*got) {
      printer_->print(r);
      last_check = clock.now_ms();
      continue;
    }
    if (clock.now_ms() - last_check < 1000) continue;
    last_check = clock.now_ms();
    // Nothing for a second: is the session still making progress?
    auto stt = conn_->session_status(sid_);
    if (!stt.ok()) return fail(stt.status());
    if (stt->u64("removed") > 0) break;
    std::string paused = stt->str("paused");
    if (stt->boolean("unoffered") && !a_.wait_for_nodes) {
      if (clock.now_ms() - created_at_ < kNodesGraceMs) continue;  // nodes may be registering
      std::fflush(stdout);
      (void)conn_->close_session(sid_, zgrid::proto::CloseMode::kCancel);
      return fail("session " + sid_ + " cannot run: " + paused +
                  "; start a node that offers it, or submit with --wait-for-nodes to wait for "
                  "one (the session is cancelled)");
    }
    note_paused(sid_, *stt, &said_paused);
  }
  return std::nullopt;
}

int SubmitRun::report_interactive() {
  if (progress_->enabled()) {
    zgrid::cli::Progress p;
    p.total = expected_;
    p.faulted = printer_->faulted();
    p.done = printer_->count() - p.faulted;
    p.removed = expected_ - printer_->count();
    p.running_known = false;
    progress_->keep(p);
  }
  // (A submitted session is sealed already, and gone once delivered.)
  if (!whole_) (void)conn_->close_session(sid_, zgrid::proto::CloseMode::kSeal);
  if (printer_->count() < expected_) {
    std::fprintf(stderr, "zgrid: %llu of %llu requests were removed\n",
                 static_cast<unsigned long long>(expected_ - printer_->count()),
                 static_cast<unsigned long long>(expected_));
    return kExitFaulted;
  }
  return printer_->faulted() > 0 || client_->rejected() > 0 ? kExitFaulted : kExitOk;
}

}  // namespace

int cmd_submit(const Global& g, SubmitArgs a) {
  if (std::optional<int> rc = check_args(a)) return *rc;
  SubmitRun run(g, std::move(a));
  return run.run();
}

int cmd_resubmit(const Global& g, const ResubmitArgs& a) {
  std::vector<std::string> codes;
  for (std::size_t at = 0; at <= a.codes.size() && !a.codes.empty();) {
    std::size_t comma = std::min(a.codes.find(',', at), a.codes.size());
    if (comma > at) codes.push_back(a.codes.substr(at, comma - at));
    at = comma + 1;
  }
  auto conn = connect(g);
  if (!conn.ok()) return fail(conn.status());
  auto info = (*conn)->attach(a.session_id);
  if (!info.ok()) return fail(info.status());
  auto picked = (*conn)->faulted_requests(a.session_id, codes);
  if (!picked.ok()) return fail(picked.status());
  if (picked->empty()) {
    std::fprintf(stderr, "zgrid: session %s has no faulted requests%s: nothing to resubmit\n",
                 a.session_id.c_str(), codes.empty() ? "" : (" with code " + a.codes).c_str());
    return kExitOk;
  }
  conn->reset();
  SubmitArgs s;
  s.service = a.service.empty() ? info->service : a.service;
  s.durable = a.durable;
  s.stateful = info->stateful;
  s.json = a.json;
  s.quiet = a.quiet;
  s.requests = &*picked;
  s.wait_for_nodes = a.wait_for_nodes;
  return cmd_submit(g, std::move(s));
}

}  // namespace zgrid::cli_app
