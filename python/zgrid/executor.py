"""zgrid.ServiceExecutor: one service's requests as concurrent.futures.

Not the concurrent.futures.Executor contract (its submit takes a service's
payload, not a function): zgrid.Executor is that, for Python functions."""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
from typing import Any, Callable, Optional

from . import _zgrid
from ._base import RequestFault, _decode, _encode, open_connection

_STOP = object()


class ServiceExecutor:
    """Futures of one service's requests on the grid (grid.executor(service)):

        with grid.executor("factorize", decode="text") as ex:
            futures = [ex.submit(str(n)) for n in numbers]
            for f in cf.as_completed(futures):
                print(f.result())

    submit(payload) returns a Future that completes with the result, or with
    RequestFault when the request faults (only that future). One thread of
    its own owns the connection (a connection belongs to one thread); submit
    may be called from any thread. `head`, `key`, `head_key`, `config`,
    `timeout` are as for zgrid.connect; with `grid`, its head is used."""

    def __init__(
        self,
        service: str,
        grid=None,
        *,
        head: Optional[str] = None,
        key: Optional[str] = None,
        head_key: Optional[str] = None,
        config: Optional[str] = None,
        timeout: float = 10.0,
        decode: Optional[str] = None,
        batch: int = 1024,
    ):
        self._service = service
        self._decode = decode
        self._batch = batch
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()
        self._shutdown = False
        self._lock = threading.Lock()
        self._error: Optional[BaseException] = None
        self._connect: Callable[[], Any] = lambda: open_connection(head, key, head_key, config, timeout)
        if grid is not None:  # the same head, on a connection of the executor's thread
            head_ep = grid.conn.head
            self._connect = lambda: open_connection(head_ep, key, head_key, config, timeout)
        self.session_id: Optional[str] = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zgrid-executor", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> "ServiceExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown(wait=True)

    def submit(self, payload: Any) -> cf.Future:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            if self._error is not None:
                raise self._error
            f: cf.Future = cf.Future()
            self._queue.put((_encode(payload), f))
            return f

    def map(self, items, timeout=None):
        """The results of every item, in order (each waited for up to `timeout` s)."""
        futures = [self.submit(x) for x in items]

        def results():
            for f in futures:
                yield f.result(timeout)

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._shutdown:
                already = True
            else:
                already = False
                self._shutdown = True
        if not already:
            if cancel_futures:
                for _, f in self._take_queued():
                    f.cancel()
            self._queue.put(_STOP)
        if wait:
            self._thread.join()

    # ---- the executor's thread ------------------------------------------------------

    def _run(self) -> None:
        try:
            conn = self._connect()
            info = conn.create_session(_zgrid.SessionOptions(service=self._service))
            self.session_id = info["session_id"]
            client = _zgrid.BrokerClient(conn, info["session_id"], "executor", self._batch)
        except BaseException as e:  # reported by the constructor
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        futures: dict = {}
        next_id = 0
        stopping = False
        try:
            while True:
                # Take what was submitted (without waiting while work is out).
                took = False
                while True:
                    try:
                        item = self._queue.get(block=not futures and not stopping, timeout=0.1)
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    payload, f = item
                    if not f.set_running_or_notify_cancel():
                        continue
                    futures[next_id] = f
                    client.send(payload, b"%d" % next_id)
                    next_id += 1
                    took = True
                    if next_id % self._batch == 0:
                        break
                if took:
                    client.flush()
                t = client.next_response(0.05) if futures else None
                while t is not None:
                    self._settle(futures, t)
                    t = client.poll_response()
                if stopping and not futures:
                    break
            client.end_requests()
        except BaseException as e:
            # Under the lock submit() checks and enqueues under: a submit
            # either sees the error or has enqueued before the drain, so
            # every pending future ends (futures' callbacks run unlocked).
            with self._lock:
                self._error = e
                queued = self._take_queued()
            for f in futures.values():
                if not f.done():
                    f.set_exception(e)
            for _, f in queued:
                if f.set_running_or_notify_cancel():
                    f.set_exception(e)

    def _take_queued(self) -> list:
        """Everything submitted and not yet taken by the executor's thread."""
        items = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not _STOP:
                items.append(item)

    def _settle(self, futures: dict, t: tuple) -> None:
        request_id, user_data, fault_code, data = t
        try:
            index = int(user_data)
        except ValueError:
            return
        f = futures.pop(index, None)
        if f is None:
            return
        if fault_code is not None:
            f.set_exception(RequestFault(fault_code, data.decode("utf-8", errors="replace"), index, user_data))
        else:
            try:
                f.set_result(_decode(data, self._decode))
            except Exception as e:  # a result that does not decode as asked
                f.set_exception(e)
