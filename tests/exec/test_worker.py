#!/usr/bin/python3
"""Exec-bridge test worker: misbehaves on command (tests/plugin_test.cpp).

Operations (request bytes after the operation):
  echo         answers the request
  crash        exits at once (status 3)
  crash_once   request is a path: exits if the path does not exist (creating
               it first), answers "survived" otherwise
  hang         sleeps forever
  garbage      writes a frame that is not msgpack
  env          answers the value of $ZGRID_TEST_ENV
  pid          answers this worker's pid
  slow_pid     sleeps 50 ms, then answers its pid (concurrency tests)
  retry        faults `retryable`
  sum          stateful sessions only: the request is an integer; answers the
               sum of this process's session so far (a running sum)
  session_key  answers the key of this process's session ("" if none)
  do           one of the above chosen by the request (pipelining tests: one
               operation for a run): "echo:TEXT", "crash", "hang", "garbage",
               "pid", "sleep:MS" (then answers its pid)
  picky        "junk..." faults invalid_argument; "bad..." faults service_error
               unless $ZGRID_TEST_FIXED is set (then "fixed: " + request);
               anything else is echoed (resubmit tests)

Stateful sessions (registration `sessions = true`): ":session_start" starts
one (the payload is its key; a key starting with "refuse" is refused), and
":session_end" ends it; each appends "start KEY" / "end KEY" to the file
$ZGRID_TEST_SESSION_LOG when that is set.
"""
import os
import struct
import sys
import time

from zgrid.service import Fault, serve  # PYTHONPATH from the registration's env


def crash_once(p):
    path = p.decode()
    if not os.path.exists(path):
        open(path, "w").close()
        os._exit(3)
    return b"survived"


def garbage(p):
    sys.stdout.buffer.write(struct.pack(">I", 3) + b"\xc1\xc1\xc1")
    sys.stdout.buffer.flush()
    time.sleep(60)


def hang(p):
    time.sleep(3600)


def slow_pid(p):
    time.sleep(0.05)
    return str(os.getpid())


def retry(p):
    raise Fault("retryable", "asked")


# The one session of this process (the node starts a process per session).
session = {"key": None, "sum": 0}


def note(line):
    path = os.environ.get("ZGRID_TEST_SESSION_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def session_start(p):
    key = p.decode()
    if key.startswith("refuse"):
        raise Fault("service_error", "refused by the test worker")
    session["key"], session["sum"] = key, 0
    note("start " + key)
    return b""


def session_end(p):
    note("end " + p.decode())
    session["key"] = None
    return b""


def running_sum(p):
    if session["key"] is None:
        raise Fault("invalid_argument", "sum needs a stateful session")
    session["sum"] += int(p)  # ValueError: invalid_argument, the sum unchanged
    return str(session["sum"])


def picky(p):
    if p.startswith(b"junk"):
        raise Fault("invalid_argument", "junk input")
    if p.startswith(b"bad"):
        if not os.environ.get("ZGRID_TEST_FIXED"):
            raise Fault("service_error", "this version cannot take it")
        return b"fixed: " + p
    return p


def do(p):
    what, _, arg = p.partition(b":")
    if what == b"echo":
        return arg
    if what == b"sleep":
        time.sleep(int(arg) / 1000)
        return str(os.getpid())
    return {b"crash": lambda p: os._exit(3), b"hang": hang, b"garbage": garbage,
            b"pid": lambda p: str(os.getpid())}[what](arg)


serve({
    "do": do,
    "echo": lambda p: p,
    "crash": lambda p: os._exit(3),
    "crash_once": crash_once,
    "hang": hang,
    "garbage": garbage,
    "env": lambda p: os.environ.get("ZGRID_TEST_ENV", "unset"),
    "pid": lambda p: str(os.getpid()),
    "slow_pid": slow_pid,
    "retry": retry,
    "picky": picky,
    "sum": running_sum,
    "session_key": lambda p: session["key"] or "",
    ":session_start": session_start,
    ":session_end": session_end,
}, default_operation="echo")
