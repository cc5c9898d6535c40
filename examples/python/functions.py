#!/usr/bin/env python3
"""Any Python function on the grid: zgrid.Executor, the concurrent.futures contract.

Needs nodes started with --python (scripts/grid-local.sh up does it) and
python3-cloudpickle. ZGRID_HEAD names the head (default tcp://127.0.0.1:5555)."""

import concurrent.futures as cf
import math
import sys

import zgrid


def simulate(p):
    """A stand-in for a parameter sweep's model."""
    x, y = p
    return sum(math.sin(x * i) * math.cos(y * i) for i in range(1000))


class Diverged(Exception):
    pass


def checked(p):
    if p[0] >= 0.9:
        raise Diverged(f"diverged at {p}")
    return simulate(p)


params = [(i / 10, j / 10) for i in range(10) for j in range(10)]
with zgrid.Executor() as ex:
    results = list(ex.map(simulate, params, chunksize=10))
    print(f"{len(results)} results, max {max(results):.3f}")
    futures = {ex.submit(checked, p): p for p in params[-12:]}
    for f in cf.as_completed(futures):
        try:
            f.result()
        except Diverged as e:  # the function's own exception, its remote traceback as __cause__
            print("diverged:", e, file=sys.stderr)
