"""Issue 27: a dead head never hangs Python, a head back within the timeout
is carried on from, and a Grid used from a second thread is an exception,
never an abort. Real head and node processes (conftest.LocalGrid)."""

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import zgrid

TIMEOUT = 3.0  # the connection's timeout in these tests (seconds)
MARGIN = 3.0  # scheduling slack on a loaded machine


@pytest.fixture
def grid_env(grid_env):
    """conftest's grid; at the end its nodes get SIGKILL: a node stopped with
    SIGTERM runs the sleeps still queued on it first, which these tests leave
    behind by the hundred."""
    yield grid_env
    for p in grid_env.procs:
        if p is not grid_env.head_proc and p.poll() is None and "zgrid-node" in p.args[0]:
            p.send_signal(signal.SIGKILL)
            p.wait(10)


def finish_within(limit, fn):
    """Runs fn() on a thread of its own (which makes and owns its Grid) and
    returns ("value", v) or ("error", e); fails if it is still blocked after
    `limit` seconds (the thread is a daemon: a hang fails the test, not the run)."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"still blocked {limit} s later"
    return out


def kill_after(grid_env, delay, restart=False):
    """SIGKILLs the head `delay` seconds from now (and starts it again on the
    same ports and data dir); returns the thread and when the kill happened."""
    when = {}

    def run():
        time.sleep(delay)
        when["killed"] = time.monotonic()
        grid_env.kill_head()
        if restart:
            grid_env.start_head()
            when["restarted"] = time.monotonic()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, when


def test_executor_futures_end_with_connection_error_when_the_head_dies(grid_env):
    ex = zgrid.ServiceExecutor("sleep", head=grid_env.frontend, timeout=TIMEOUT)
    futures = [ex.submit("2000") for _ in range(200)]
    time.sleep(1.0)  # the requests are out, two of them running
    killed = time.monotonic()
    grid_env.kill_head()
    done, pending = cf.wait(futures, timeout=TIMEOUT + MARGIN)
    took = time.monotonic() - killed
    assert not pending, f"{len(pending)} of 200 futures still pending {took:.1f} s after the kill"
    for f in futures:
        assert isinstance(f.exception(), zgrid.ConnectionError), f.exception()
    assert "did not answer within" in str(futures[0].exception())
    ex.shutdown()


def test_map_ends_with_connection_error_when_the_head_dies(grid_env):
    when = {}

    def run():
        with zgrid.connect(grid_env.frontend, timeout=TIMEOUT) as g:
            _, killed = kill_after(grid_env, 1.0)
            when["kill"] = killed
            try:
                list(g.map("sleep", ["2000"] * 100))  # interactive, in one message
            finally:
                when["raised"] = time.monotonic()

    out = finish_within(1.0 + TIMEOUT + MARGIN + 2, run)
    assert isinstance(out.get("error"), zgrid.ConnectionError), out
    assert when["raised"] - when["kill"]["killed"] < TIMEOUT + MARGIN


def test_a_streamed_map_ends_with_connection_error_when_the_head_dies(grid_env):
    # Over 1,024 items: sent in batches by a client of a session (not one message).
    def run():
        with zgrid.connect(grid_env.frontend, timeout=TIMEOUT) as g:
            kill_after(grid_env, 1.0)
            return list(g.map("sleep", ["1000"] * 1500, batch=100))

    out = finish_within(1.0 + TIMEOUT + MARGIN + 2, run)
    assert isinstance(out.get("error"), zgrid.ConnectionError), out


def test_durable_results_end_with_connection_error_when_the_head_stays_dead(grid_env):
    with zgrid.connect(grid_env.frontend, timeout=TIMEOUT) as g:
        s = g.submit("sleep", ["2000"] * 20, durable=True)
        sid = s.id

    def run():
        with zgrid.connect(grid_env.frontend, timeout=TIMEOUT) as g:
            kill_after(grid_env, 1.0)
            return [r.index for r in g.attach(sid).results(timeout=600)]

    t0 = time.monotonic()
    out = finish_within(1.0 + TIMEOUT + MARGIN + 2, run)
    assert isinstance(out.get("error"), zgrid.ConnectionError), out
    assert time.monotonic() - t0 < 1.0 + TIMEOUT + MARGIN


def test_durable_map_and_results_carry_on_through_a_head_restart(grid_env):
    # Distinct sleeps (ms): each result is its own input, so every one is checked.
    payloads = [str(200 + i) for i in range(24)]

    def run():
        with zgrid.connect(grid_env.frontend, timeout=8.0) as g:
            t, _ = kill_after(grid_env, 1.0, restart=True)
            got = list(g.map("sleep", payloads, durable=True, decode="text"))
            t.join()
            return got

    out = finish_within(60, run)
    assert out.get("value") == payloads, out

    # The same through Session.results(), each result exactly once.
    def run_results():
        with zgrid.connect(grid_env.frontend, timeout=8.0) as g:
            s = g.session("sleep", durable=True)
            s.send_many(payloads)
            s.commit()
            t, _ = kill_after(grid_env, 1.0, restart=True)
            seen = [(r.index, r.value) for r in s.results(decode="text", timeout=60)]
            t.join()
            return seen, s.status()

    out = finish_within(60, run_results)
    assert "value" in out, out
    seen, st = out["value"]
    assert sorted(i for i, _ in seen) == list(range(len(payloads)))  # each exactly once
    assert all(v == payloads[i] for i, v in seen)
    assert (st.done, st.faulted, st.complete) == (len(payloads), 0, True)


def test_an_interactive_wait_says_the_session_went_with_a_restarted_head(grid_env):
    # The head comes back at once, without the interactive session: not a hang.
    def run():
        with zgrid.connect(grid_env.frontend, timeout=TIMEOUT) as g:
            t, _ = kill_after(grid_env, 1.0, restart=True)
            try:
                return list(g.map("sleep", ["2000"] * 40))
            finally:
                t.join()

    out = finish_within(1.0 + TIMEOUT + MARGIN + 5, run)
    e = out.get("error")
    assert isinstance(e, zgrid.UnknownSession), out
    assert "restarted" in str(e)


TWO_THREADS = r"""
import sys, threading, zgrid
g = zgrid.connect(sys.argv[1], timeout=10)
s = g.session("echo")
refused = []

def other():
    for i in range(100):
        for call in (g.status, lambda: list(g.map("echo", ["x"] * 10)), s.status,
                     lambda: s.send("y"), lambda: g.session("echo")):
            try:
                call()
            except zgrid.Error as e:
                refused.append(str(e))

t = threading.Thread(target=other, name="intruder")
t.start()
for i in range(100):
    want = [str(i * 10 + k) for k in range(10)]
    assert list(g.map("echo", want, decode="text")) == want
t.join()
assert len(refused) == 500, len(refused)
assert all("belongs to thread 'MainThread'" in m and "'intruder'" in m for m in refused), refused[0]
# The executor owns a connection of its own: any thread may submit to it.
with g.executor("echo", decode="text") as ex:
    got = []
    w = threading.Thread(target=lambda: got.append(ex.submit("from a thread").result(30)))
    w.start(); w.join()
    assert got == ["from a thread"] and ex.submit("main").result(30) == "main"
print(refused[0])
print("ok")
"""


def test_a_grid_used_from_a_second_thread_raises_never_aborts(grid_env):
    p = subprocess.run([sys.executable, "-c", TWO_THREADS, grid_env.frontend], capture_output=True,
                       text=True, timeout=60, env=os.environ.copy())
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.splitlines()[-1] == "ok"


class _SpyLock:
    """The executor's lock, noting when its own thread asks for it."""

    def __init__(self):
        self.inner = threading.Lock()
        self.executor_wants = threading.Event()

    def __enter__(self):
        if threading.current_thread().name == "zgrid-executor":
            self.executor_wants.set()
        self.inner.acquire()
        return self

    def __exit__(self, *exc):
        self.inner.release()


class _RacingQueue:
    """The executor's queue; a put() from a submit waits until the executor's
    thread has failed and drained the queue (the old race: the future put
    after the drain never ended) or until that thread waits for the lock the
    submit holds (the fix: the drain comes after the put)."""

    def __init__(self, inner, lock, ex):
        self.inner, self.lock, self.ex = inner, lock, ex
        self.drained = threading.Event()

    def get(self, *a, **kw):
        return self.inner.get(*a, **kw)

    def get_nowait(self):
        try:
            return self.inner.get_nowait()
        except Exception:
            if self.ex._error is not None and threading.current_thread().name == "zgrid-executor":
                self.drained.set()
            raise

    def put(self, item):
        deadline = time.monotonic() + 20
        while not (self.drained.is_set() or self.lock.executor_wants.is_set()):
            assert time.monotonic() < deadline, "the executor's thread never failed"
            time.sleep(0.005)
        self.inner.put(item)


def test_a_submit_racing_the_executor_failing_still_ends_with_connection_error(grid_env):
    # Issue 27 (review): the executor's thread set its error and drained the
    # queue without the lock submit() holds; a submit that had passed the
    # error check enqueued after the drain, and that future never ended.
    ex = zgrid.ServiceExecutor("sleep", head=grid_env.frontend, timeout=TIMEOUT)
    first = ex.submit("20000")  # out on the grid: the executor's thread reads responses
    wait_until_running = time.monotonic() + 10
    while not first.running():
        assert time.monotonic() < wait_until_running
        time.sleep(0.01)
    lock = _SpyLock()
    ex._lock = lock
    ex._queue = _RacingQueue(ex._queue, lock, ex)
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("f", ex.submit("1")), daemon=True)
    t.start()
    grid_env.kill_head()  # the executor's thread fails within the timeout
    t.join(TIMEOUT + MARGIN + 20)
    assert not t.is_alive(), "submit() never returned"
    assert isinstance(first.exception(timeout=TIMEOUT + MARGIN), zgrid.ConnectionError)
    late = got["f"]
    try:
        e = late.exception(timeout=TIMEOUT + MARGIN)
    except cf.TimeoutError:
        pytest.fail("a future submitted while the executor failed never ended")
    assert isinstance(e, zgrid.ConnectionError), e
    with pytest.raises(zgrid.ConnectionError):
        ex.submit("1")
    ex.shutdown()
