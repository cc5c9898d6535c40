"""Grid, Session and map: the Pythonic API over zgrid._zgrid."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

from . import _calls, _zgrid
from .executor import ServiceExecutor
from ._base import DEFAULT_HEAD, Error, RequestFault, _decode, _encode, _error, open_connection  # noqa: F401
from .progress import with_progress

# The protocol's limits per request (docs/protocol.md: payload 1 MiB, user data 64 KiB).
MAX_PAYLOAD = 1 << 20
# What one `submit` message carries (the client library's one batch).
_SUBMIT_MAX_ITEMS = 1024
# Grid.map of a small interactive list: how long the submit's reply waits
# for the answers to bring them (docs/protocol.md, "One-message sessions").
# Short: slower answers stream as usual, and a head lost during the wait is
# a lost reply (ConnectionError after the timeout), not a lost session.
_MAP_SUBMIT_WAIT_MS = 100
_SUBMIT_MAX_BYTES = 1 << 20
MAX_USER_DATA = 64 << 10
_FETCH_PAGE = 4096


@dataclasses.dataclass
class Response:
    """One result: `index` is the request's position in what was sent (0-based)."""

    index: Optional[int]
    request_id: int
    user_data: bytes
    value: Any
    # A RequestFault; for a python session's call, the exception it raised.
    fault: Optional[BaseException] = None

    @property
    def ok(self) -> bool:
        return self.fault is None


@dataclasses.dataclass
class SessionStatus:
    """A session's counters (docs/protocol.md, status)."""

    session_id: str
    service: str
    durable: bool
    state: str
    total: int
    committed: int
    queued: int
    running: int
    done: int
    faulted: int
    removed: int
    clients: int
    clients_open: int
    clients_removed: int
    complete: bool
    owner: str = ""
    created: int = 0
    responses_queued: int = 0
    idle_ms: int = 0
    client_idle_timeout_ms: int = 0
    stateful: bool = False
    # Per removed client: when, after how long idle, with how many requests.
    removals: str = ""
    # A client that has not committed yet, and in how many ms the idle
    # timeout would remove it ("" / 0: none).
    waiting_for: str = ""
    removal_in_ms: int = 0
    # Why its work cannot run now ("" when it can): no node offers its
    # service, the head still waits for its nodes, or (durable) the head's
    # journal disk is full.
    paused: str = ""
    # The head's verdict that no node offers its service (docs/protocol.md).
    unoffered: bool = False

    @classmethod
    def _from(cls, d: dict) -> "SessionStatus":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclasses.dataclass
class StoredRequest:
    """A request a durable session stored (Grid.faulted_requests,
    Session.requests): its id in that session, its payload, how it faulted
    (None when not asked for faults) and its user data — for
    faulted_requests the original request id in decimal, what a resubmitted
    session's results carry."""

    request_id: int
    payload: bytes
    fault_code: Optional[str]
    user_data: bytes


def _stored(t: tuple) -> StoredRequest:
    return StoredRequest(*t)




def _session_id(session: Any) -> str:
    return session.id if isinstance(session, Session) else session


def _codes(codes: Any) -> list:
    """None: every fault code; a str: one code (or several, comma-separated)."""
    if codes is None:
        return []
    if isinstance(codes, str):
        return [c for c in codes.split(",") if c]
    return [str(c) for c in codes]






def _fits_one_message(payloads: list) -> bool:
    # user data "#i" counts too
    size = sum(len(p) + 2 + len(str(i)) for i, p in enumerate(payloads))
    return len(payloads) <= _SUBMIT_MAX_ITEMS and size <= _SUBMIT_MAX_BYTES


def _index_tag(i: int) -> bytes:
    return b"#%d" % i


def _index_of(user_data: bytes) -> Optional[int]:
    if user_data[:1] == b"#":
        try:
            return int(user_data[1:])
        except ValueError:
            return None
    return None


def _response(t: tuple, decode: Optional[str], index: Optional[int] = None) -> Response:
    request_id, user_data, fault_code, data = t
    if index is None:
        index = _index_of(user_data)
    if fault_code is not None:
        fault = RequestFault(fault_code, data.decode("utf-8", errors="replace"), index, user_data)
        return Response(index, request_id, user_data, None, fault)
    return Response(index, request_id, user_data, _decode(data, decode))










def connect(
    head: Union[str, Sequence[str], None] = None,
    key: Optional[str] = None,
    head_key: Optional[str] = None,
    config: Optional[str] = None,
    timeout: float = 10.0,
) -> "Grid":
    """Connects to a head: `head` argument, else ZGRID_HEAD, else the config
    file's `head`, else tcp://127.0.0.1:5555. Several heads (an active one
    and standbys, docs/operations.md "Failover"): a list or tuple of
    endpoints, or one string with commas; the connection uses the active
    head and follows a takeover. With CURVE, `key` is this
    client's key file (zgrid keygen) and `head_key` the head's public key
    file (or ZGRID_KEY / ZGRID_HEAD_KEY). Raises zgrid.ConnectionError when no
    head answers within `timeout` seconds (with several heads: when none is
    active, naming each and what it said)."""
    return Grid(open_connection(head, key, head_key, config, timeout))


class Grid:
    """A connection to a head. Belongs to the thread that made it; use one
    per thread. A context manager: closing it forgets the connection."""

    def __init__(self, conn: "_zgrid.Connection"):
        self._conn = conn

    def __enter__(self) -> "Grid":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._conn = None

    @property
    def conn(self) -> "_zgrid.Connection":
        if self._conn is None:
            raise Error("this Grid is closed")
        return self._conn

    # ---- sessions ---------------------------------------------------------------

    def session(
        self,
        service: str,
        durable: bool = False,
        *,
        stateful: bool = False,
        client_idle_timeout: float = 0,
        task_timeout: float = 0,
        deadline: float = 0,
        batch: int = 1024,
    ) -> "Session":
        """A new session (times in seconds; 0: the head's defaults). With
        stateful=True its requests run one at a time, in the order sent, on
        one instance of the service kept for the session (docs/operations.md,
        "Stateful sessions"); a service that does not support sessions is
        refused with InvalidRequest."""
        info = self.conn.create_session(_zgrid.SessionOptions(
            service=service, durable=durable, stateful=stateful,
            client_idle_timeout=client_idle_timeout, task_timeout=task_timeout, deadline=deadline))
        return Session(self, info, batch=batch)

    def submit(
        self,
        service: str,
        items: Iterable[Any],
        durable: bool = False,
        *,
        stateful: bool = False,
        client_idle_timeout: float = 0,
        task_timeout: float = 0,
        deadline: float = 0,
    ) -> "Session":
        """A whole small session in one message: creates it, sends every item,
        commits them and seals it, in one round trip (durable: one journal
        write). At most 1,024 items and 1 MiB together; more is refused with
        InvalidRequest (use session() and send_many()). Read the results with
        responses() (interactive: the session leaves the head once they are
        delivered) or results() (durable: kept until purged)."""
        payloads = [_encode(item) for item in items]
        if not _fits_one_message(payloads):
            raise _zgrid.InvalidRequest(
                f"submit sends one message of at most {_SUBMIT_MAX_ITEMS} requests and "
                f"{_SUBMIT_MAX_BYTES} bytes: use session() and send_many() for more"
            )
        return self._submit(payloads, _zgrid.SessionOptions(
            service=service, durable=durable, stateful=stateful,
            client_idle_timeout=client_idle_timeout, task_timeout=task_timeout, deadline=deadline))

    def _submit(self, payloads: list, options: "_zgrid.SessionOptions",
                wait_ms: int = 0) -> "Session":
        # (_fits_one_message kept every payload within MAX_PAYLOAD.)
        cid = "py-" + uuid.uuid4().hex[:16]
        client = _zgrid.BrokerClient.submit(self.conn, options, cid, payloads, wait_ms)
        info = {"session_id": client.session_id, "service": options.service,
                "durable": options.durable, "stateful": options.stateful}
        s = Session(self, info)
        s._client = client
        s._sent = len(payloads)
        s._submitted = True
        return s

    def attach(self, session_id: str) -> "Session":
        """An existing session by id, from any process (its results, status,
        close). A session of service `python` (a durable zgrid.Executor's)
        yields its calls' values: see Session.results()."""
        return Session(self, self.conn.attach(session_id))

    def executor(self, service: str, **options: Any) -> ServiceExecutor:
        """Futures of `service`'s requests: a zgrid.ServiceExecutor on this
        grid's head, on a connection of its own thread (submit(payload),
        map(items), shutdown(); options: decode=, batch=, timeout=, key=,
        head_key=). For Python functions, zgrid.Executor(grid)."""
        return ServiceExecutor(service, self, **options)

    def faulted_requests(self, session_id: Any, codes: Any = None) -> list:
        """The requests of a complete durable session (an id or a Session)
        that faulted — with a fault code in `codes` (a list, or one
        comma-separated str), or every one when None — in request-id order, as
        StoredRequest (request_id, payload, fault_code, user_data = the
        request id in decimal). InvalidRequest while the session is not
        complete, or for an interactive one (the head keeps no requests of
        those)."""
        return [_stored(t) for t in self.conn.faulted_requests(_session_id(session_id), _codes(codes))]

    def resubmit(
        self,
        session_id: Any,
        codes: Any = None,
        service: Optional[str] = None,
        durable: bool = True,
        *,
        stateful: Optional[bool] = None,
        client_idle_timeout: float = 0,
        task_timeout: float = 0,
        deadline: float = 0,
        batch: int = 1024,
    ) -> "Session":
        """A new session made of the faulted requests of complete durable
        session `session_id` (those of faulted_requests(session_id, codes)),
        sent to `service` (default: the original's; stateful: as the
        original) and committed. Each carries its original request id
        (decimal) as its user data, so every result maps back; the original
        is not changed. Durable (the default): returns once the new session is
        committed; read it with results(), or attach(id) later. Interactive:
        read it with responses(). Nothing to resubmit: UnknownSession (code
        not_found)."""
        sid = _session_id(session_id)
        picked = _codes(codes)
        original = self.conn.attach(sid)  # UnknownSession, PermissionError first
        if stateful is None:
            stateful = bool(original.get("stateful", False))
        if durable:
            info = self.conn.resubmit(sid, picked, _zgrid.SessionOptions(
                service=service or "", durable=True, stateful=stateful,
                client_idle_timeout=client_idle_timeout, task_timeout=task_timeout, deadline=deadline))
            return Session(self, info, batch=batch)
        requests = self.faulted_requests(sid, picked)
        if not requests:
            raise _error(
                _zgrid.UnknownSession, "not_found",
                f"session {sid} has no faulted requests" + (" with those fault codes" if picked else "")
                + ": nothing to resubmit",
            )
        s = self.session(service or original["service"], False, stateful=stateful,
                         client_idle_timeout=client_idle_timeout, task_timeout=task_timeout,
                         deadline=deadline, batch=batch)
        for q in requests:
            s.send(q.payload, user_data=q.user_data)
        s.commit()
        return s

    @property
    def head(self) -> str:
        """The head in use: one of those given, or the active head a standby
        named (it changes when a standby takes over)."""
        return self.conn.head_endpoint

    @property
    def epoch(self) -> int:
        """The highest lease epoch seen (0: heads without a lease)."""
        return self.conn.epoch

    def heads(self) -> list:
        """Each head this grid was given, asked directly (about 1 s at most):
        dicts with endpoint, role ("active", "standby", "single" or "no
        answer"), epoch, instance, active and error."""
        return self.conn.heads()

    def status(self) -> dict:
        return self.conn.grid_status()

    def nodes(self) -> list:
        return self.conn.nodes()

    def sessions(self) -> list:
        return [SessionStatus._from(d) for d in self.conn.sessions()]

    # ---- map --------------------------------------------------------------------

    def map(
        self,
        service: str,
        iterable: Iterable[Any],
        *,
        durable: bool = False,
        stateful: bool = False,
        ordered: bool = True,
        batch: int = 1024,
        timeout: Optional[float] = None,
        decode: Optional[str] = None,
        errors: str = "raise",
        window: int = 65536,
        progress: Any = False,
    ) -> Iterator[Any]:
        """Runs `service` on every item; yields results (in input order, or as
        completed with ordered=False) while inputs are still being sent: at
        most `window` requests are outstanding, so an iterable of millions
        never sits in memory. A faulted request raises RequestFault when
        reached (errors="return": the RequestFault is yielded instead).
        `timeout` bounds the wait for each next result (seconds). stateful=True
        runs the items one at a time, in order, on one instance of the service
        (see session()). With progress=True a progress line (done, faulted,
        rate, ETA) is drawn on stderr when it is a terminal (or on `progress`,
        a file)."""
        if errors not in ("raise", "return"):
            raise ValueError("errors must be 'raise' or 'return'")
        total = len(iterable) if hasattr(iterable, "__len__") else None
        s = None
        if isinstance(iterable, (list, tuple)) and len(iterable) <= _SUBMIT_MAX_ITEMS:
            # A small input is a whole session in one message: one round
            # trip (durable: one journal write) instead of five or six.
            payloads = [_encode(item) for item in iterable]
            if _fits_one_message(payloads):
                # Interactive: the reply may bring every answer (one message
                # each way); answers slower than the wait stream as usual.
                s = self._submit(payloads, _zgrid.SessionOptions(
                    service=service, durable=durable, stateful=stateful),
                    wait_ms=0 if durable else _MAP_SUBMIT_WAIT_MS)
                iterable = []
        if s is None:
            s = self.session(service, durable=durable, stateful=stateful, batch=batch)
        results = s._map(iterable, ordered=ordered, timeout=timeout, decode=decode, errors=errors,
                         window=window)
        if not progress:
            return results
        return with_progress(results, progress, total,
                             ok=lambda r: not isinstance(r, RequestFault))


class Session:
    """A session of a service. Sending goes through one client of it (made on
    first send); results stream back (interactive) or are fetched from the
    journal (durable)."""

    def __init__(self, grid: Grid, info: dict, batch: int = 1024):
        self._grid = grid
        self.id: str = info["session_id"]
        self.service: str = info["service"]
        self.durable: bool = info["durable"]
        self.stateful: bool = info.get("stateful", False)
        self._batch = batch
        self._client: Optional["_zgrid.BrokerClient"] = None
        self._sent = 0
        self._taken = 0  # responses() handed out
        self._submitted = False  # made whole by Grid.submit(): committed and sealed

    def __repr__(self) -> str:
        kind = ("durable" if self.durable else "interactive") + (" stateful" if self.stateful else "")
        return f"<zgrid.Session {self.id} {self.service} {kind}>"

    def _broker(self) -> "_zgrid.BrokerClient":
        if self._client is None:
            cid = "py-" + uuid.uuid4().hex[:16]
            self._client = _zgrid.BrokerClient(self._grid.conn, self.id, cid, self._batch)
        return self._client

    def send(self, payload: Any, user_data: Optional[bytes] = None) -> int:
        """Queues one request; returns its index (0-based, in this session's
        sends from this object)."""
        i = self._sent
        data = _encode(payload)
        tag = user_data if user_data is not None else _index_tag(i)
        if len(data) > MAX_PAYLOAD or len(tag) > MAX_USER_DATA:
            raise _zgrid.InvalidRequest(
                f"request {i}: payload of {len(data)} bytes or user data of {len(tag)} bytes is over "
                f"the limit ({MAX_PAYLOAD} and {MAX_USER_DATA} bytes)"
            )
        self._broker().send(data, tag)
        self._sent += 1
        return i

    def _chunks(self, iterable: Iterable[Any]) -> Iterator[list]:
        """The items encoded, in lists of `batch` (one library call each);
        a payload over the limit is refused before anything of its chunk goes."""
        chunk: list = []
        for item in iterable:
            data = _encode(item)
            if len(data) > MAX_PAYLOAD:
                raise _zgrid.InvalidRequest(
                    f"request {self._sent + len(chunk)}: payload of {len(data)} bytes is over the "
                    f"limit ({MAX_PAYLOAD} bytes)"
                )
            chunk.append(data)
            if len(chunk) >= max(1, self._batch):
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def send_many(self, iterable: Iterable[Any]) -> int:
        """Sends every item (in chunks of `batch`, one call into the library
        each); returns how many."""
        b = self._broker()
        n = 0
        for chunk in self._chunks(iterable):
            b.send_indexed(chunk, self._sent)
            self._sent += len(chunk)
            n += len(chunk)
        return n

    def flush(self) -> None:
        """Sends the partial batch now and returns once the head has
        acknowledged every request sent so far (durable: journaled); they may
        run from now on. commit() also ends the client."""
        b = self._broker()
        b.flush()
        b.wait_acked()

    def commit(self) -> None:
        """EndRequests: returns only once every request is committed (durable:
        synced in the head's journal)."""
        self._broker().end_requests()

    def status(self) -> SessionStatus:
        return SessionStatus._from(self._grid.conn.session_status(self.id))

    def cancel(self) -> None:
        """Requests not yet run fault `cancelled`; running ones finish."""
        self._grid.conn.close_session(self.id, "cancel")

    def close(self, purge: bool = False) -> None:
        """Seals the session (no new clients or requests), or purges it (its
        journal records are deleted and its id becomes unknown)."""
        self._grid.conn.close_session(self.id, "purge" if purge else "seal")

    def responses(self, timeout: Optional[float] = None, decode: Optional[str] = None) -> Iterator[Response]:
        """Interactive: the responses of what this object sent, as they come."""
        b = self._broker()
        while self._taken < self._sent:
            t = b.next_response(3600.0 if timeout is None else timeout)
            if t is None:
                raise _zgrid.ConnectionError(f"no response within {timeout} s")
            self._taken += 1
            yield _response(t, decode)

    def results(
        self, from_: int = 0, wait: bool = True, decode: Optional[str] = None, timeout: float = 60.0
    ) -> "Results":
        """Durable: the session's stored results in the order recorded (as
        completed), from cursor `from_` (0: the beginning). With wait=True it
        waits for new ones until the session is complete. The iterator's
        .cursor resumes later.

        A session of service `python` (zgrid.Executor(durable=True)) yields
        one Response per call — a map chunk's calls each, in order — whose
        .value is the call's unpickled return value and .index its position
        in what the executor submitted; a call that raised has .fault, the
        exception (its remote traceback as __cause__), or a RequestFault for
        the whole request; `decode` does not apply."""
        return Results(self._grid.conn, self.id, from_, wait, decode, timeout,
                       python=_calls.is_function_service(self.service))

    def results_in_order(self, wait_timeout: float = 60.0, decode: Optional[str] = None) -> Iterator[Response]:
        """Durable: every result from the beginning, in index order (the order
        sent: what results() yields, held back until its turn). Results
        without an index (a resubmitted session's) come as recorded."""
        held: dict = {}
        next_out = 0
        for r in self.results(decode=decode, timeout=wait_timeout):
            if r.index is None:
                yield r
                continue
            held[r.index] = r
            while next_out in held:
                yield held.pop(next_out)
                next_out += 1
        for i in sorted(held):
            yield held[i]

    def requests(self, from_id: int = 0) -> Iterator[StoredRequest]:
        """Durable: the session's stored requests from request id `from_id`,
        answered or not, in id order (fault_code None); requests of removed
        clients are gone. InvalidRequest for an interactive session."""
        conn = self._grid.conn
        while True:
            items, next_id, end = conn.stored_requests(self.id, from_id)
            for t in items:
                yield _stored(t)
            if end or next_id <= from_id:
                return
            from_id = next_id

    def _map(self, iterable, *, ordered, timeout, decode, errors, window) -> Iterator[Any]:
        wait = 3600.0 if timeout is None else timeout

        def emit(r: Response):
            if r.fault is not None:
                if errors == "raise":
                    raise r.fault
                return r.fault
            return r.value

        def in_order(responses: Iterable[Response]) -> Iterator[Any]:
            if not ordered:
                for r in responses:
                    yield emit(r)
                return
            held: dict = {}
            next_out = 0
            for r in responses:
                held[r.index] = r
                while next_out in held:
                    yield emit(held.pop(next_out))
                    next_out += 1

        if self.durable:
            # Every request journaled and committed, then the results as recorded.
            self.send_many(iterable)
            self.commit()
            yield from in_order(self.results(decode=decode, timeout=wait))
            return
        # Interactive, the hot path: raw tuples, no Response objects; a result
        # that arrives in turn (the common case) is yielded without the dict.
        held: dict = {}
        next_out = 0
        for request_id, user_data, fault_code, data in self._stream(iterable, wait, window):
            index = int(user_data[1:])
            if fault_code is None:
                v = data if decode is None else _decode(data, decode)
            else:
                v = RequestFault(fault_code, data.decode("utf-8", errors="replace"), index, user_data)
            if ordered:
                if index != next_out:
                    held[index] = v
                    continue
                next_out += 1
            if isinstance(v, RequestFault) and errors == "raise":
                raise v
            yield v
            while held and next_out in held:
                v = held.pop(next_out)
                next_out += 1
                if isinstance(v, RequestFault) and errors == "raise":
                    raise v
                yield v

    def _no_result(self, wait: float) -> Exception:
        """The error for a wait that ran out: a service no node offers is the
        usual reason, and says so."""
        name = self.service.split("/")[0].split("@")[0]
        try:
            offered = {
                svc.split("@")[0] for n in self._grid.conn.nodes() for svc in n["services"].split(",")
            }
        except Error:
            offered = None
        if offered is not None and name not in offered:
            return _zgrid.InvalidRequest(
                f"no result within {wait} s: no node offers service {name!r} "
                f"(the nodes offer {', '.join(sorted(offered)) or 'nothing'})"
            )
        return _zgrid.ConnectionError(f"no result within {wait} s")

    def _stream(self, iterable, wait: float, window: int) -> Iterator[tuple]:
        """Interactive: sends in chunks of `batch` while at most `window`
        requests are unanswered, yielding responses (raw tuples: request id,
        user data, fault code or None, data) as they arrive."""
        b = self._broker()
        got = 0  # responses taken from the client (it may hold more, received)
        for chunk in self._chunks(iterable):
            b.send_indexed(chunk, self._sent)
            self._sent += len(chunk)
            for t in b.poll_responses():
                got += 1
                yield t
            while self._sent - got >= window:
                b.flush()
                t = b.next_response(wait)
                if t is None:
                    raise self._no_result(wait)
                got += 1
                yield t
        b.end_requests()
        while got < self._sent:
            t = b.next_response(wait)
            if t is None:
                raise self._no_result(wait)
            got += 1
            yield t
            for t in b.poll_responses():
                got += 1
                yield t


_END = object()


class Results:
    """Iterator over a durable session's stored results, in the order they
    were recorded. .cursor moves at the end of each page read (up to 4,096
    results): resuming from it never skips a result and repeats at most the
    page being read."""

    def __init__(self, conn, session_id: str, cursor: int, wait: bool, decode, timeout: float,
                 python: bool = False):
        self._python = python
        self._expanded: list = []
        self._cursor_after_expanded = False  # set when a page ends inside a chunk
        self._conn = conn
        self._sid = session_id
        self.cursor = cursor
        self._wait = wait
        self._decode = decode
        self._timeout = timeout
        self._buf: list = []
        self._complete = False
        self._checked = False

    def __iter__(self) -> "Results":
        return self

    def _check_removed(self) -> None:
        """At the end: requests removed with their client (idle timeout) have
        no result, and that must not pass silently."""
        if self._checked:
            return
        self._checked = True
        st = self._conn.session_status(self._sid)
        if st.get("removed", 0) > 0:
            removals = st.get("removals", "")
            end = ("the session was abandoned: nothing of it ran" if st.get("state") == "abandoned"
                   else "every other result was read")
            raise _error(
                _zgrid.Removed, "not_found",
                f"session {self._sid}: {st['removed']} requests were removed with their client "
                f"({st.get('clients_removed', 0)} removed by the idle timeout of "
                f"{st.get('client_idle_timeout_ms', 0) / 1000:g} s before committing"
                + (f": {removals}" if removals else "") + f"); {end}"
            )

    def _fetch(self):
        """One page. A fetch is idempotent (it names its cursor): the library
        resends it while the head restarts, and a head that comes back within
        the connection's timeout answers it. A head that answers "try again"
        (its journal being reopened) is asked again, within that timeout too;
        a head gone for the whole timeout is a ConnectionError."""
        deadline = time.monotonic() + self._conn.timeout
        while True:
            try:
                return self._conn.fetch(
                    self._sid, self.cursor, _FETCH_PAGE, self._timeout if self._wait else 0.0
                )
            except _zgrid.ConnectionError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def __next__(self) -> Response:
        if self._expanded:
            r = self._expanded.pop()
            if not self._expanded and self._cursor_after_expanded:
                # The page's last stored result handed out call by call: resume after it.
                self.cursor = self._next_cursor
                self._cursor_after_expanded = False
            return r
        while not self._buf:
            if self._complete:
                self._check_removed()
                raise StopIteration
            items, nxt, complete = self._fetch()
            self._buf = list(items)
            self._buf.reverse()
            self._next_cursor = nxt
            self._complete = complete
            if not self._buf and not complete and not self._wait:
                raise StopIteration
            if not self._buf and not complete:
                raise _zgrid.ConnectionError(f"no new result within {self._timeout} s")
        t = self._buf.pop()
        page_read = not self._buf
        if self._python:
            # A chunk's calls come one by one: the cursor moves past the
            # page only once its last call is handed out, so resuming from
            # it never skips one.
            self._expanded = _python_responses(t)
            self._expanded.reverse()
            r = self._expanded.pop()
            if page_read and not self._expanded:
                self.cursor = self._next_cursor
            elif page_read:
                self._cursor_after_expanded = True
            return r
        if page_read:  # a page read to its end: resume after it
            self.cursor = self._next_cursor
        return _response(t, self._decode)


def _python_responses(t: tuple) -> list:
    """One stored result of a python session as one Response per call (a
    chunk's in order): .value the return value, or .fault the exception."""
    request_id, user_data, fault_code, data = t
    first, count = _calls.tag_span(user_data)
    n = 1 if count is None else count
    indices = [None] if first is None else list(range(first, first + n))
    if fault_code is not None:
        fault = RequestFault(fault_code, data.decode("utf-8", errors="replace"), first, user_data)
        return [Response(i, request_id, user_data, None, fault) for i in indices]
    try:
        ok, value = _calls.outcome(data)
    except Exception as e:  # a result that does not unpickle here (a module this process lacks)
        return [Response(i, request_id, user_data, None, e) for i in indices]
    if not ok:
        return [Response(i, request_id, user_data, None, value) for i in indices]
    if count is None:
        return [Response(indices[0], request_id, user_data, value)]
    return [Response(i, request_id, user_data, v) for i, v in zip(indices, value)]
