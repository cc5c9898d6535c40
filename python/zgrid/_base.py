"""What every part of the package shares: the errors raised from Python,
payload encoding, and opening a connection (the head, CURVE keys). No
module of the package is imported here, so grid, executor and futures all
build on it without a cycle."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import msgpack  # python3-msgpack

from . import _zgrid

Error = _zgrid.Error
DEFAULT_HEAD = "tcp://127.0.0.1:5555"


class RequestFault(Exception):
    """A request the grid answered with a fault (the request's own failure)."""

    def __init__(self, code: str, message: str, index: Optional[int], user_data: bytes):
        super().__init__(f"{code}: {message}" + (f" (request {index})" if index is not None else ""))
        self.code = code
        self.message = message
        self.index = index
        self.user_data = user_data


def _error(cls: type, code: str, message: str) -> Exception:
    """A zgrid.Error raised from Python, with its .code like the library's."""
    e = cls(message)
    e.code = code
    return e


def _encode(payload: Any) -> bytes:
    """bytes and str go as they are; dicts, lists and numbers as msgpack."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return msgpack.packb(payload, use_bin_type=True)


def _decode(data: bytes, how: Optional[str]) -> Any:
    if how is None or how == "bytes":
        return data
    if how == "text":
        return data.decode("utf-8", errors="replace")
    if how == "json":
        return json.loads(data)
    if how == "msgpack":
        return msgpack.unpackb(data, raw=False)
    raise ValueError(f"decode must be None, 'bytes', 'text', 'json' or 'msgpack' (got {how!r})")


def _config_head(path: Optional[str]) -> Optional[str]:
    """`head = ...` from a zgrid config file (the CLI's --config format): one
    endpoint, several separated by commas, or a list ["tcp://a:5555", ...]."""
    path = path or os.environ.get("ZGRID_CONFIG")
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep and key.strip() == "head":
                value = value.strip()
                if value.startswith("[") and value.endswith("]"):
                    value = value[1:-1]
                return ",".join(v.strip().strip('"').strip("'") for v in value.split(",") if v.strip())
    return None


def _heads(head: Any) -> Optional[str]:
    """A head argument as the library takes it: a list or tuple of endpoints
    becomes one comma-separated string."""
    if head is None or isinstance(head, str):
        return head
    if isinstance(head, (list, tuple)) and all(isinstance(h, str) for h in head):
        return ",".join(head)
    raise TypeError("head must be an endpoint string, or a list or tuple of them")


def _read_key(path: str, want: str) -> str:
    """The Z85 key in a zgrid keygen file (public-key / secret-key lines)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep and key.strip() == want:
                return value.strip().strip('"')
    raise Error(f"no {want} in {path}")

def open_connection(head: Any = None, key: Optional[str] = None, head_key: Optional[str] = None,
                    config: Optional[str] = None, timeout: float = 10.0) -> "_zgrid.Connection":
    """A connection of the calling thread, found as zgrid.connect finds it."""
    head = _heads(head) or os.environ.get("ZGRID_HEAD") or _config_head(config) or DEFAULT_HEAD
    key = key or os.environ.get("ZGRID_KEY")
    head_key = head_key or os.environ.get("ZGRID_HEAD_KEY")
    pub = sec = hk = ""
    if key or head_key:
        if not (key and head_key):
            raise Error("CURVE needs both key= (this client's key file) and head_key=")
        pub = _read_key(key, "public-key")
        sec = _read_key(key, "secret-key")
        hk = _read_key(head_key, "public-key")
    return _zgrid.Connection(head, timeout, hk, pub, sec)
