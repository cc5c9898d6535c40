#!/usr/bin/python3
"""An exec-bridge service in Python: `pystats` (docs/services.md).

Operations:
  stats  request: a msgpack array of numbers (or text: numbers separated by
         spaces or commas); result: a msgpack map {"n", "mean", "stddev",
         "min", "max"}.
  echo   the request, unchanged.

Registered by examples/services.d/pystats.toml.
"""
import math
import os
import sys

import msgpack

try:
    from zgrid.service import serve  # the installed zgrid package
except ImportError:  # running from the source tree: python/ is two folders up
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "python"))
    from zgrid.service import serve  # noqa: E402


def numbers(payload):
    if payload[:1] and (0x90 <= payload[0] <= 0x9F or payload[0] in (0xDC, 0xDD)):
        values = msgpack.unpackb(payload, raw=False)
    else:
        values = payload.decode().replace(",", " ").split()
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError("stats takes a list of numbers")


def stats(payload):
    xs = numbers(payload)
    if not xs:
        raise ValueError("stats takes at least one number")
    n = len(xs)
    mean = math.fsum(xs) / n
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    return msgpack.packb(
        {"n": n, "mean": mean, "stddev": math.sqrt(var), "min": min(xs), "max": max(xs)}
    )


if __name__ == "__main__":
    serve({"stats": stats, "echo": lambda p: p}, default_operation="stats")
