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


serve({
    "echo": lambda p: p,
    "crash": lambda p: os._exit(3),
    "crash_once": crash_once,
    "hang": hang,
    "garbage": garbage,
    "env": lambda p: os.environ.get("ZGRID_TEST_ENV", "unset"),
    "pid": lambda p: str(os.getpid()),
    "slow_pid": slow_pid,
    "retry": retry,
}, default_operation="echo")
