// The zgrid C++ client library.
//
//   auto conn = Connection::open({.head = "tcp://127.0.0.1:5555"});
//   auto info = (*conn)->create_session({.service = "factorize", .durable = false});
//   auto bc = BrokerClient::open(**conn, info->session_id, "my-client");
//   (*bc)->send("1827364510", "line 1");   // batched; flush() sends a partial batch
//   (*bc)->end_requests();                 // committed
//   proto::Response r; while ((*bc)->next_response(&r, 10'000).value()) ...
//
// Threading: a Connection and its BrokerClients belong to one thread (they
// share one DEALER socket). Use one Connection per thread.
// Ownership: a BrokerClient refers to its Connection, which must outlive it.
// Waits are bounded by ClientOptions::timeout_ms: a head that does not answer
// becomes an `unavailable` error, never a hang.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/clock.hpp"
#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/status.hpp"
#include "common/zmq_util.hpp"

namespace zgrid::client {

struct ClientOptions {
  std::string head = "tcp://127.0.0.1:5555";
  Millis timeout_ms = 10'000;  // the head must answer a request within this
  // CURVE (docs/security.md): the head's public key and this client's pair,
  // all Z85 (curve::read_public / read_secret). Empty: plain.
  std::string head_key, public_key, secret_key;
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

  const ClientOptions& options() const { return o_; }
  const std::string& head_instance() const { return instance_; }

  // Internal (used by BrokerClient): a request/reply round trip. Messages
  // for BrokerClients that arrive meanwhile are routed to them.
  struct Reply {
    zmq::message_t frame;
    Envelope env;
  };
  // `resend_after` > 0: the request is idempotent; resend it when no reply
  // came in that long (the head may have restarted and lost it).
  Result<std::unique_ptr<Reply>> call(zmq::message_t request, std::uint32_t expect_type,
                                      Millis timeout, Millis resend_after = 1000);
  // Asks the head for its instance id (changes when it restarts).
  Result<std::string> probe_instance();
  Status send_raw(zmq::message_t& m);
  // Waits up to `timeout` for one incoming message and routes it; false if none came.
  Result<bool> pump(Millis timeout);
  std::uint64_t next_corr() { return ++corr_; }

 private:
  friend class BrokerClient;
  explicit Connection(const ClientOptions& o);
  Status connect();
  void route(std::unique_ptr<Reply> r);
  Result<std::unique_ptr<Reply>> call_once(zmq::message_t request, std::uint32_t expect_type,
                                           Millis timeout, Millis resend_after);

  ClientOptions o_;
  zmq::context_t ctx_;
  zmq::socket_t sock_;
  zmqu::HandshakeMonitor monitor_;  // a refused key becomes a clear error
  std::string instance_;
  std::uint64_t corr_ = 0;
  std::uint64_t waiting_corr_ = 0;
  std::unique_ptr<Reply> reply_;  // the reply to waiting_corr_, once it arrived
  std::map<std::pair<std::string, std::string>, BrokerClient*> clients_;
};

struct BrokerOptions {
  std::size_t batch_items = 1024;     // requests per batch message
  std::size_t batch_bytes = 1 << 20;  // payload bytes per batch message
  std::size_t window = 16;            // batches sent and not yet acknowledged
};

class BrokerClient {
 public:
  // Opens (or re-attaches) client `client_id` in a session.
  static Result<std::unique_ptr<BrokerClient>> open(Connection& conn, const std::string& session_id,
                                                    const std::string& client_id,
                                                    const BrokerOptions& options = {});
  ~BrokerClient();

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
  // Waits up to `timeout_ms` for the next response (interactive sessions).
  // Returns false when none came in time.
  Result<bool> next_response(proto::Response* out, Millis timeout_ms);
  // A response already received, without waiting.
  bool poll_response(proto::Response* out);

  std::uint64_t sent() const { return next_seq_ - 1 - pending_.size(); }
  std::uint64_t acked() const { return acked_seq_; }
  std::uint64_t received() const { return received_; }
  std::uint64_t rejected() const { return rejected_; }
  const std::string& session_id() const { return session_id_; }
  const std::string& client_id() const { return client_id_; }

 private:
  friend class Connection;
  BrokerClient(Connection& c, std::string sid, std::string cid, const BrokerOptions& o);
  Status send_batch(bool flush);
  Status wait_window(std::size_t max_unacked);
  void on_message(Connection::Reply& r);
  // After a head restart: re-open this client (learning what the head has
  // acknowledged) and resend every batch past that.
  Status resume();

  struct SentBatch {
    std::uint64_t corr;
    std::uint64_t last_seq;
    zmq::message_t msg;  // a copy, for resending
  };

  Connection& conn_;
  std::string session_id_, client_id_;
  BrokerOptions o_;
  std::uint64_t next_seq_ = 1;  // sequence number of the next request queued
  std::uint64_t acked_seq_ = 0;
  std::vector<std::string> pending_;  // [user_data, payload, user_data, payload, ...]
  std::size_t pending_bytes_ = 0;
  std::deque<SentBatch> unacked_;  // batches sent and not acknowledged, in order
  std::string instance_;           // the head instance this client last spoke to
  std::deque<proto::Response> responses_;
  std::uint64_t received_ = 0;
  std::uint64_t rejected_ = 0;
  Status error_;              // a batch was refused: every later call fails with it
  bool need_resume_ = false;  // the head saw a sequence gap (it restarted): resend
};

// ---- payloads and results of any service (raw bytes or msgpack) -------------
//
// A payload is raw bytes: BrokerClient::send takes any. For msgpack-speaking
// services, send_packed() packs a value; unpack_msgpack() reads a result
// with decode limits (untrusted bytes never ask for gigabytes).

// Packs `value` (anything msgpack-cxx can pack) and sends it.
template <class T>
Status send_packed(BrokerClient& client, const T& value, std::string_view user_data) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, value);
  return client.send(std::string_view(buf.data(), buf.size()), user_data);
}

// Exactly one msgpack value (kInvalidArgument otherwise). The handle owns a copy.
Result<msgpack::object_handle> unpack_msgpack(std::string_view bytes);

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
