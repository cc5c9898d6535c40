// ZeroMQ adapter: socket setup with the options of docs/protocol.md ("Socket options"), and
// multipart send/receive that never throw (this is the boundary where cppzmq's exceptions become
// values).
//
// Facts about Debian's libzmq 4.3.4 this relies on: no draft API (zmq::poll
// over pollitem_t only); ROUTER drops unroutable messages unless
// ZMQ_ROUTER_MANDATORY is set, and then a send to a full peer blocks unless
// sent dontwait; ZMQ_MAXMSGSIZE is checked per frame; default linger is
// infinite; default RECONNECT_IVL_MAX is 0 (no backoff).
//
// Thread safety: a socket belongs to one thread; these helpers only touch the
// socket they are given.
#pragma once

#include <zmq.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"

namespace zgrid::zmqu {

struct SocketOptions {
  int linger_ms = 200;
  int send_hwm = 100'000;
  int recv_hwm = 100'000;
  std::int64_t max_msg_size = 0;  // 0: proto::kMaxMessageBytes
  int reconnect_ivl_ms = 100;
  int backlog = -1;  // listening sockets: the accept queue (-1: libzmq's 100)
  int reconnect_ivl_max_ms = 5'000;
  // Connections whose ZeroMQ handshake takes longer are dropped (0: never;
  // -1: libzmq's default, 30 s).
  int handshake_ivl_ms = -1;
  // CURVE (docs/security.md). A server sets curve_server, its secret key and
  // the ZAP domain its ZAP handler checks keys against; a client sets the
  // server's public key and its own pair. Empty: plain (no encryption).
  bool curve_server = false;
  std::string curve_public, curve_secret;  // this socket's key pair (Z85)
  std::string curve_server_key;            // client: the server's public key (Z85)
  std::string zap_domain;
};

// Watches a connecting socket's handshakes (zmq_socket_monitor over an
// inproc PAIR), so that a refused key becomes a clear error instead of a
// silent timeout: with CURVE, a denied peer never completes a connection.
// Belongs to the thread that owns the watched socket.
class HandshakeMonitor {
 public:
  HandshakeMonitor() = default;
  // Starts watching `s` (call before connect). `ctx` must be the socket's
  // context; `curve_client`: the socket is a CURVE client (a head that keeps
  // closing its handshake then most likely holds another key pair).
  Status watch(zmq::context_t& ctx, zmq::socket_t& s, bool curve_client = false);
  // Reads pending events; returns the last handshake failure since the last
  // success as an error (kUnauthenticated), or OK.
  Status check();
  bool active() const { return static_cast<bool>(pair_); }
  // The failure is a refused key or a CURVE/plain mismatch: retrying will
  // not help (a vague failure may be a reset during a restart).
  bool decisive() const { return rank_ >= 3; }
  // The socket has never connected and its connects were refused twice (a
  // closed port, no socket file): nothing listens there. Read after check().
  bool refused() const { return !connected_ever_ && refused_in_a_row_ >= 2; }

  // A handshake the server closed this many times in a row, without one
  // success, is decisive: a CURVE client holds the wrong server key (the
  // server cannot open its HELLO and hangs up, which the client sees only as
  // a handshake that failed without detail); a plain client talks to a CURVE
  // server. A restart interrupts one handshake, not three.
  static constexpr int kVagueFailuresForWrongKey = 3;

 private:
  zmq::socket_t pair_;
  Status failure_;
  int rank_ = 0;  // how telling failure_ is: a vague failure does not hide a clear one
  bool curve_client_ = false;
  int vague_in_a_row_ = 0;
  bool connected_ever_ = false;
  int refused_in_a_row_ = 0;
};

// A ROUTER bound to `endpoint` (tcp://127.0.0.1:0 or :* picks a free port).
// *bound receives the actual endpoint (for ephemeral ports).
Result<zmq::socket_t> bind_router(zmq::context_t& ctx, const std::string& endpoint,
                                  std::string* bound, const SocketOptions& o = {});
class HandshakeMonitor;
// Stops a socket's handshake monitor (if any) before the socket closes:
// libzmq's I/O thread sends monitor events with a blocking send, and a
// socket closed mid-handshake right before its monitor's reader could block
// that thread (the one every socket of the context shares). Call it on a
// watched socket before closing or replacing it.
void stop_monitor(zmq::socket_t& s);
// A DEALER connected to `endpoint` with ZMQ_IMMEDIATE and reconnect backoff.
// `monitor`, if given, starts watching its handshakes before it connects.
Result<zmq::socket_t> connect_dealer(zmq::context_t& ctx, const std::string& endpoint,
                                     const SocketOptions& o = {},
                                     HandshakeMonitor* monitor = nullptr);

enum class RecvStatus { kNone, kOk, kTooManyFrames, kError };

// Receives one whole message without blocking. Frames past `max_frames` are
// read and discarded (the message is then reported kTooManyFrames), so a
// hostile peer can neither desynchronise the framing nor make us buffer
// thousands of frames.
RecvStatus recv_message(zmq::socket_t& s, std::vector<zmq::message_t>* frames,
                        std::size_t max_frames);

// The User-Id the ZAP handler gave the connection a frame came on (the
// peer's CURVE public key, Z85); empty when none (plain, or not admitted).
inline std::string user_id(const zmq::message_t& m) {
  const char* uid = zmq_msg_gets(m.handle(), "User-Id");
  return uid ? uid : "";
}

enum class SendStatus { kOk, kWouldBlock, kUnreachable, kError };

// Sends [routing id][body] on a ROUTER, dontwait. kUnreachable: the peer is
// gone (EHOSTUNREACH); kWouldBlock: its queue is full. On failure `body` is
// left intact so the caller can keep it for later.
SendStatus send_routed(zmq::socket_t& s, std::string_view rid, zmq::message_t& body);
// Sends one frame on a DEALER/PAIR/PUSH, dontwait.
SendStatus send_one(zmq::socket_t& s, zmq::message_t& body);

// True when `endpoint` binds/connects outside loopback (for the loud warning).
bool is_non_loopback(const std::string& endpoint);

}  // namespace zgrid::zmqu
