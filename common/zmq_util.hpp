// ZeroMQ adapter: socket setup with the options of DESIGN §4, and multipart
// send/receive that never throw (this is the boundary where cppzmq's
// exceptions become values).
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
  int reconnect_ivl_max_ms = 5'000;
};

// A ROUTER bound to `endpoint` (tcp://127.0.0.1:0 or :* picks a free port).
// *bound receives the actual endpoint (for ephemeral ports).
Result<zmq::socket_t> bind_router(zmq::context_t& ctx, const std::string& endpoint,
                                  std::string* bound, const SocketOptions& o = {});
// A DEALER connected to `endpoint` with ZMQ_IMMEDIATE and reconnect backoff.
Result<zmq::socket_t> connect_dealer(zmq::context_t& ctx, const std::string& endpoint,
                                     const SocketOptions& o = {});

enum class RecvStatus { kNone, kOk, kTooManyFrames, kError };

// Receives one whole message without blocking. Frames past `max_frames` are
// read and discarded (the message is then reported kTooManyFrames), so a
// hostile peer can neither desynchronise the framing nor make us buffer
// thousands of frames.
RecvStatus recv_message(zmq::socket_t& s, std::vector<zmq::message_t>* frames,
                        std::size_t max_frames);

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
