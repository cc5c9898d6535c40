"""The client's half of the wire format of a Python call (service `python`).

The worker (python/zgrid/_worker.py, run by the nodes) defines the format
in its docstring; this module makes the payloads and reads the results:

    payload  pickle of (1, cloudpickle(fn), "c", (args, kwargs))   one call
             pickle of (1, cloudpickle(fn), "m", [args, ...])      a map chunk
    result   pickle of (True, value) | (True, [value, ...])
             | (False, exception_pickle or None, "module.QualName", message, traceback)

User data (what a durable session's results carry back to attach()):
b"#<i>" for one call, b"#<i>:<n>" for a chunk of n calls, i the position of
its (first) call in what the executor sent. See docs/python.md, "The wire
format of a call".
"""

from __future__ import annotations

import pickle
from typing import Any, Optional

from ._base import Error

SERVICE = "python"
VERSION = 1
_PROTOCOL = pickle.HIGHEST_PROTOCOL


def is_function_service(service: str) -> bool:
    """A session of the python service (any version, any operation)."""
    return service.split("/")[0].split("@")[0] == SERVICE


class RemoteTraceback(Exception):
    """The traceback of an exception raised on a node: the __cause__ of the
    exception result() raises (as concurrent.futures.process does)."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class RemoteError(Error):
    """A function raised an exception that could not travel back (it does not
    pickle, or its class is not importable here): its type and message."""

    def __init__(self, type_name: str, message: str, traceback: str = ""):
        super().__init__(f"the function raised {type_name}: {message}")
        self.code = "remote_error"
        self.type_name = type_name
        self.message = message
        self.traceback = traceback


def dumps_function(fn: Any) -> bytes:
    import cloudpickle  # python3-cloudpickle

    return cloudpickle.dumps(fn, protocol=_PROTOCOL)


def _dumps(obj: Any) -> bytes:
    """cloudpickle, always: plain pickle would *succeed* on an instance of a
    class defined in __main__ (or in a module registered with
    cloudpickle.register_pickle_by_value) by naming it, and the node, whose
    __main__ is the worker, could not load it. cloudpickle names what is
    importable and sends the rest by value; it costs about 2 µs more a call
    and nothing measurable a chunk."""
    import cloudpickle  # python3-cloudpickle

    return cloudpickle.dumps(obj, protocol=_PROTOCOL)


def call_payload(blob: bytes, args: tuple, kwargs: dict) -> bytes:
    return _dumps((VERSION, blob, "c", (args, kwargs)))


def chunk_payload(blob: bytes, chunk: list) -> bytes:
    return _dumps((VERSION, blob, "m", chunk))


def raised(outcome: tuple) -> BaseException:
    """The exception of a (False, ...) outcome, its remote traceback as its cause."""
    _, exc_pickle, type_name, message, tb = outcome
    exc: Optional[BaseException] = None
    if exc_pickle is not None:
        try:
            exc = pickle.loads(exc_pickle)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(type_name, message, tb)
    exc.__cause__ = RemoteTraceback('\n"""\n' + tb + '"""')
    return exc


def outcome(data: bytes) -> tuple:
    """(True, value) or (False, exception) of a result's data."""
    o = pickle.loads(data)
    if o[0]:
        return True, o[1]
    return False, raised(o)


def tag_span(user_data: bytes) -> tuple:
    """(first call index, number of calls or None for one call) of a tag;
    (None, None) for user data that is not one."""
    if user_data[:1] != b"#":
        return None, None
    first, sep, count = user_data[1:].partition(b":")
    try:
        return int(first), (int(count) if sep else None)
    except ValueError:
        return None, None
