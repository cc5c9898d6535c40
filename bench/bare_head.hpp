// A bare head: the floor under the head's cost per request in
// BM_HeadDispatch (issue 31, figures 4 and 5) and under `zgrid submit`'s
// rate in cli_bench (figure 7), measured in the same run.
//
// It is the benchmark binary itself (run_benchmarks) started with a hidden
// first argument in place of
// zgrid-head (Grid::set_head_launcher), so it is a process of its own — its
// CPU, ZeroMQ's I/O thread included, is read from /proc/PID/stat exactly as
// the head's is — and it takes zgrid-head's command line (--endpoints-file,
// --frontend, --backend, --max-task-batch; the rest is ignored). It binds the
// same two ROUTERs with the same socket options and moves the same messages
// with the same encoders (common/protocol.hpp) and the same shapes: it
// answers the zgrid client's hello, status, create_session, open_client,
// send (an ack, held above the head's queue high-water mark), end_requests
// and close; it splits the queued requests into `tasks` messages of
// min(free credit, credit / 2 + 1, --max-task-batch) to the least-loaded
// node with free credit (as the head picks), turns every `results` item into a `responses` item
// (messages of up to 4,096, flushed once a round under the client's window
// of 65,536, acknowledged by its `resp_ack`), and answers `register` and
// `heartbeat` as the head does (the same interval, scaled for big grids; a
// heartbeat's credit, a real node's adaptive prefetch, adopted at once).
//
// What it leaves out is all of the head's logic: no session or client state
// beyond a routing id and a counter, no in-flight table (a task id is the
// request's index; the user data is a view into the kept `send` frame), no
// copies of payloads (views into the received frames), no retries, timers,
// liveness, journal, metrics or fairness between sessions. So its CPU per
// request is what the ZeroMQ I/O and the message encoding alone cost on this
// machine for the same traffic: a floor no head design goes below without
// fewer or bigger messages.
#pragma once

namespace zgrid::bench {

// The hidden first argument that makes a benchmark binary a bare head.
inline constexpr const char* kBareHeadFlag = "--zgrid-bare-head";

// Runs a bare head on zgrid-head's command line (argv[0] is ignored) until
// SIGTERM or SIGINT; returns the exit code (2: it could not bind).
int run_bare_head(int argc, char** argv);

}  // namespace zgrid::bench
