// zgrid._zgrid: the C++ client library (include/zgrid/client.hpp) for
// Python. One implementation of the protocol, resend and resume: this file
// only converts values and errors; the Pythonic API is python/zgrid/*.py.
// By area, each a bind_ function PYBIND11_MODULE calls: errors, payload
// helpers, SessionOptions (a new session's options, by name), Connection
// (opening; session calls; stored requests and resubmit; the grid's
// tables), BrokerClient (opening and submit; sending; receiving).
//
// Threading: a Connection and its BrokerClients belong to the Python thread
// that made them (as in C++); a call from any other thread raises zgrid.Error
// (PyConnection, below). Every call that may wait on the network releases
// the GIL; long waits are cut into slices of at most 100 ms so that
// a signal (Ctrl-C) raises KeyboardInterrupt within 200 ms.
// Errors: a Status that is not OK becomes an exception of the class its code
// maps to (zgrid._zgrid.Error and its subclasses); nothing crashes the
// interpreter.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <zgrid/client.hpp>

namespace py = pybind11;
using namespace zgrid;
using zgrid::client::BrokerClient;
using zgrid::client::Connection;

namespace {

// The exception classes, made at import (PyErr_NewException), by code.
struct Errors {
  PyObject* base = nullptr;        // zgrid.Error
  PyObject* connection = nullptr;  // unavailable, timed_out: no head within the timeout
  PyObject* permission = nullptr;  // permission_denied, unauthenticated
  PyObject* unknown = nullptr;     // not_found: unknown or purged session, client, node
  PyObject* removed = nullptr;     // not_found: removed by the idle timeout
  PyObject* exhausted = nullptr;   // resource_exhausted (quotas, full disk)
  PyObject* invalid = nullptr;     // invalid_argument, failed_precondition, protocol...
};
Errors g_errors;

[[noreturn]] void raise(const Status& st) {
  // Interrupted by a signal: its exception (KeyboardInterrupt) is already set.
  if (PyErr_Occurred() != nullptr) throw py::error_already_set();
  PyObject* cls = g_errors.base;
  const std::string& msg = st.message();
  switch (st.code()) {
    case Code::kUnavailable:
    case Code::kTimedOut:
      cls = g_errors.connection;
      break;
    case Code::kPermissionDenied:
    case Code::kUnauthenticated:
      cls = g_errors.permission;
      break;
    case Code::kNotFound:
      cls = msg.find("removed") != std::string::npos ? g_errors.removed : g_errors.unknown;
      break;
    case Code::kResourceExhausted:
      cls = g_errors.exhausted;
      break;
    case Code::kInvalidArgument:
    case Code::kFailedPrecondition:
    case Code::kOutOfSequence:
      cls = g_errors.invalid;
      break;
    default:
      break;
  }
  py::object exc = py::reinterpret_borrow<py::object>(cls)(msg);
  exc.attr("code") = std::string(code_name(st.code()));
  PyErr_SetObject(cls, exc.ptr());
  throw py::error_already_set();
}

void check(const Status& st) {
  if (!st.ok()) raise(st);
}

template <class T>
T value(Result<T>&& r) {
  if (!r.ok()) raise(r.status());
  return std::move(r).value();
}

// A signal arrived (Ctrl-C): raise it in Python. Called with the GIL held.
void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

py::object to_py(const client::Value& v) {
  return std::visit([](const auto& x) -> py::object { return py::cast(x); }, v);
}

py::dict to_dict(const client::Fields& f) {
  py::dict d;
  for (const auto& [k, v] : f.items) d[py::str(k)] = to_py(v);
  return d;
}

py::tuple response_tuple(const proto::Response& r) {
  return py::make_tuple(r.request_id, py::bytes(r.user_data),
                        r.fault_code.empty() ? py::object(py::none()) : py::str(r.fault_code),
                        py::bytes(r.data));
}

// Views into a list of bytes objects (the list must outlive them).
std::vector<std::string_view> bytes_views(const py::list& payloads) {
  std::vector<std::string_view> views;
  views.reserve(payloads.size());
  for (const auto& p : payloads) {
    if (!PyBytes_Check(p.ptr())) throw py::type_error("payloads must be bytes");
    char* data = nullptr;
    Py_ssize_t len = 0;
    PyBytes_AsStringAndSize(p.ptr(), &data, &len);
    views.emplace_back(data, static_cast<std::size_t>(len));
  }
  return views;
}

py::dict info_dict(const proto::SessionInfo& i) {
  py::dict d;
  d["session_id"] = i.session_id;
  d["service"] = i.service;
  d["durable"] = i.durable;
  d["stateful"] = i.stateful;
  d["state"] = std::string(proto::state_name(i.state));
  return d;
}

// A stored request: (request_id, payload, fault_code or None, user_data).
py::tuple stored_tuple(const Connection::StoredRequest& q) {
  return py::make_tuple(q.request_id, py::bytes(q.payload),
                        q.fault_code.empty() ? py::object(py::none()) : py::str(q.fault_code),
                        py::bytes(q.user_data));
}

proto::CloseMode close_mode(const std::string& m) {
  if (m == "seal") return proto::CloseMode::kSeal;
  if (m == "cancel") return proto::CloseMode::kCancel;
  if (m == "purge") return proto::CloseMode::kPurge;
  raise(Status::InvalidArgument("close mode must be seal, cancel or purge (got " + m + ")"));
}

constexpr Millis kSliceMs = 100;  // longest wait without looking for signals

// The Python thread running now, by name (for messages).
std::string thread_name() {
  return py::str(py::module_::import("threading").attr("current_thread")().attr("name"));
}

// A Connection and the thread that made it, its owner: the ZeroMQ socket
// under it (and under its BrokerClients) is not thread-safe, so every call
// from another thread is refused with zgrid.Error instead of letting two
// threads into the socket (an abort or a crash of the interpreter).
struct PyConnection {
  std::unique_ptr<Connection> c;  // never null once made
  std::thread::id owner = std::this_thread::get_id();
  std::string owner_name = thread_name();
  // BrokerClients whose Python object died in another thread: destroyed by
  // the owner on its next call (the GIL guards this list).
  std::vector<std::unique_ptr<BrokerClient>> graveyard;
};
// A BrokerClient belongs to the owner of its Connection (which it keeps
// alive: py::keep_alive).
struct PyBroker {
  PyBroker(std::unique_ptr<BrokerClient> b, PyConnection& conn) : b(std::move(b)), conn(&conn) {}
  PyBroker(const PyBroker&) = delete;
  PyBroker& operator=(const PyBroker&) = delete;
  ~PyBroker() {
    // The last reference dropped in another thread: the owner may be using
    // the connection right now, so the BrokerClient (registered in it) waits.
    if (b && std::this_thread::get_id() != conn->owner) conn->graveyard.push_back(std::move(b));
  }
  std::unique_ptr<BrokerClient> b;  // never null, but after a hand-over to the graveyard
  PyConnection* conn;               // not owned
};

void check_owner(std::thread::id owner, const std::string& owner_name) {
  if (std::this_thread::get_id() == owner) return;
  std::string msg = "this zgrid connection belongs to thread '" + owner_name +
                    "', which made it, and was used from thread '" + thread_name() +
                    "': a Grid and everything made from it (sessions, results, map, "
                    "attach) belong to the thread that made the Grid, because the ZeroMQ socket "
                    "under them is not thread-safe; call zgrid.connect() in each thread, or "
                    "submit from any thread to a zgrid.Executor";
  py::object exc = py::reinterpret_borrow<py::object>(g_errors.base)(msg);
  exc.attr("code") = std::string("failed_precondition");
  PyErr_SetObject(g_errors.base, exc.ptr());
  throw py::error_already_set();
}

Connection& use(PyConnection& pc) {
  check_owner(pc.owner, pc.owner_name);
  pc.graveyard.clear();
  return *pc.c;
}
BrokerClient& use(PyBroker& pb) {
  use(*pb.conn);
  return *pb.b;
}

// A session option in seconds, kept in milliseconds.
template <std::uint64_t proto::CreateSession::*Field>
void add_seconds(py::class_<proto::CreateSession>& c, const char* name) {
  c.def_property(
      name, [](const proto::CreateSession& o) { return static_cast<double>(o.*Field) / 1000; },
      [](proto::CreateSession& o, double s) { o.*Field = static_cast<std::uint64_t>(s * 1000); });
}

// ---- the binding, by area: each bind_ function adds one area's names to
// the module; PYBIND11_MODULE (at the end) calls them in order. A new
// Connection call goes in the bind_ function of its area; a new session
// option is one line in bind_session_options.

// The exception classes (zgrid.Error and its subclasses), into g_errors.
void bind_errors(py::module_& m) {
  auto make = [&m](const char* name, PyObject* base, const char* doc) {
    std::string full = std::string("zgrid.") + name;
    PyObject* cls = PyErr_NewExceptionWithDoc(full.c_str(), doc, base, nullptr);
    m.attr(name) = py::reinterpret_borrow<py::object>(cls);
    return cls;
  };
  g_errors.base = make("Error", PyExc_Exception, "A zgrid error; .code is its code name.");
  PyObject* conn_bases = PyTuple_Pack(2, g_errors.base, PyExc_ConnectionError);
  g_errors.connection = make("ConnectionError", conn_bases,
                             "No head answered within the timeout (unavailable, timed_out).");
  Py_DECREF(conn_bases);
  PyObject* perm_bases = PyTuple_Pack(2, g_errors.base, PyExc_PermissionError);
  g_errors.permission = make("PermissionError", perm_bases,
                             "The session belongs to another key, or the key is refused.");
  Py_DECREF(perm_bases);
  PyObject* key_bases = PyTuple_Pack(2, g_errors.base, PyExc_LookupError);
  g_errors.unknown =
      make("UnknownSession", key_bases, "Unknown or purged session, client or node.");
  Py_DECREF(key_bases);
  g_errors.removed =
      make("Removed", g_errors.unknown, "The client was removed with its requests (idle timeout).");
  g_errors.exhausted = make("ResourceExhausted", g_errors.base,
                            "A limit or quota was hit, or the journal's disk is full.");
  PyObject* val_bases = PyTuple_Pack(2, g_errors.base, PyExc_ValueError);
  g_errors.invalid = make("InvalidRequest", val_bases,
                          "The head refused the request as given (bad argument or wrong state).");
  Py_DECREF(val_bases);
}

// Payload helpers (no connection).
void bind_payloads(py::module_& m) {
  m.def(
      "json_to_msgpack",
      [](const std::string& json) { return py::bytes(value(client::json_to_msgpack(json))); },
      "One JSON document as msgpack bytes.");
  m.def(
      "result_to_json",
      [](const py::bytes& b) { return client::result_to_json(std::string_view(b)); },
      "A result as one JSON value (text, msgpack, or {\"base64\": ...}).");
}

// A new session's options (proto::CreateSession), set by name:
// SessionOptions(service="echo", durable=True, deadline=30). Times in
// seconds (0: the head's default). A new option is one line here.
void bind_session_options(py::module_& m) {
  using CS = proto::CreateSession;
  py::class_<CS> c(m, "SessionOptions");
  c.def(py::init([](const py::kwargs& kw) {
    CS o;
    py::object self = py::cast(&o, py::return_value_policy::reference);
    for (const auto& [name, v] : kw) {
      if (!py::hasattr(self, name))
        throw py::type_error("SessionOptions has no option " + py::str(name).cast<std::string>());
      py::setattr(self, name, v);
    }
    return o;
  }));
  c.def_readwrite("service", &CS::service);
  c.def_readwrite("durable", &CS::durable);
  c.def_readwrite("stateful", &CS::stateful);
  add_seconds<&CS::client_idle_timeout_ms>(c, "client_idle_timeout");
  add_seconds<&CS::task_timeout_ms>(c, "task_timeout");
  add_seconds<&CS::deadline_ms>(c, "deadline");
}

using PyConnectionClass = py::class_<PyConnection>;

// Sessions by id: create, attach, status, close, and a durable session's
// stored responses (fetch).
void bind_session_calls(PyConnectionClass& cls) {
  cls.def(
         "create_session",
         [](PyConnection& pc, const proto::CreateSession& options) {
           Connection& c = use(pc);
           Result<proto::SessionInfo> r = Status::Internal("");
           {
             py::gil_scoped_release nogil;
             r = c.create_session(options);
           }
           return info_dict(value(std::move(r)));
         },
         py::arg("options"))
      .def("attach",
           [](PyConnection& pc, const std::string& sid) {
             Connection& c = use(pc);
             Result<proto::SessionInfo> r = Status::Internal("");
             {
               py::gil_scoped_release nogil;
               r = c.attach(sid);
             }
             return info_dict(value(std::move(r)));
           })
      .def("session_status",
           [](PyConnection& pc, const std::string& sid) {
             Connection& c = use(pc);
             Result<client::Fields> r = Status::Internal("");
             {
               py::gil_scoped_release nogil;
               r = c.session_status(sid);
             }
             return to_dict(value(std::move(r)));
           })
      .def("close_session",
           [](PyConnection& pc, const std::string& sid, const std::string& mode) {
             Connection& c = use(pc);
             proto::CloseMode cm = close_mode(mode);
             Status st;
             {
               py::gil_scoped_release nogil;
               st = c.close_session(sid, cm);
             }
             check(st);
           })
      // One page of stored responses; waits up to `wait` seconds in slices.
      .def("fetch", [](PyConnection& pc, const std::string& sid, std::uint64_t cursor,
                       std::uint64_t max, double wait_s) {
        Connection& c = use(pc);
        Millis left = static_cast<Millis>(wait_s * 1000);
        while (true) {
          Millis slice = std::min(left, kSliceMs);
          Result<Connection::FetchPage> r = Status::Internal("");
          {
            py::gil_scoped_release nogil;
            r = c.fetch(sid, cursor, max, slice);
          }
          Connection::FetchPage page = value(std::move(r));
          left -= slice;
          if (!page.responses.empty() || page.complete || left <= 0) {
            py::list items;
            for (const auto& resp : page.responses) items.append(response_tuple(resp));
            return py::make_tuple(items, page.next_cursor, page.complete);
          }
          check_signals();
        }
      });
}

// A durable session's stored requests, and resubmitting its faulted ones
// (client/resubmit.cpp).
void bind_resubmit_calls(PyConnectionClass& cls) {
  // One page of a durable session's stored requests from id `from_id`:
  // (requests, next_id, end).
  cls.def(
         "stored_requests",
         [](PyConnection& pc, const std::string& sid, std::uint64_t from_id, std::uint64_t max) {
           Connection& c = use(pc);
           Result<Connection::RequestsPage> r = Status::Internal("");
           {
             py::gil_scoped_release nogil;
             r = c.stored_requests(sid, from_id, max);
           }
           Connection::RequestsPage page = value(std::move(r));
           py::list items;
           for (const auto& q : page.requests) items.append(stored_tuple(q));
           return py::make_tuple(items, page.next_id, page.end);
         },
         py::arg("session_id"), py::arg("from_id"), py::arg("max") = 16384)
      // The faulted requests of a complete durable session (every one when
      // `codes` is empty), in id order; user_data is the original id.
      .def(
          "faulted_requests",
          [](PyConnection& pc, const std::string& sid, const std::vector<std::string>& codes) {
            Connection& c = use(pc);
            Result<std::vector<Connection::StoredRequest>> r = Status::Internal("");
            {
              py::gil_scoped_release nogil;
              r = c.faulted_requests(sid, codes);
            }
            py::list out;
            for (const auto& q : value(std::move(r))) out.append(stored_tuple(q));
            return out;
          },
          py::arg("session_id"), py::arg("codes"))
      // A new durable session of those requests, committed: its info.
      // `options`: durable=True, and an empty service for the original's.
      // not_found when nothing matches.
      .def(
          "resubmit",
          [](PyConnection& pc, const std::string& sid, const std::vector<std::string>& codes,
             const proto::CreateSession& options) {
            Connection& c = use(pc);
            Result<proto::SessionInfo> r = Status::Internal("");
            {
              py::gil_scoped_release nogil;
              r = c.resubmit(sid, codes, options);
            }
            return info_dict(value(std::move(r)));
          },
          py::arg("session_id"), py::arg("codes"), py::arg("options"));
}

// The grid as a whole: its status, nodes and sessions; with several heads,
// each head asked directly.
void bind_grid_calls(PyConnectionClass& cls) {
  cls.def("grid_status",
          [](PyConnection& pc) {
            Connection& c = use(pc);
            Result<client::Fields> r = Status::Internal("");
            {
              py::gil_scoped_release nogil;
              r = c.grid_status();
            }
            return to_dict(value(std::move(r)));
          })
      .def("nodes",
           [](PyConnection& pc) {
             Connection& c = use(pc);
             Result<std::vector<client::Fields>> r = Status::Internal("");
             {
               py::gil_scoped_release nogil;
               r = c.nodes();
             }
             py::list out;
             for (const auto& f : value(std::move(r))) out.append(to_dict(f));
             return out;
           })
      .def("sessions", [](PyConnection& pc) {
        Connection& c = use(pc);
        Result<std::vector<client::Fields>> r = Status::Internal("");
        {
          py::gil_scoped_release nogil;
          r = c.sessions();
        }
        py::list out;
        for (const auto& f : value(std::move(r))) out.append(to_dict(f));
        return out;
      });
}

// zgrid._zgrid.Connection: opening one (it belongs to the calling thread),
// what it was opened with, the head in use; then its calls, by area.
void bind_connection(py::module_& m) {
  PyConnectionClass cls(m, "Connection");
  cls.def(py::init([](const std::string& head, double timeout_s, const std::string& head_key,
                      const std::string& public_key, const std::string& secret_key) {
            client::ClientOptions o;
            o.head = head;
            o.timeout_ms = static_cast<Millis>(timeout_s * 1000);
            o.head_key = head_key;
            o.public_key = public_key;
            o.secret_key = secret_key;
            // Ctrl-C while the library waits: a signal's exception is set
            // here (GIL held) and the call returns kCancelled.
            o.interrupted = [] {
              py::gil_scoped_acquire gil;
              return PyErr_CheckSignals() != 0;
            };
            auto pc = std::make_unique<PyConnection>();  // owned by this thread
            Result<std::unique_ptr<Connection>> c = Status::Internal("not opened");
            {
              py::gil_scoped_release nogil;
              c = Connection::open(o);
            }
            pc->c = value(std::move(c));
            return pc;
          }),
          py::arg("head"), py::arg("timeout"), py::arg("head_key") = "", py::arg("public_key") = "",
          py::arg("secret_key") = "")
      .def_property_readonly("head_instance",
                             [](PyConnection& pc) { return use(pc).head_instance(); })
      // Failover: the head in use, the highest epoch seen, and every head
      // asked directly (Connection::heads).
      .def_property_readonly("head_endpoint",
                             [](PyConnection& pc) { return use(pc).head_endpoint(); })
      .def_property_readonly("epoch", [](PyConnection& pc) { return use(pc).epoch(); })
      .def("heads",
           [](PyConnection& pc) {
             client::ClientOptions o = use(pc).options();
             o.interrupted = nullptr;  // bounded (about 1 s): no GIL needed
             std::vector<client::Fields> rows;
             {
               py::gil_scoped_release nogil;
               rows = Connection::heads(o);
             }
             py::list out;
             for (const auto& f : rows) out.append(to_dict(f));
             return out;
           })
      // What it was opened with (fixed: any thread may read them).
      .def_property_readonly("head", [](PyConnection& pc) { return pc.c->options().head; })
      .def_property_readonly("timeout",
                             [](PyConnection& pc) { return pc.c->options().timeout_ms / 1000.0; });
  bind_session_calls(cls);
  bind_resubmit_calls(cls);
  bind_grid_calls(cls);
}

using PyBrokerClass = py::class_<PyBroker>;

// Sending: requests queued and sent in batches, flush, commit.
void bind_broker_sending(PyBrokerClass& cls) {
  cls.def("send",
          [](PyBroker& pb, const py::bytes& payload, const py::bytes& user_data) {
            BrokerClient& b = use(pb);
            std::string_view p = payload, u = user_data;
            Status st;
            {
              py::gil_scoped_release nogil;
              st = b.send(p, u);
            }
            check(st);
          })
      // Sends many requests in one call (one GIL release): payloads[i] gets
      // user data "#<first_index + i>", the index map() and results() report.
      .def("send_indexed",
           [](PyBroker& pb, const py::list& payloads, std::uint64_t first_index) {
             BrokerClient& b = use(pb);
             std::vector<std::string_view> views = bytes_views(payloads);
             Status st;
             {
               py::gil_scoped_release nogil;
               std::string tag;
               for (std::size_t i = 0; i < views.size() && st.ok(); ++i) {
                 tag.assign(1, '#').append(std::to_string(first_index + i));
                 st = b.send(views[i], tag);
               }
             }
             check(st);
           })
      .def("flush",
           [](PyBroker& pb) {
             BrokerClient& b = use(pb);
             Status st;
             {
               py::gil_scoped_release nogil;
               st = b.flush();
             }
             check(st);
           })
      .def("wait_acked",
           [](PyBroker& pb) {
             BrokerClient& b = use(pb);
             Status st;
             {
               py::gil_scoped_release nogil;
               st = b.wait_acked();
             }
             check(st);
           })
      .def("end_requests", [](PyBroker& pb) {
        BrokerClient& b = use(pb);
        Status st;
        {
          py::gil_scoped_release nogil;
          st = b.end_requests();
        }
        check(st);
      });
}

// Receiving an interactive session's responses: waiting (in slices, for
// Ctrl-C) or not.
void bind_broker_receiving(PyBrokerClass& cls) {
  // Every response already received (up to `max`), without waiting.
  cls.def(
         "poll_responses",
         [](PyBroker& pb, std::size_t max) {
           BrokerClient& b = use(pb);
           py::list out;
           proto::Response r;
           for (std::size_t i = 0; i < max && b.poll_response(&r); ++i)
             out.append(response_tuple(r));
           return out;
         },
         py::arg("max") = 65536)
      // The next response, or None after `timeout` seconds.
      .def("next_response",
           [](PyBroker& pb, double timeout_s) -> py::object {
             BrokerClient& b = use(pb);
             Millis left = static_cast<Millis>(timeout_s * 1000);
             proto::Response r;
             while (true) {
               Millis slice = std::min(left, kSliceMs);
               Result<bool> got = Status::Internal("");
               {
                 py::gil_scoped_release nogil;
                 got = b.next_response(&r, slice);
               }
               if (value(std::move(got))) return response_tuple(r);
               left -= slice;
               if (left <= 0) return py::none();
               check_signals();
             }
           })
      // One round of a loop that keeps requests in flight (zgrid.Executor),
      // in one GIL release: sends `payloads` (user data "#<first_index + i>")
      // and flushes them, then waits up to `timeout` seconds for a response
      // and takes every one received (up to `max`). A thread that shares the
      // GIL with busy Python threads gets it back once per round, not once
      // per library call.
      .def(
          "exchange",
          [](PyBroker& pb, const py::list& payloads, std::uint64_t first_index, double timeout_s,
             std::size_t max) {
            BrokerClient& b = use(pb);
            std::vector<std::string_view> views = bytes_views(payloads);
            std::vector<proto::Response> got;
            Millis left = static_cast<Millis>(timeout_s * 1000);
            Status st;
            bool sent = false;
            while (true) {
              Millis slice = std::min(left, kSliceMs);
              {
                py::gil_scoped_release nogil;
                if (!sent) {
                  std::string tag;
                  for (std::size_t i = 0; i < views.size() && st.ok(); ++i) {
                    tag.assign(1, '#').append(std::to_string(first_index + i));
                    st = b.send(views[i], tag);
                  }
                  if (st.ok() && !views.empty()) st = b.flush();
                  sent = true;
                }
                proto::Response r;
                if (st.ok()) {
                  Result<bool> one = b.next_response(&r, slice);
                  if (!one.ok()) {
                    st = one.status();
                  } else if (one.value()) {
                    got.push_back(std::move(r));
                    while (got.size() < max && b.poll_response(&r)) got.push_back(std::move(r));
                  }
                }
              }
              check(st);
              left -= slice;
              if (!got.empty() || left <= 0) break;
              check_signals();
            }
            py::list out;
            for (const auto& r : got) out.append(response_tuple(r));
            return out;
          },
          py::arg("payloads"), py::arg("first_index"), py::arg("timeout"), py::arg("max") = 65536)
      .def("poll_response", [](PyBroker& pb) -> py::object {
        BrokerClient& b = use(pb);
        proto::Response r;
        if (!b.poll_response(&r)) return py::none();
        return response_tuple(r);
      });
}

// zgrid._zgrid.BrokerClient: one client of a session, opened or made by a
// one-message submit; it keeps its Connection alive and belongs to the
// Connection's thread.
void bind_broker_client(py::module_& m) {
  PyBrokerClass cls(m, "BrokerClient");
  cls.def(py::init([](PyConnection& pc, const std::string& sid, const std::string& cid,
                      std::size_t batch, std::size_t window) {
            Connection& c = use(pc);
            client::BrokerOptions o;
            o.batch_items = std::max<std::size_t>(1, batch);
            o.window = std::max<std::size_t>(1, window);
            Result<std::unique_ptr<BrokerClient>> r = Status::Internal("");
            {
              py::gil_scoped_release nogil;
              r = BrokerClient::open(c, sid, cid, o);
            }
            return std::make_unique<PyBroker>(value(std::move(r)), pc);
          }),
          py::arg("connection"), py::arg("session_id"), py::arg("client_id"),
          py::arg("batch") = 1024, py::arg("window") = 16, py::keep_alive<1, 2>())
      // A whole session in one message (BrokerClient::submit): payloads[i]
      // gets user data "#i". The client it returns is committed, reads an
      // interactive session's responses, and keeps the connection alive.
      // wait_ms > 0: the reply waits that long for the answers and brings
      // them (BrokerOptions::submit_wait_ms).
      .def_static(
          "submit",
          [](PyConnection& pc, const proto::CreateSession& options, const std::string& cid,
             const py::list& payloads, Millis wait_ms) {
            Connection& c = use(pc);
            std::vector<std::string_view> views = bytes_views(payloads);
            std::vector<std::string> tags;
            std::vector<BrokerClient::Item> items;
            tags.reserve(views.size());
            for (std::size_t i = 0; i < views.size(); ++i)
              tags.push_back(std::string(1, '#').append(std::to_string(i)));
            for (std::size_t i = 0; i < views.size(); ++i) items.push_back({views[i], tags[i]});
            client::BrokerOptions o;
            o.batch_items = std::max<std::size_t>(o.batch_items, items.size());
            o.submit_wait_ms = wait_ms;  // the reply may carry the answers
            Result<std::unique_ptr<BrokerClient>> r = Status::Internal("");
            {
              py::gil_scoped_release nogil;
              r = BrokerClient::submit(c, options, cid, items, o);
            }
            return std::make_unique<PyBroker>(value(std::move(r)), pc);
          },
          py::arg("connection"), py::arg("options"), py::arg("client_id"), py::arg("payloads"),
          py::arg("wait_ms") = 0, py::keep_alive<0, 1>())
      .def_property_readonly("sent", [](PyBroker& pb) { return use(pb).sent(); })
      .def_property_readonly("received", [](PyBroker& pb) { return use(pb).received(); })
      .def_property_readonly("rejected", [](PyBroker& pb) { return use(pb).rejected(); })
      // Fixed once made: any thread may read them.
      .def_property_readonly("session_id", [](PyBroker& pb) { return pb.b->session_id(); })
      .def_property_readonly("client_id", [](PyBroker& pb) { return pb.b->client_id(); });
  bind_broker_sending(cls);
  bind_broker_receiving(cls);
}

}  // namespace

PYBIND11_MODULE(_zgrid, m) {
  m.doc() = "zgrid's C++ client library (use the zgrid package, not this module)";
  bind_errors(m);
  bind_payloads(m);
  bind_session_options(m);
  bind_connection(m);
  bind_broker_client(m);
}
