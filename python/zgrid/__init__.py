"""zgrid: a job grid for HPC clusters, from Python.

    import zgrid
    with zgrid.Executor() as ex:                      # any Python function, on the grid
        results = list(ex.map(simulate, params))

    with zgrid.connect() as grid:                     # ZGRID_HEAD or tcp://127.0.0.1:5555
        for factors in grid.map("factorize", ["91", "1001"], decode="text"):
            print(factors)

    s = grid.session("factorize", durable=True)       # survives head crashes
    s.send_many(str(n) for n in range(100_000))
    s.commit()                                         # returns once committed
    sid = s.id                                         # ... fetch tomorrow, from anywhere:
    for r in zgrid.connect().attach(sid).results():
        print(r.index, r.value)

    grid.session("running_sum", stateful=True)         # in order, on one service instance
    grid.resubmit(sid, codes=["service_error"])        # what faulted, again: a new session

The protocol, batching, resend and resume are the C++ client library's
(zgrid._zgrid); this package shapes them after concurrent.futures. Errors
are exceptions: ConnectionError (no head within the timeout),
PermissionError, UnknownSession, Removed (idle timeout), ResourceExhausted,
InvalidRequest, all subclasses of zgrid.Error; a request that faults is a
RequestFault. Python services: zgrid.service.
A function that raised raises its own exception from result(). See docs/python.md.
"""

import importlib

# The client (the compiled module and the API over it) loads on first use, so
# that `import zgrid.service` in a node's Python worker needs only msgpack.
_LAZY = {
    "ConnectionError": "._zgrid",
    "Error": "._zgrid",
    "InvalidRequest": "._zgrid",
    "PermissionError": "._zgrid",
    "Removed": "._zgrid",
    "ResourceExhausted": "._zgrid",
    "UnknownSession": "._zgrid",
    "Grid": ".grid",
    "RequestFault": ".grid",
    "Response": ".grid",
    "Session": ".grid",
    "SessionStatus": ".grid",
    "StoredRequest": ".grid",
    "connect": ".grid",
    "Executor": ".functions",
    "ServiceExecutor": ".executor",
    "RemoteError": "._calls",
    "RemoteTraceback": "._calls",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zgrid' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = [
    "connect",
    "Grid",
    "Session",
    "SessionStatus",
    "StoredRequest",
    "Response",
    "RequestFault",
    "Executor",
    "ServiceExecutor",
    "RemoteError",
    "RemoteTraceback",
    "Error",
    "ConnectionError",
    "PermissionError",
    "UnknownSession",
    "Removed",
    "ResourceExhausted",
    "InvalidRequest",
    "service",
]
