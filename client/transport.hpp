// Inside the client library: the DEALER socket under a Connection, its
// request/reply round trips, and the routing of pushed messages to
// BrokerClients. Private to zgrid (the library: connection.cpp,
// broker_client.cpp, resubmit.cpp; the CLI, tests, benchmarks);
// not installed: programs use <zgrid/client.hpp>.
//
//   Transport& t = conn->transport();
//   auto r = t.call(proto::begin(proto::kPing, t.next_corr(), 0).finish(), proto::kHelloOk,
//                   t.options().timeout_ms);
//
// Threading: one thread, that of its Connection. Ownership: the Connection
// owns its Transport; BrokerClients register themselves (add_client) and
// unregister when destroyed, so the map never holds a dangling pointer.
//
// Several heads (failover, docs/operations.md "Failover: clients"):
// ClientOptions::head may be a comma-separated list. The transport talks to
// one head at a time, the active one: at start it asks every listed head
// (hello, in parallel) and follows a standby's not_active answer to the head
// it names. While running, a head silent for kFailoverSilenceMs while a
// caller waits, or an answer not_active, makes it look again (as at start)
// and move its socket to the active head; the head instance id changes, so
// the restart logic above it (BrokerClient::State::resume, fetch cursors)
// carries on. The highest lease epoch seen is kept; a head reporting a lower
// one is never used.
#pragma once

#include <zgrid/client.hpp>
#include <zmq.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/codec.hpp"
#include "common/protocol.hpp"
#include "common/status.hpp"
#include "common/zmq_util.hpp"

namespace zgrid::client {

class Transport {
 public:
  explicit Transport(const ClientOptions& o);
  ~Transport() { zmqu::stop_monitor(sock_); }  // before the monitor goes (common/zmq_util.hpp)
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
  // With several heads, no connection for kFailoverSilenceMs (or refused)
  // looks for the active head and sends there, unless `may_fail_over` is
  // false (a send from inside pump: the socket must not change under it).
  Status send_raw(zmq::message_t& m, Millis within = -1, bool may_fail_over = true);
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
  // timeout). With several heads, keep_alive looks for the active head once
  // the one in use has been silent kFailoverSilenceMs (or answered
  // not_active), for at most the timeout counted from the silence's start:
  // kUnavailable naming every head tried and what each said.
  bool ping(const std::string& session_id = {}, const std::string& client_id = {});
  std::uint64_t next_corr() { return ++corr_; }

  const ClientOptions& options() const { return o_; }
  // The head instance id last heard (hello, a probe, or keep_alive's pings).
  const std::string& head_instance() const { return instance_; }
  void set_head_instance(std::string instance) { instance_ = std::move(instance); }

  // Failover. The heads listed (ClientOptions::head split at commas); the
  // one in use (possibly one a standby named, not in the list); the highest
  // lease epoch seen (0: heads without a lease).
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  const std::string& endpoint() const { return endpoint_; }
  std::uint64_t epoch() const { return epoch_; }
  // How often the socket moved to another head, and the latest move.
  std::uint64_t failovers() const { return failovers_; }
  // A standby answered what it answers itself (the grid status, role
  // "standby"): look for the active head (first the one it names) and move
  // there, as after a not_active answer.
  Status follow_standby(std::uint64_t epoch, const std::string& active_frontend);
  // `st` for a person: a not_found after a failover says that the head
  // failed over (interactive sessions live in one head only).
  Status explain(Status st) const;
  // Each listed head asked for its grid status directly (in parallel, at
  // most `wait` in all): role, epoch, instance, active; "no answer" for one
  // that did not answer. Needs no start().
  struct HeadReport {
    std::string endpoint;
    bool answered = false;
    proto::GridStatus status;
    std::string error;  // what it said instead of a status, or why it was not asked
  };
  std::vector<HeadReport> probe_heads(Millis wait);

  // A head silent this long while a caller waits is given up (with more than
  // one head to try); each head asked is given kProbeAnswerMs to answer one
  // hello, and asked again every kProbeRetryMs.
  static constexpr Millis kFailoverSilenceMs = 1750;
  static constexpr Millis kProbeAnswerMs = 1000;
  static constexpr Millis kProbeRetryMs = 250;

  // Acks, responses and batch errors for (session, client) go to `bc`.
  void add_client(const std::string& session_id, const std::string& client_id, BrokerClient* bc);
  void remove_client(const std::string& session_id, const std::string& client_id);

 private:
  void route(std::unique_ptr<Reply> r);
  // Defined with BrokerClient::State (broker_client.cpp): does `bc` wait for an
  // answer to batch `corr`; hand it a message.
  static bool has_batch(BrokerClient* bc, std::uint64_t corr);
  // The BrokerClient may keep the reply (responses are read as taken).
  static void deliver(BrokerClient* bc, std::unique_ptr<Reply>& r);

  bool several() const { return endpoints_.size() > 1; }
  zmqu::SocketOptions socket_options() const;
  // Asks every listed head (and any a standby names) until one answers
  // hello as the active head with an epoch >= epoch_, and moves the socket
  // there (keeping it when that is the head in use, same instance). Gives
  // up at `deadline` (at least one round of kProbeAnswerMs): kUnavailable
  // naming each head and what it said.
  // `since`: when the wait began, for the one line that says how long it
  // was (the caller's clock reading; -1: now).
  Status find_active(Millis deadline, Millis since = -1);
  // A standby's not_active answer: its epoch, and the active head it names
  // (asked first by the next find_active).
  void note_not_active(const proto::Error& e);

  ClientOptions o_;
  zmq::context_t ctx_;
  zmq::socket_t sock_;
  std::unique_ptr<zmqu::HandshakeMonitor> monitor_;  // a refused key becomes a clear error
  std::vector<std::string> endpoints_;
  std::string endpoint_;  // the head sock_ talks to
  std::uint64_t epoch_ = 0;
  bool need_failover_ = false;  // a not_active or a stale epoch came through pump
  std::string hint_;            // the active head a standby named
  std::uint64_t failovers_ = 0;
  std::string failed_over_to_;  // the latest failover's head and epoch
  std::uint64_t failed_over_epoch_ = 0;
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
