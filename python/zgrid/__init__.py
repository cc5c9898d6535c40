"""zgrid: a job grid for HPC clusters, from Python.

    import zgrid
    with zgrid.connect() as grid:                     # ZGRID_HEAD or tcp://127.0.0.1:5555
        for factors in grid.map("factorize", ["91", "1001"], decode="text"):
            print(factors)

    s = grid.session("factorize", durable=True)       # survives head crashes
    s.send_many(str(n) for n in range(100_000))
    s.commit()                                         # returns once committed
    sid = s.id                                         # ... fetch tomorrow, from anywhere:
    for r in zgrid.connect().attach(sid).results():
        print(r.index, r.value)

The protocol, batching, resend and resume are the C++ client library's
(zgrid._zgrid); this package shapes them after concurrent.futures. Errors
are exceptions: ConnectionError (no head within the timeout),
PermissionError, UnknownSession, Removed (idle timeout), ResourceExhausted,
InvalidRequest, all subclasses of zgrid.Error; a request that faults is a
RequestFault. See docs/python.md.
"""

from ._zgrid import (  # noqa: F401  (re-exported)
    ConnectionError,
    Error,
    InvalidRequest,
    PermissionError,
    Removed,
    ResourceExhausted,
    UnknownSession,
)
from .grid import Grid, RequestFault, Response, Session, SessionStatus, connect
from .executor import Executor

__all__ = [
    "connect",
    "Grid",
    "Session",
    "SessionStatus",
    "Response",
    "RequestFault",
    "Executor",
    "Error",
    "ConnectionError",
    "PermissionError",
    "UnknownSession",
    "Removed",
    "ResourceExhausted",
    "InvalidRequest",
]
