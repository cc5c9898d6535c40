#include "common/zmq_util.hpp"

#include "common/protocol.hpp"

namespace zgrid::zmqu {

namespace {
void apply(zmq::socket_t& s, const SocketOptions& o) {
  s.set(zmq::sockopt::linger, o.linger_ms);
  s.set(zmq::sockopt::sndhwm, o.send_hwm);
  s.set(zmq::sockopt::rcvhwm, o.recv_hwm);
  s.set(zmq::sockopt::maxmsgsize,
        o.max_msg_size > 0 ? o.max_msg_size : static_cast<std::int64_t>(proto::kMaxMessageBytes));
}
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

Result<zmq::socket_t> connect_dealer(zmq::context_t& ctx, const std::string& endpoint,
                                     const SocketOptions& o) {
  try {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    apply(s, o);
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

}  // namespace zgrid::zmqu
