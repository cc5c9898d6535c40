#!/usr/bin/env python3
"""A service's requests as futures (grid.executor): submit, as_completed, one fault on its own future.

For Python functions, zgrid.Executor (examples/python/functions.py)."""

import concurrent.futures as cf
import sys

import zgrid

numbers = [2**31 - 1, 600851475143, 1001, 97, 12]
with zgrid.connect().executor("factorize", decode="text") as ex:
    futures = {ex.submit(str(n)): n for n in numbers}
    futures[ex.submit("not a number")] = None
    for f in cf.as_completed(futures):
        try:
            print(futures[f], "=", f.result())
        except zgrid.RequestFault as e:
            print("fault:", e.code, file=sys.stderr)
