"""zgrid.Executor: any Python function on the grid, the concurrent.futures contract.

    with zgrid.Executor() as ex:
        results = list(ex.map(simulate, params))

Functions travel with cloudpickle to the nodes' persistent Python workers
(service `python`, python/zgrid/_worker.py); docs/python.md, "Any Python
function: zgrid.Executor".
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import itertools
import threading
import time
import weakref
from typing import Any, Callable, Optional

from . import _calls, _zgrid
from ._base import RequestFault, _error, open_connection

# The protocol's limit on one request's payload (docs/protocol.md).
MAX_PAYLOAD = 1 << 20
# Calls in flight: WINDOW_PER_SLOT per python worker slot the grid's nodes
# offer, at least WINDOW_MIN (docs/python.md, "The in-flight window").
WINDOW_PER_SLOT = 2
WINDOW_MIN = 128
_WINDOW_REFRESH = 2.0  # seconds between looks at the grid's nodes while work waits
_FETCH_PAGE = 4096
# An idle executor tells the head it is there this often (seconds), so the
# head's client idle timeout (default 5 minutes) never removes it.
_KEEPALIVE = 60.0
# Nothing answered this long while calls are in flight: ask the head whether
# the client was removed (seconds).
_STALLED = 5.0

# Executors still running when the interpreter exits: shut down (waiting
# for their calls, as ProcessPoolExecutor does) before it finalizes, so no
# executor thread is inside the library then.
_live: "weakref.WeakSet" = weakref.WeakSet()


def _python_exit() -> None:
    for ex in list(_live):
        ex.shutdown(wait=True)


if hasattr(threading, "_register_atexit"):  # before non-daemon threads are joined
    threading._register_atexit(_python_exit)  # type: ignore[attr-defined]
else:  # pragma: no cover
    import atexit

    atexit.register(_python_exit)


def _slots(nodes: list) -> int:
    """The python worker slots of the grid: each node offering service
    `python` counts its workers."""
    total = 0
    for n in nodes:
        services = {s.split("@")[0] for s in str(n.get("services", "")).split(",")}
        if _calls.SERVICE in services and n.get("state", "ok") == "ok":
            total += int(n.get("workers", 0))
    return total


def _chunks(iterable, n: int):
    it = iter(iterable)
    while True:
        chunk = list(itertools.islice(it, n))
        if not chunk:
            return
        yield chunk


class Executor(cf.Executor):
    """A concurrent.futures.Executor that runs Python functions on the grid.

    submit(fn, /, *args, **kwargs) and map(fn, *iterables, timeout=None,
    chunksize=1) send the function (cloudpickle, once per function object)
    and its arguments to the nodes' Python workers (service `python`).
    result() returns the value, or raises the function's exception (same
    type, the remote traceback as its __cause__); zgrid.RequestFault for a
    request the grid faulted (the worker died past the retries, a module the
    node lacks, an oversized result). A call whose pickle is over 1 MiB is
    zgrid.InvalidRequest at submit.

    At most `window` requests are in flight (sent, not answered): by default
    2 per python worker slot of the grid's nodes, at least 128. The rest wait
    here: cancel() and shutdown(cancel_futures=True) cancel them.

    durable=True journals every call in a durable session (ex.session_id);
    ex.detach() leaves without waiting and returns that id, whose results
    grid.attach(id).results() yields tomorrow, from any process.

    The session's options, as grid.session() takes them (seconds; 0: the
    head's defaults): task_timeout, how long one call (one chunk of map) may
    run on a worker, past which that worker process is killed and replaced
    and the call run again, charged a try (past the head's --max-retries,
    zgrid.RequestFault code retry_limit_exceeded); deadline, counted from
    the executor's creation, past which the calls not started yet fault
    zgrid.RequestFault code timeout; client_idle_timeout, how long the head
    keeps the executor's calls once its process stops talking (it talks at
    least every third of it while it lives). stateful=True runs the calls
    one at a time, in submission order, on one Python worker process of
    their own kept for the session: what a call leaves in that process (the
    globals of a function, the same function object sent again) the next
    call finds. It must be deterministic: when a node is lost, the head
    replays the calls so far on a fresh worker, discarding their answers.

    One thread of its own owns the connection; submit may be called from any
    thread. `head`, `key`, `head_key`, `config`, `timeout` are as for
    zgrid.connect; with `grid`, its head. `max_workers` (and a positional
    int, as ProcessPoolExecutor(4) passes it) is accepted and ignored: the
    grid's workers decide."""

    def __init__(
        self,
        grid: Any = None,
        *,
        head: Optional[str] = None,
        key: Optional[str] = None,
        head_key: Optional[str] = None,
        config: Optional[str] = None,
        timeout: float = 10.0,
        durable: bool = False,
        task_timeout: float = 0,
        deadline: float = 0,
        client_idle_timeout: float = 0,
        stateful: bool = False,
        window: Optional[int] = None,
        max_workers: Optional[int] = None,
        mp_context: Any = None,
    ):
        if isinstance(grid, int) and not isinstance(grid, bool):
            max_workers, grid = grid, None
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if window is not None and window < 1:
            raise ValueError("window must be at least 1")
        if grid is not None:  # the same head, on a connection of the executor's thread
            head = grid.conn.head
        self._connect: Callable[[], Any] = lambda: open_connection(head, key, head_key, config, timeout)
        for name, value in (("task_timeout", task_timeout), ("deadline", deadline),
                            ("client_idle_timeout", client_idle_timeout)):
            if value < 0:
                raise ValueError(f"{name} must be 0 (the head's default) or more seconds")
        self._durable = durable
        self._stateful = bool(stateful)
        self._options = dict(task_timeout=task_timeout, deadline=deadline,
                             client_idle_timeout=client_idle_timeout)
        # An idle executor speaks at least this often (seconds): within its
        # client idle timeout, or the head removes it with its calls.
        self._keepalive = client_idle_timeout / 3 if client_idle_timeout > 0 else None
        self._fixed_window = window
        self.window = window or WINDOW_MIN
        self.session_id: Optional[str] = None
        self._blobs: dict = {}  # id(fn) -> (fn, its cloudpickle)
        self._backlog: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._sleeping = False  # the executor's thread waits on _wake
        self._lock = threading.Lock()
        self._shutdown = False
        self._detach = False
        self._cancel_queued = False
        self._error: Optional[BaseException] = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zgrid-executor", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        _live.add(self)

    def __repr__(self) -> str:
        kind = ("durable " if self._durable else "") + ("stateful " if self._stateful else "")
        return f"<zgrid.Executor {kind}session {self.session_id} window {self.window}>"

    # ---- submitting ----------------------------------------------------------------

    def _blob(self, fn: Any) -> bytes:
        entry = self._blobs.get(id(fn))
        if entry is not None and entry[0] is fn:
            return entry[1]
        if not callable(fn):
            raise TypeError(f"{type(fn).__name__!r} object is not callable")
        blob = _calls.dumps_function(fn)
        if len(self._blobs) >= 4096:
            self._blobs.clear()
        self._blobs[id(fn)] = (fn, blob)  # holding fn keeps its id from being reused
        return blob

    def _put(self, payload: bytes, count: int, what: str) -> cf.Future:
        if len(payload) > MAX_PAYLOAD:
            raise _error(
                _zgrid.InvalidRequest, "invalid_argument",
                f"{what} pickles to {len(payload)} bytes, over the {MAX_PAYLOAD}-byte payload limit "
                "of a request (send large data another way, e.g. a shared file system path)",
            )
        f: cf.Future = cf.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._error is not None:
                raise self._error
            self._backlog.append((payload, count, f))
        if self._sleeping:  # the thread looks at the backlog before it sleeps
            self._wake.set()
        return f

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        return self._put(_calls.call_payload(self._blob(fn), args, kwargs), 0, "the call")

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """As concurrent.futures: the iterables are read now, results come
        lazily in order; each chunk of `chunksize` calls is one request."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if timeout is not None:
            end_time = timeout + time.monotonic()
        blob = self._blob(fn)
        fs = [
            self._put(_calls.chunk_payload(blob, chunk), len(chunk), f"a chunk of {len(chunk)} calls")
            for chunk in _chunks(zip(*iterables), chunksize)
        ]

        def result_iterator():
            try:
                fs.reverse()
                while fs:
                    if timeout is None:
                        yield from fs.pop().result()
                    else:
                        yield from fs.pop().result(end_time - time.monotonic())
            finally:
                for f in fs:
                    f.cancel()

        return result_iterator()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                self._cancel_queued = True
                for _, _, f in self._queued():
                    f.cancel()
        self._wake.set()
        if wait:
            self._thread.join()

    def _queued(self) -> list:
        """A copy of the backlog, which the executor's thread may be taking from."""
        while True:
            try:
                return list(self._backlog)
            except RuntimeError:  # deque mutated during iteration: look again
                continue

    def detach(self) -> str:
        """A durable executor: commits every call submitted (they run on
        without this process), seals the session and returns its id; futures
        not done end with zgrid.Error naming the session. Read the results
        with zgrid.connect().attach(id).results(), from any process."""
        if not self._durable:
            raise _error(_zgrid.InvalidRequest, "invalid_argument",
                         "detach() needs a durable executor: zgrid.Executor(durable=True)")
        with self._lock:
            self._shutdown = True
            self._detach = True
        self._wake.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.session_id

    # ---- the executor's thread ----------------------------------------------------

    def _run(self) -> None:
        try:
            conn = self._connect()
            info = conn.create_session(_zgrid.SessionOptions(
                service=_calls.SERVICE, durable=self._durable, stateful=self._stateful, **self._options))
            self.session_id = info["session_id"]
            client = _zgrid.BrokerClient(conn, self.session_id, "executor", 1024)
            self._set_window(conn)
        except BaseException as e:  # reported by the constructor
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        inflight: dict = {}
        try:
            if self._durable:
                self._serve_durable(conn, client, inflight)
            else:
                self._serve(conn, client, inflight)
        except BaseException as e:
            self._fail(e, inflight)

    def _set_window(self, conn) -> None:
        if self._fixed_window is None:
            self.window = max(WINDOW_MIN, WINDOW_PER_SLOT * _slots(conn.nodes()))

    def _keepalive_every(self) -> float:
        if self._keepalive is None:
            return _KEEPALIVE
        return min(_KEEPALIVE, self._keepalive)

    def _take(self, inflight: dict, room: int) -> list:
        """Up to `room` calls from the backlog, marked running (cancelled
        ones are dropped): [(payload, count, future)]."""
        out = []
        backlog = self._backlog
        while backlog and len(out) < room:
            item = backlog.popleft()
            if item[2].set_running_or_notify_cancel():
                out.append(item)
        return out

    def _idle_wait(self) -> None:
        self._sleeping = True
        if not self._backlog and not self._shutdown:
            self._wake.wait(0.5)
        self._sleeping = False
        self._wake.clear()

    def _done_sending(self) -> bool:
        if self._cancel_queued:
            while self._backlog:
                self._backlog.popleft()[2].cancel()
        return self._shutdown and not self._backlog

    def _serve(self, conn, client, inflight: dict) -> None:
        """Interactive: requests tagged b"#<n>" (the n-th sent), answers
        streamed back. One exchange() per round: send what fits in the
        window, take every answer there is. The window is refilled once a
        quarter of it is free (or nothing is in flight), so a round carries
        several calls, not one."""
        sent = 0  # requests sent: the next one's tag is b"#<sent>"
        refreshed = last_word = last_answer = time.monotonic()
        settle = self._settle
        while True:
            room = self.window - len(inflight)
            payloads = []
            if self._backlog and (not inflight or room * 4 >= self.window):
                items = self._take(inflight, room)
                for i, (p, count, f) in enumerate(items, sent):
                    inflight[i] = (count, f)
                    payloads.append(p)
            if inflight:
                answers = client.exchange(payloads, sent, 0.05)
                for t in answers:
                    settle(inflight, t)
                sent += len(payloads)
                last_word = time.monotonic()
                if answers:
                    last_answer = last_word
                elif last_word - last_answer > _STALLED:
                    last_answer = last_word
                    self._check_stalled(conn)
                if self._backlog and time.monotonic() - refreshed > _WINDOW_REFRESH:
                    refreshed = time.monotonic()
                    self._set_window(conn)
            elif self._done_sending():
                break
            elif not self._backlog:
                self._idle_wait()
                if time.monotonic() - last_word > self._keepalive_every():
                    client.flush()  # a bare flush: the head counts the client as active
                    last_word = time.monotonic()
        client.end_requests()

    def _check_stalled(self, conn) -> None:
        """Nothing answered for a while: ask the head why. A client it removed
        (idle past its timeout, e.g. a laptop that slept) gets no answers,
        ever; a grid where no node offers service python never runs the
        calls. Both are errors, not waits."""
        st = conn.session_status(self.session_id)
        if st.get("clients_removed", 0) > 0:
            raise _error(
                _zgrid.Removed, "not_found",
                f"the head removed this executor's client of session {self.session_id} "
                f"({st.get('removals', '')}): its calls in flight will not be answered",
            )
        if st.get("unoffered", False):
            raise _error(
                _zgrid.InvalidRequest, "failed_precondition",
                f"{st.get('paused', 'no node offers service python')}: start nodes with "
                "`zgrid-node --python PYTHON` to run Python functions",
            )

    def _settle(self, inflight: dict, t: tuple) -> None:
        _, user_data, fault_code, data = t
        entry = inflight.pop(int(user_data[1:]), None)
        if entry is None:
            return
        count, f = entry
        self._finish(f, count, user_data, fault_code, data)

    @staticmethod
    def _finish(f: cf.Future, count: int, user_data: bytes, fault_code, data: bytes) -> None:
        if fault_code is not None:
            f.set_exception(RequestFault(fault_code, data.decode("utf-8", errors="replace"), None, user_data))
            return
        try:
            ok, value = _calls.outcome(data)
        except Exception as e:  # a result that does not unpickle here
            f.set_exception(e)
            return
        if ok:
            f.set_result(value)
        else:
            f.set_exception(value)

    # Durable: calls tagged b"#<first call>" / b"#<first call>:<count>" (what
    # attach() expands), results read from the journal with fetch.
    def _serve_durable(self, conn, client, inflight: dict) -> None:
        calls = 0
        cursor = 0
        committed = False
        last_word = time.monotonic()
        while True:
            room = self.window - len(inflight)
            if self._detach:
                room = len(self._backlog)
            if room > 0 and self._backlog:
                items = self._take(inflight, room)
                # Every taken call is in flight before any is sent: a send
                # that raises then fails them all (the executor's error
                # path fails what is in flight), none is left pending.
                tagged = []
                for payload, count, f in items:
                    tag = b"#%d:%d" % (calls, count) if count else b"#%d" % calls
                    inflight[tag] = (count, f)
                    tagged.append((payload, tag))
                    calls += max(1, count)
                for payload, tag in tagged:
                    client.send(payload, tag)
                if items:
                    client.flush()
                    last_word = time.monotonic()
            if not committed and time.monotonic() - last_word > self._keepalive_every():
                client.flush()  # a bare flush: the head's client idle timeout would remove the calls
                last_word = time.monotonic()
            if self._detach and not self._backlog:
                client.end_requests()
                conn.close_session(self.session_id, "seal")
                err = _error(
                    _zgrid.Error, "cancelled",
                    f"the executor detached from durable session {self.session_id}: its results are "
                    f"read with zgrid.connect().attach({self.session_id!r}).results()",
                )
                for _, f in inflight.values():
                    f.set_exception(err)
                return
            if not committed and self._done_sending() and not self._detach:
                client.end_requests()
                conn.close_session(self.session_id, "seal")
                committed = True
            if inflight:
                # Calls waiting for room: look again at once only when there
                # is room to send them; else wait for results (no busy loop).
                room = self.window - len(inflight)
                wait = 0.0 if (self._backlog and room > 0) else 0.05
                items, nxt, complete = self._fetch(conn, cursor, wait)
                cursor = nxt
                for _, user_data, fault_code, data in items:
                    entry = inflight.pop(user_data, None)
                    if entry is not None:
                        self._finish(entry[1], entry[0], user_data, fault_code, data)
            elif committed:
                return
            elif not self._backlog and not self._shutdown:
                self._idle_wait()

    def _fetch(self, conn, cursor: int, wait: float):
        """One page of stored results; a head restarting within the
        connection's timeout is asked again (as Results does)."""
        deadline = time.monotonic() + conn.timeout
        while True:
            try:
                return conn.fetch(self.session_id, cursor, _FETCH_PAGE, wait)
            except _zgrid.ConnectionError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def _fail(self, e: BaseException, inflight: dict) -> None:
        # Under the lock submit() checks and enqueues under: a submit either
        # sees the error or has enqueued before the drain: no future is left pending.
        with self._lock:
            self._error = e
            queued = list(self._backlog)
            self._backlog.clear()
        for _, f in inflight.values():
            if not f.done():
                f.set_exception(e)
        for _, _, f in queued:
            if f.set_running_or_notify_cancel():
                f.set_exception(e)
