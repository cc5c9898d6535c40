#include "common/zmq_util.hpp"

#include "common/protocol.hpp"

#include <atomic>
#include <cstring>

namespace zgrid::zmqu {

namespace {
void apply(zmq::socket_t& s, const SocketOptions& o) {
  s.set(zmq::sockopt::linger, o.linger_ms);
  s.set(zmq::sockopt::sndhwm, o.send_hwm);
  s.set(zmq::sockopt::rcvhwm, o.recv_hwm);
  s.set(zmq::sockopt::maxmsgsize,
        o.max_msg_size > 0 ? o.max_msg_size : static_cast<std::int64_t>(proto::kMaxMessageBytes));
  if (o.handshake_ivl_ms >= 0) s.set(zmq::sockopt::handshake_ivl, o.handshake_ivl_ms);
  if (o.backlog >= 0) s.set(zmq::sockopt::backlog, o.backlog);
  if (o.curve_server) {
    s.set(zmq::sockopt::curve_server, 1);
    s.set(zmq::sockopt::curve_secretkey, o.curve_secret);
    s.set(zmq::sockopt::zap_domain, o.zap_domain);
  } else if (!o.curve_server_key.empty()) {
    s.set(zmq::sockopt::curve_serverkey, o.curve_server_key);
    s.set(zmq::sockopt::curve_publickey, o.curve_public);
    s.set(zmq::sockopt::curve_secretkey, o.curve_secret);
  }
}

std::atomic<std::uint64_t> g_monitor_seq{0};
}  // namespace

Result<zmq::socket_t> bind_router(zmq::context_t& ctx, const std::string& endpoint,
                                  std::string* bound, const SocketOptions& o) {
  try {
    zmq::socket_t s(ctx, zmq::socket_type::router);
    apply(s, o);
    s.set(zmq::sockopt::router_mandatory, 1);
    std::string ep = endpoint;
    // "tcp://host:0" is accepted as a synonym for libzmq's wildcard port "*".
    if (ep.size() > 2 && ep.compare(ep.size() - 2, 2, ":0") == 0) ep.replace(ep.size() - 1, 1, "*");
    s.bind(ep);
    if (bound) *bound = s.get(zmq::sockopt::last_endpoint);
    return s;
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind " + endpoint + ": " + e.what());
  }
}

void stop_monitor(zmq::socket_t& s) {
  if (s.handle() != nullptr) (void)zmq_socket_monitor(s.handle(), nullptr, 0);
}

Result<zmq::socket_t> connect_dealer(zmq::context_t& ctx, const std::string& endpoint,
                                     const SocketOptions& o, HandshakeMonitor* monitor) {
  try {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    apply(s, o);
    if (monitor) ZG_RETURN_IF_ERROR(monitor->watch(ctx, s, !o.curve_server_key.empty()));
    s.set(zmq::sockopt::immediate, 1);
    s.set(zmq::sockopt::reconnect_ivl, o.reconnect_ivl_ms);
    s.set(zmq::sockopt::reconnect_ivl_max, o.reconnect_ivl_max_ms);
    s.connect(endpoint);
    return s;
  } catch (const zmq::error_t& e) {
    return Status::InvalidArgument("cannot connect to " + endpoint + ": " + e.what());
  }
}

RecvStatus recv_message(zmq::socket_t& s, std::vector<zmq::message_t>* frames,
                        std::size_t max_frames) {
  frames->clear();
  try {
    bool too_many = false;
    while (true) {
      zmq::message_t m;
      auto r = s.recv(m, frames->empty() ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
      if (!r) return RecvStatus::kNone;  // only possible on the first frame
      bool more = m.more();
      if (frames->size() < max_frames)
        frames->push_back(std::move(m));
      else
        too_many = true;
      if (!more) break;
    }
    return too_many ? RecvStatus::kTooManyFrames : RecvStatus::kOk;
  } catch (const zmq::error_t&) {
    return RecvStatus::kError;
  }
}

SendStatus send_routed(zmq::socket_t& s, std::string_view rid, zmq::message_t& body) {
  try {
    zmq::message_t id(rid.data(), rid.size());
    auto r = s.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    if (!r) return SendStatus::kWouldBlock;
    // With ROUTER_MANDATORY the first frame decides routability; the body
    // then goes out on the same pipe.
    r = s.send(body, zmq::send_flags::dontwait);
    return r ? SendStatus::kOk : SendStatus::kWouldBlock;
  } catch (const zmq::error_t& e) {
    return e.num() == EHOSTUNREACH ? SendStatus::kUnreachable : SendStatus::kError;
  }
}

SendStatus send_one(zmq::socket_t& s, zmq::message_t& body) {
  try {
    auto r = s.send(body, zmq::send_flags::dontwait);
    return r ? SendStatus::kOk : SendStatus::kWouldBlock;
  } catch (const zmq::error_t& e) {
    return e.num() == EHOSTUNREACH ? SendStatus::kUnreachable : SendStatus::kError;
  }
}

bool is_non_loopback(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return false;  // ipc://, inproc:// stay local
  std::string host = endpoint.substr(6);
  auto colon = host.rfind(':');
  if (colon != std::string::npos) host = host.substr(0, colon);
  return !(host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host == "::1" ||
           host.rfind("127.", 0) == 0);
}

Status HandshakeMonitor::watch(zmq::context_t& ctx, zmq::socket_t& s, bool curve_client) {
  curve_client_ = curve_client;
  vague_in_a_row_ = 0;
  connected_ever_ = false;
  refused_in_a_row_ = 0;
  std::string ep = "inproc://zgrid-monitor-" + std::to_string(++g_monitor_seq);
  if (zmq_socket_monitor(s.handle(), ep.c_str(),
                         ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                             ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED) != 0)
    return Status::Internal(std::string("zmq_socket_monitor: ") + zmq_strerror(zmq_errno()));
  try {
    pair_ = zmq::socket_t(ctx, zmq::socket_type::pair);
    pair_.set(zmq::sockopt::linger, 0);
    pair_.connect(ep);
  } catch (const zmq::error_t& e) {
    return Status::Internal(std::string("monitor: ") + e.what());
  }
  return Status::OK();
}

Status HandshakeMonitor::check() {
  if (!pair_) return Status::OK();
  while (true) {
    zmq::message_t ev, addr;
    try {
      if (!pair_.recv(ev, zmq::recv_flags::dontwait)) break;
      if (ev.more()) (void)pair_.recv(addr, zmq::recv_flags::none);
    } catch (const zmq::error_t&) {
      break;
    }
    if (ev.size() < 6) continue;
    std::uint16_t event;
    std::uint32_t value;
    std::memcpy(&event, ev.data(), 2);
    std::memcpy(&value, static_cast<const char*>(ev.data()) + 2, 4);
    if (event == ZMQ_EVENT_CONNECTED) {
      connected_ever_ = true;
      continue;
    }
    if (event == ZMQ_EVENT_CONNECT_RETRIED) {  // the last connect failed (refused)
      ++refused_in_a_row_;
      continue;
    }
    bool mismatch = event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                    value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH;
    int rank = event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH       ? 4
               : mismatch                                     ? 3
               : event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? 2
                                                              : 1;
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      failure_ = Status::OK();
      rank_ = 0;
      vague_in_a_row_ = 0;
      continue;
    }
    if (rank <= 2 && ++vague_in_a_row_ >= kVagueFailuresForWrongKey) {
      rank_ = 3;
      std::string times = std::to_string(vague_in_a_row_) + " times: ";
      failure_ = Status(
          Code::kUnauthenticated,
          curve_client_
              ? "the head closed the CURVE handshake " + times +
                    "--head-key is most likely not this head's public key (the head logs its "
                    "public key at start: \"CURVE on: head public key ...\")"
              : "the head closed the handshake " + times +
                    "it most likely uses CURVE (give --head-key and --key; docs/security.md)");
      continue;
    }
    if (rank < rank_) continue;
    rank_ = rank;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
      failure_ = Status(Code::kUnauthenticated,
                        "the head refused this key (ZAP status " + std::to_string(value) +
                            "): ask its operator to add your .pub file to its authorized keys");
    else if (mismatch)
      failure_ = Status(Code::kUnauthenticated,
                        "security mismatch with the head: one side uses CURVE and the other "
                        "does not (see --head-key and --key)");
    else
      failure_ = Status(Code::kUnauthenticated,
                        "handshake with the head failed: it may use CURVE while this side does "
                        "not (or the other way round), or --head-key is not its key");
  }
  return failure_;
}

}  // namespace zgrid::zmqu
