// The zgrid C++ client library: what a program includes to use a grid.
//
//   #include <zgrid/client.hpp>
//   auto conn = Connection::open({.head = "tcp://127.0.0.1:5555"});
//   auto info = (*conn)->create_session({.service = "factorize", .durable = false});
//   auto bc = BrokerClient::open(**conn, info->session_id, "my-client");
//   (*bc)->send("1827364510", "line 1");   // batched; flush() sends a partial batch
//   (*bc)->end_requests();                 // committed
//   proto::Response r; while ((*bc)->next_response(&r, 10'000).value()) ...
//
// Link zgrid::client (CMake: find_package(zgrid CONFIG REQUIRED); docs/operations.md).
// This header needs only the standard library and its siblings in <zgrid/>;
// ZeroMQ and the wire protocol stay inside the library. For msgpack payloads
// see <zgrid/client_msgpack.hpp>.
//
// Errors are values: every call that can fail returns a Status or a Result<T>
// (<zgrid/status.hpp>) and none throws one at its caller.
// Threading: a Connection and its BrokerClients and ResponseStreams belong to
// one thread (they share one socket). Use one Connection per thread;
// different Connections are independent.
// Ownership: Connection::open and BrokerClient::open hand back unique_ptrs
// the caller owns. A BrokerClient or ResponseStream refers to its
// Connection, which must outlive it.
// Waits are bounded by ClientOptions::timeout_ms: a head that does not answer
// becomes an `unavailable` error, never a hang.
#ifndef ZGRID_CLIENT_HPP_
#define ZGRID_CLIENT_HPP_

#include <zgrid/status.hpp>
#include <zgrid/types.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace zgrid::client {

struct ClientOptions {
  // The head's frontend endpoint, or several heads' (failover), separated by
  // commas: "tcp://a:5555,tcp://b:5555". The connection talks to the active
  // one and follows a takeover (docs/operations.md, "Failover: clients").
  std::string head = "tcp://127.0.0.1:5555";
  Millis timeout_ms = 10'000;  // the head must answer a request within this
  // CURVE (docs/security.md): the head's public key and this client's pair,
  // all Z85 (40 characters, as in the key files). Empty: plain.
  std::string head_key, public_key, secret_key;
  // Asked at least every 100 ms while a call waits on the network (on the
  // calling thread); true makes the call return Code::kCancelled at once,
  // leaving the connection usable. The Python module uses it for Ctrl-C.
  std::function<bool()> interrupted;
};

// An ordered list of named values (status and node tables), easy to print as
// text or JSON.
using Value = std::variant<std::uint64_t, std::int64_t, double, bool, std::string>;
struct Fields {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  std::uint64_t u64(std::string_view key) const;
  std::string str(std::string_view key) const;
  bool boolean(std::string_view key) const;
  std::string to_json() const;
};

class BrokerClient;
class Transport;  // the socket and its round trips: inside the library

class Connection {
 public:
  // Connects and checks that a head answers (kUnavailable after the timeout).
  static Result<std::unique_ptr<Connection>> open(const ClientOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Result<proto::SessionInfo> create_session(const proto::CreateSession& request);
  Result<proto::SessionInfo> attach(const std::string& session_id);
  Result<Fields> session_status(const std::string& session_id);
  // Waits until the session is complete (no open client, every committed
  // request answered or removed) and returns its final status. While it
  // waits it reads the status every `poll_ms` and hands each reading to
  // `on_progress` (e.g. to draw a progress bar). kTimedOut after
  // `timeout_ms` (0: no limit); kCancelled when options().interrupted says so.
  Result<Fields> wait_complete(const std::string& session_id, Millis timeout_ms,
                               const std::function<void(const Fields&)>& on_progress = {},
                               Millis poll_ms = 250);
  Result<Fields> grid_status();
  Result<std::vector<Fields>> nodes();
  Result<std::vector<Fields>> sessions();
  Status close_session(const std::string& session_id, proto::CloseMode mode);
  // Stops new work to a node (undo: lets it have work again).
  Status drain_node(const std::string& node_id, bool undo);

  // Reads stored responses of a durable session from `cursor`: the 1-based
  // sequence number of a response in the session (0: the beginning).
  struct FetchPage {
    std::vector<proto::Response> responses;
    std::uint64_t next_cursor = 0;
    bool complete = false;  // no open client and every committed request answered
  };
  Result<FetchPage> fetch(const std::string& session_id, std::uint64_t cursor, std::uint64_t max,
                          Millis wait_ms);
  // fetch() for a caller that looks at each response once: `each` sees them
  // in order as views into the reply (valid during that call only), and no
  // Response is built. A malformed page calls `each` for none of them.
  struct FetchSummary {
    std::size_t count = 0;  // responses in the page
    std::uint64_t next_cursor = 0;
    bool complete = false;
  };
  Result<FetchSummary> fetch_each(const std::string& session_id, std::uint64_t cursor,
                                  std::uint64_t max, Millis wait_ms,
                                  const std::function<void(const proto::ResponseView&)>& each);

  // The stored requests of a durable session from request id `from_id`,
  // answered or not, in id order (whole journaled batches, about `max` per
  // page); requests of removed clients are gone. failed_precondition for an
  // interactive session (the head keeps no requests of those).
  struct StoredRequest {
    std::uint64_t request_id = 0;
    std::string user_data, payload;
    std::string fault_code;  // faulted_requests(): how it faulted
  };
  struct RequestsPage {
    std::vector<StoredRequest> requests;
    std::uint64_t next_id = 0;  // from_id of the next page
    bool end = false;           // nothing after these
  };
  Result<RequestsPage> stored_requests(const std::string& session_id, std::uint64_t from_id,
                                       std::uint64_t max = 16384);

  // Resubmit (docs/operations.md, "Resubmitting what faulted"): the faulted
  // requests of complete durable session `session_id` — those whose fault
  // code is in `codes`, or every faulted one when `codes` is empty — in id
  // order, each with `fault_code` set and `user_data` = its original request
  // id (decimal). failed_precondition while the session is not complete.
  Result<std::vector<StoredRequest>> faulted_requests(const std::string& session_id,
                                                      const std::vector<std::string>& codes = {});
  // Creates a durable session (`request`: service, timeouts...; an empty
  // service: the original's), sends faulted_requests(session_id, codes) to
  // it and commits: its info. The original session is unchanged. With
  // nothing to resubmit, not_found. For an interactive new session use
  // faulted_requests() with a BrokerClient, which receives the results.
  Result<proto::SessionInfo> resubmit(const std::string& session_id,
                                      const std::vector<std::string>& codes,
                                      proto::CreateSession request);

  const ClientOptions& options() const;
  // The head's instance id (changes when it restarts).
  const std::string& head_instance() const;
  // The head in use: one of options().head's, or the active head a standby
  // named; and the highest lease epoch seen (0: heads without a lease).
  const std::string& head_endpoint() const;
  std::uint64_t epoch() const;

  // Each head of options.head asked for its grid status directly (in
  // parallel, at most about 1 s in all; no connection needed): one row per
  // head with endpoint, role ("active", "standby", "single", or "no answer"),
  // epoch, instance, active (the active head it knows of) and error (why
  // there is no answer, when known).
  static std::vector<Fields> heads(const ClientOptions& options);

  // The client message named `message` (docs/protocol.md, "Message types")
  // with one string field, `arg` (an id), whose reply is `ok` — what a small
  // command's call is made of: one inline line in this class
  // (docs/architecture.md, "Adding a client command"). invalid_argument for
  // a name that is no such message of this library's protocol table.
  Status request_ok(std::string_view message, const std::string& arg);

  // zgrid's own tools and tests only: the transport under this connection
  // (declared in the library's private client/transport.hpp, not installed).
  Transport& transport() { return *t_; }

 private:
  explicit Connection(std::unique_ptr<Transport> t);
  std::unique_ptr<Transport> t_;  // owned; never null
};

struct BrokerOptions {
  std::size_t batch_items = 1024;     // requests per batch message
  std::size_t batch_bytes = 1 << 20;  // payload bytes per batch message
  std::size_t window = 16;            // batches sent and not yet acknowledged
  // Every batch send() sends is flushed (its requests may run once
  // journaled), as flush() would after it without its own round trip: what a
  // durable stream that wants work to start while it sends uses.
  bool flush_batches = false;
  // BrokerClient::submit: the head holds its reply up to this long for
  // every answer (a durable session's: committed) and sends them with it;
  // next_response() then returns them at once (docs/protocol.md,
  // "One-message sessions"). 0: the reply comes at once.
  Millis submit_wait_ms = 0;
};

class BrokerClient {
 public:
  // Opens (or re-attaches) client `client_id` in a session.
  static Result<std::unique_ptr<BrokerClient>> open(Connection& conn, const std::string& session_id,
                                                    const std::string& client_id,
                                                    const BrokerOptions& options = {});
  // A whole small session in one message (docs/protocol.md, "One-message
  // sessions"): creates the session `request` describes, sends `items` as
  // client `client_id`, commits them and seals the session. One round trip
  // and, for a durable session, one synced journal write, where the steps
  // one by one take six and five. At most options.batch_items requests and
  // options.batch_bytes bytes (else kInvalidArgument).
  // The client it returns is committed (send() is refused, end_requests()
  // does nothing): read an interactive session's responses with
  // next_response() (the session leaves the head once they are delivered);
  // a durable session keeps them for fetch by session_id() until purged.
  // Not resent when the head does not answer (kUnavailable), since a copy
  // would make a second session: sessions() lists it if it was made.
  struct Item {
    std::string_view payload, user_data;
  };
  static Result<std::unique_ptr<BrokerClient>> submit(Connection& conn,
                                                      const proto::CreateSession& request,
                                                      const std::string& client_id,
                                                      const std::vector<Item>& items,
                                                      const BrokerOptions& options = {});
  ~BrokerClient();
  BrokerClient(const BrokerClient&) = delete;
  BrokerClient& operator=(const BrokerClient&) = delete;

  // Queues one request; sends a batch when full. May wait for the send window
  // (acknowledgements): back-pressure from the head. Responses arriving
  // meanwhile are buffered.
  Status send(std::string_view payload, std::string_view user_data);
  // Sends the partial batch now, asking the head to make every request sent
  // so far eligible to run (durable sessions run nothing before a flush).
  Status flush();
  // Sends what is buffered without the flush flag (durable: acknowledged only).
  Status send_pending();
  // Waits until every request sent is acknowledged.
  Status wait_acked();
  // Flushes, waits for every acknowledgement, then EndRequests: committed.
  Status end_requests();
  // Waits up to `timeout_ms` for the next response (interactive sessions);
  // 0 reads what has arrived without waiting. Returns false when none came
  // in time. While it waits the connection pings the head after 1 s of
  // silence: kUnavailable once the head has said nothing for
  // ClientOptions::timeout_ms, counted by the connection across calls (so
  // waiting in short slices ends as one long wait would); kNotFound when the
  // head restarted without this (interactive) session.
  Result<bool> next_response(proto::Response* out, Millis timeout_ms);
  // A response already received, without waiting.
  bool poll_response(proto::Response* out);

  std::uint64_t sent() const;      // requests sent to the head (not counting the queued batch)
  std::uint64_t acked() const;     // highest sequence number the head acknowledged
  std::uint64_t received() const;  // responses received
  std::uint64_t rejected() const;  // requests refused (payload or user_data over the limit)
  const std::string& session_id() const;
  const std::string& client_id() const;

 private:
  friend class Transport;  // routes acknowledgements and responses to the state
  class State;             // the batches in flight and buffered responses: inside the library
  explicit BrokerClient(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;  // owned; never null
};

// ---- payloads and results of any service (raw bytes or msgpack) -------------
//
// A payload is raw bytes: BrokerClient::send takes any. To pack and unpack
// msgpack values, see <zgrid/client_msgpack.hpp>.

// True for valid UTF-8 without control characters other than tab, CR, LF.
bool is_text(std::string_view bytes);

// A result as one JSON value: text as a JSON string; else one msgpack value
// as JSON (bin as {"base64": ...}); else {"base64": "..."}.
std::string result_to_json(std::string_view bytes);

// One JSON document to msgpack (kInvalidArgument with the parser's reason).
Result<std::string> json_to_msgpack(std::string_view json);

// Appends `s` to `out` as a JSON string literal (quotes and escapes included).
void json_escape(std::string& out, std::string_view s);

// Reads the stored responses of a durable session in order, from the
// beginning or from a cursor, waiting for new ones until it is complete:
//
//   ResponseStream rs(conn, session_id);        // or (conn, id, cursor)
//   proto::Response r;
//   while (rs.next(&r, 60'000).value()) use(r);  // false: complete, all read
//
// cursor() is where the next response comes from: keep it to resume later.
// Threading and ownership as for BrokerClient.
class ResponseStream {
 public:
  ResponseStream(Connection& conn, std::string session_id, std::uint64_t cursor = 0)
      : conn_(conn), session_id_(std::move(session_id)), cursor_(cursor) {}
  // True with *out set; false once the session is complete and every response
  // was read; kTimedOut when none came within `wait_ms`.
  Result<bool> next(proto::Response* out, Millis wait_ms);
  std::uint64_t cursor() const { return cursor_; }

 private:
  Connection& conn_;
  std::string session_id_;
  std::uint64_t cursor_;
  std::deque<proto::Response> buffer_;
  bool complete_ = false;
};

// Prints a Status for a person: "zgrid: error: unknown session 7f3c…".
std::string describe(const Status& st);

}  // namespace zgrid::client

#endif  // ZGRID_CLIENT_HPP_
