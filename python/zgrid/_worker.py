"""The Python function worker of a zgrid node (service `python`).

zgrid-node --python PYTHON starts this program with `PYTHON -c <this source>`
once per concurrency slot and keeps it running; it needs nothing but the
standard library and cloudpickle, so any Python with cloudpickle (a
cluster's conda environment) can run it. It speaks the exec bridge's
protocol on its stdin/stdout (docs/services.md, "The exec bridge"): frames of
a 4-byte big-endian length and one msgpack value,

    request  [id, operation, payload(bin)]
    reply    [id, fault_code or nil, data(bin)]

answered in order. The node may write several requests before reading a
reply (pipelining): this worker reads what is there and answers each request
in turn, writing each reply before it runs the next request. The node blames
a death (os._exit, a segfault, an OOM kill) or a timeout on the first request
it has no reply for: a reply held back would have it fault and charge a call
that had finished, so none is.

The payload of operation `call` (docs/python.md, "The wire format of a
call"): pickle of (1, function, kind, data), `function` the cloudpickle of
the function (bytes), and
    kind "c": data (args, kwargs)           one call
    kind "m": data [args, args, ...]        a chunk of map: fn(*args) each
The reply's data: pickle of
    (True, value)                            kind "c": the return value
    (True, [value, ...])                     kind "m": every return value
    (False, exception_pickle or None, "module.QualName", message, traceback)
                                             the function raised
Faults (the request, not the function): `invalid_argument` for a payload
that is not a call; `service_error` when the function cannot be loaded here
(a module the node lacks: the message names the node and the module) or the
result is over the payload limit (the message names the limit).

Stateful sessions (zgrid.Executor(stateful=True); docs/services.md,
"Stateful sessions"): the node starts one worker of its own for the session
and sends [id, ":session_start", key] first, [id, ":session_end", key] last;
both are answered [id, nil, ""]. The session's calls then run one at a time
in this process, so what they leave in it (a function's globals: a function
is unpickled once and kept by its pickled bytes, never evicted during a
session) is the session's state. Per-call workers never see these messages.

The function's own prints go to the node's stderr: fd 1 is the channel, so
it is moved aside before any user code runs (and stdin is /dev/null).
"""

import os
import pickle
import struct
import sys
import traceback

NODE = os.environ.get("ZGRID_NODE", "?")
MAX_PAYLOAD = int(os.environ.get("ZGRID_MAX_PAYLOAD", str(1 << 20)))
MAX_FRAME = MAX_PAYLOAD + 4096
CACHE_MAX = 256  # functions kept unpickled, by their pickled bytes (no limit in a session)


class _Fault(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _take_channel():
    """Moves stdin/stdout aside: the frames use private descriptors, user
    code's print() goes to stderr and its input() reads /dev/null."""
    fd_in = os.dup(0)
    fd_out = os.dup(1)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = sys.stderr
    return fd_in, fd_out


# ---- the few msgpack shapes of the exec protocol --------------------------------


def _read_uint(b, i):
    t = b[i]
    if t < 0x80:
        return t, i + 1
    if t == 0xCC:
        return b[i + 1], i + 2
    if t == 0xCD:
        return struct.unpack_from(">H", b, i + 1)[0], i + 3
    if t == 0xCE:
        return struct.unpack_from(">I", b, i + 1)[0], i + 5
    if t == 0xCF:
        return struct.unpack_from(">Q", b, i + 1)[0], i + 9
    raise ValueError("id is not an unsigned integer")


def _read_raw(b, i):
    """A str, bin or nil; returns (bytes or None, next index)."""
    t = b[i]
    if t == 0xC0:
        return None, i + 1
    if 0xA0 <= t <= 0xBF:
        n, i = t - 0xA0, i + 1
    elif t in (0xC4, 0xD9):
        n, i = b[i + 1], i + 2
    elif t in (0xC5, 0xDA):
        n, i = struct.unpack_from(">H", b, i + 1)[0], i + 3
    elif t in (0xC6, 0xDB):
        n, i = struct.unpack_from(">I", b, i + 1)[0], i + 5
    else:
        raise ValueError("not a string")
    if i + n > len(b):
        raise ValueError("truncated")
    return b[i : i + n], i + n


def _parse_request(body):
    if not body or body[0] != 0x93:
        raise ValueError("a request is not [id, operation, payload]")
    rid, i = _read_uint(body, 1)
    op, i = _read_raw(body, i)
    payload, i = _read_raw(body, i)
    if i != len(body) or payload is None:
        raise ValueError("a malformed request")
    return rid, (op or b"call").decode("utf-8", "replace"), payload


def _reply(rid, fault, data):
    head = b"\x93\xcf" + struct.pack(">Q", rid)
    if fault is None:
        head += b"\xc0"
    else:
        code = fault.encode()
        head += bytes((0xA0 | len(code),)) + code  # fault codes are short (<32)
    body_len = len(head) + 5 + len(data)
    return struct.pack(">I", body_len) + head + b"\xc6" + struct.pack(">I", len(data)) + data


# ---- calls ------------------------------------------------------------------------

_functions = {}
_session = [None]  # the key of the stateful session this worker serves, once started


def _function(blob):
    fn = _functions.get(blob)
    if fn is not None:
        return fn
    try:
        fn = pickle.loads(blob)
    except ModuleNotFoundError as e:
        raise _Fault(
            "service_error",
            "node %s cannot load the function: no module named %r here (install it on the "
            "node, or give zgrid-node --python a Python that has it)" % (NODE, e.name),
        )
    except Exception as e:
        raise _Fault(
            "service_error",
            "node %s cannot load the function: %s: %s" % (NODE, type(e).__name__, e),
        )
    if not callable(fn):
        raise _Fault("invalid_argument", "the call's function is a %s, not callable" % type(fn).__name__)
    if len(_functions) >= CACHE_MAX and _session[0] is None:
        _functions.clear()  # a session's functions hold its state: kept
    _functions[blob] = fn
    return fn


def _dumps(value):
    """pickle, or cloudpickle for what plain pickle cannot name (a class made
    in the caller's __main__: cloudpickle gives the caller its own class back,
    so `except MyError` catches it there)."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        import cloudpickle

        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _raised(e):
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    tb = "Traceback on node %s:\n%s" % (NODE, tb)
    try:
        exc = _dumps(e)
        pickle.loads(exc)  # one the client could not rebuild is sent by name
    except Exception:
        exc = None
    name = "%s.%s" % (type(e).__module__, type(e).__qualname__)
    return (False, exc, name, str(e), tb)


def _run(payload):
    try:
        version, blob, kind, data = pickle.loads(payload)
    except ModuleNotFoundError as e:
        raise _Fault(
            "service_error",
            "node %s cannot load the call's arguments: no module named %r here" % (NODE, e.name),
        )
    except Exception as e:
        raise _Fault("invalid_argument", "not a Python call (%s: %s)" % (type(e).__name__, e))
    if version != 1 or kind not in ("c", "m"):
        raise _Fault("invalid_argument", "a Python call of an unknown version or kind")
    fn = _function(blob)
    try:
        if kind == "c":
            args, kwargs = data
            outcome = (True, fn(*args, **kwargs))
        else:
            outcome = (True, [fn(*args) for args in data])
    except BaseException as e:  # SystemExit too: the caller's, as ProcessPoolExecutor does
        outcome = _raised(e)
    try:
        out = _dumps(outcome)
    except Exception as e:  # a result that does not pickle: the call raised that
        out = _dumps(_raised(e))
    if len(out) > MAX_PAYLOAD:
        raise _Fault(
            "service_error",
            "the result is %d bytes, over the %d-byte payload limit" % (len(out), MAX_PAYLOAD),
        )
    return out


def _answer(body):
    try:
        rid, op, payload = _parse_request(body)
    except (ValueError, IndexError, struct.error) as e:
        sys.exit("zgrid python worker: %s" % e)  # the node restarts a worker it cannot talk to
    if op == ":session_start":
        _session[0] = payload
        return _reply(rid, None, b"")
    if op == ":session_end":
        _session[0] = None
        return _reply(rid, None, b"")
    if op != "call":
        return _reply(rid, "invalid_argument", ("unknown operation %r (the python service has `call`)" % op).encode())
    try:
        return _reply(rid, None, _run(payload))
    except _Fault as f:
        return _reply(rid, f.code, f.message.encode())


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def serve():
    fd_in, fd_out = _take_channel()
    import cloudpickle  # noqa: F401  (functions pickled by value need it to load)

    buf = bytearray()
    pos = 0
    while True:
        while len(buf) - pos >= 4:
            n = int.from_bytes(buf[pos : pos + 4], "big")
            if n == 0 or n > MAX_FRAME:
                sys.exit("zgrid python worker: a frame length out of bounds")
            if len(buf) - pos - 4 < n:
                break
            body = bytes(buf[pos + 4 : pos + 4 + n])
            pos += 4 + n
            _write_all(fd_out, _answer(body))  # before the next call can die
        if pos:
            del buf[:pos]
            pos = 0
        chunk = os.read(fd_in, 1 << 20)
        if not chunk:
            return
        buf += chunk


if __name__ == "__main__":
    serve()
