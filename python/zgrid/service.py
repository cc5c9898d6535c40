"""Python services for zgrid nodes: the exec bridge's worker side.

    import zgrid.service as svc

    @svc.service                       # or @svc.service(name="stats")
    def square(payload: bytes) -> bytes:
        return str(int(payload) ** 2).encode()

    if __name__ == "__main__":
        svc.serve()                    # answers requests until the node stops it

One registration file (docs/services.md) names this program; `zgrid-node
--services-dir` starts it once per concurrency slot. The function's name is
the operation (the first one registered is the default). An exception in
the function faults that request only (`service_error` with the exception's
message; ValueError: `invalid_argument`; Fault(code, message): any code) and
the worker keeps serving. This module needs only python3-msgpack, not the
compiled client: a node can run Python services without zgrid's client.

A node starts this program once per concurrency slot and keeps it running.
Frames on stdin/stdout: a 4-byte big-endian length, then one msgpack value.

    request  [id, operation, payload(bin)]
    reply    [id, fault_code or None, data(bin)]

serve(handlers) reads requests until stdin closes (the node is stopping) and
answers each with handlers[operation](payload: bytes) -> bytes. A handler
that raises ValueError answers the fault `invalid_argument`; any other
exception answers `service_error`; raise Fault(code, message) for any other
code (e.g. Fault("retryable", "...") to have the head run it again).
Only stdout is the channel: print diagnostics to stderr.

Needs python3-msgpack (Debian) / msgpack (PyPI).
"""
import struct
import sys

import msgpack

MAX_FRAME = (1 << 20) + 4096


class Fault(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _read_exact(stream, n):
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


_registry: dict = {}
_default: list = []


def service(fn=None, *, name=None):
    """Registers `fn(payload: bytes) -> bytes | str` as an operation of this
    worker (its name, or `name`); returns fn unchanged."""

    def register(f):
        op = name or f.__name__
        _registry[op] = f
        if not _default:
            _default.append(op)
        return f

    return register(fn) if fn is not None else register


def serve(handlers=None, default_operation=None):
    """Answers requests until stdin closes (the node is stopping): with
    handlers {operation: fn(bytes) -> bytes}, a single function, or (None)
    the functions registered with @service."""
    if handlers is None:
        handlers = dict(_registry)
        default_operation = default_operation or (_default[0] if _default else None)
    elif callable(handlers):
        default_operation = default_operation or handlers.__name__
        handlers = {handlers.__name__: handlers}
    if not handlers:
        sys.exit("zgrid.service: nothing to serve (decorate a function with @zgrid.service.service)")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = _read_exact(stdin, 4)
        if head is None:
            return
        (length,) = struct.unpack(">I", head)
        if length > MAX_FRAME:
            sys.exit("zgrid.service: frame too large")
        body = _read_exact(stdin, length)
        if body is None:
            return
        req_id, operation, payload = msgpack.unpackb(body, raw=False)
        fn = handlers.get(operation or default_operation)
        try:
            if fn is None:
                raise Fault("invalid_argument", "unknown operation %r" % operation)
            fault, data = None, fn(bytes(payload))
            if isinstance(data, str):
                data = data.encode()
        except Fault as f:
            fault, data = f.code, f.message.encode()
        except ValueError as e:
            fault, data = "invalid_argument", str(e).encode()
        except Exception as e:  # the request faults; the worker lives on
            fault, data = "service_error", ("%s: %s" % (type(e).__name__, e)).encode()
        out = msgpack.packb([req_id, fault, data], use_bin_type=True)
        stdout.write(struct.pack(">I", len(out)) + out)
        stdout.flush()
