// Inside the client library: the DEALER socket under a Connection, its
// request/reply round trips, and the routing of pushed messages to
// BrokerClients. Private to zgrid (client.cpp, the CLI, tests, benchmarks);
// not installed: programs use <zgrid/client.hpp>.
//
//   Transport& t = conn->transport();
//   auto r = t.call(proto::begin(proto::kPing, t.next_corr(), 0).finish(), proto::kHelloOk,
//                   t.options().timeout_ms);
//
// Threading: one thread, that of its Connection. Ownership: the Connection
// owns its Transport; BrokerClients register themselves (add_client) and
// unregister when destroyed, so the map never holds a dangling pointer.
#pragma once

#include <zgrid/client.hpp>
#include <zmq.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/status.hpp"
#include "common/zmq_util.hpp"

namespace zgrid::client {

class Transport {
 public:
  explicit Transport(const ClientOptions& o);
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Connects and says Hello (learning the head's instance id).
  Status start();

  // A reply: the frame and its decoded envelope (views into the frame).
  struct Reply {
    zmq::message_t frame;
    Envelope env;
  };
  // A request/reply round trip. Messages for BrokerClients that arrive
  // meanwhile are routed to them. An Error reply becomes its Status.
  // `resend_after` > 0: the request is idempotent; resend it when no reply
  // came in that long (the head may have restarted and lost it).
  Result<std::unique_ptr<Reply>> call(zmq::message_t request, std::uint32_t expect_type,
                                      Millis timeout, Millis resend_after = 1000);
  // Asks the head for its instance id (changes when it restarts).
  Result<std::string> probe_instance();
  // Sends one message, waiting (bounded by the timeout) for a connection.
  // `within` >= 0: wait at most that long (and never past the timeout).
  Status send_raw(zmq::message_t& m, Millis within = -1);
  // Waits up to `timeout` for one incoming message and routes it; false if none came.
  Result<bool> pump(Millis timeout);
  // The head's liveness, for a caller that waits for messages the head
  // pushes (responses, acknowledgements) rather than for a reply: call it
  // after each pump that brought nothing. After 1 s without a word from the
  // head (half the timeout, if shorter) it pings, without waiting: the reply
  // comes through pump (and updates head_instance()), and a head that
  // restarted and lost the ping gets another each second. kUnavailable once
  // the head has said nothing for the connection's timeout while someone
  // waited. The clock is this connection's, not a call's: a caller that waits
  // in slices (Python waits 100 ms at a time) gets the same verdict, within
  // the same time, as one long wait; a caller back after more than 1 s away
  // gets the whole timeout again.
  Status keep_alive();
  // Sends a ping without waiting (false: no connection now); its hello_ok
  // comes through pump. With ids it counts as that client's activity (idle
  // timeout).
  bool ping(const std::string& session_id = {}, const std::string& client_id = {});
  std::uint64_t next_corr() { return ++corr_; }

  const ClientOptions& options() const { return o_; }
  // The head instance id last heard (hello, a probe, or keep_alive's pings).
  const std::string& head_instance() const { return instance_; }
  void set_head_instance(std::string instance) { instance_ = std::move(instance); }

  // Acks, responses and batch errors for (session, client) go to `bc`.
  void add_client(const std::string& session_id, const std::string& client_id, BrokerClient* bc);
  void remove_client(const std::string& session_id, const std::string& client_id);

 private:
  void route(std::unique_ptr<Reply> r);

  ClientOptions o_;
  zmq::context_t ctx_;
  zmq::socket_t sock_;
  zmqu::HandshakeMonitor monitor_;  // a refused key becomes a clear error
  std::string instance_;
  std::uint64_t corr_ = 0;
  std::uint64_t waiting_corr_ = 0;
  std::unique_ptr<Reply> reply_;  // the reply to waiting_corr_, once it arrived
  // Liveness (keep_alive): when the head last sent anything; since when a
  // caller has been waiting (pump or keep_alive, with no gap over 1 s), and
  // its latest wait; the latest ping sent.
  void note_waiting(Millis now);
  Millis last_heard_ = 0;
  Millis waiting_since_ = 0;
  Millis last_wait_ = 0;
  Millis last_ping_ = 0;
  std::map<std::pair<std::string, std::string>, BrokerClient*> clients_;  // not owned
};

}  // namespace zgrid::client
