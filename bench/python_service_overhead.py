#!/usr/bin/env python3
"""A Python service's cost per request on the grid, beside the same function
called in a plain loop, in one run.

    PYTHONPATH=build/python python3 bench/python_service_overhead.py [N]

Starts a head and one node whose services directory registers
tests/python/square_service.py (the decorator example) with concurrency 1,
so one Python worker process serves every request. Times N requests through
grid.map (interactive), and the same N calls of square() in this process,
and prints both per request (docs/benchmarks.md, issue 15), once with the
registration as it was (one request at a time on the pipe) and once with
`pipeline = true` (issue 30: several requests written ahead).
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

import zgrid

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("ZGRID_BIN_DIR", os.path.join(HERE, "..", "build"))
SERVICE = os.path.join(HERE, "..", "tests", "python", "square_service.py")


def run_grid(inputs, pipeline):
    """Seconds per request through grid.map with one worker process, its
    registration with `pipeline = true` or without."""
    n = len(inputs)
    with tempfile.TemporaryDirectory(prefix="zgrid-svcbench-") as tmp:
        reg = os.path.join(tmp, "services.d")
        os.mkdir(reg)
        with open(os.path.join(reg, "pysquare.toml"), "w") as f:
            f.write(f'name = "pysquare"\nversion = "1"\nprogram = "{os.path.abspath(SERVICE)}"\n'
                    f'operations = ["square", "neg"]\nconcurrency = 1\n'
                    f'pipeline = {"true" if pipeline else "false"}\n'
                    f'env = ["PYTHONPATH={os.environ.get("PYTHONPATH", "")}"]\n')
        ep = os.path.join(tmp, "endpoints")
        head = subprocess.Popen([os.path.join(BIN, "zgrid-head"), "--endpoints-file", ep,
                                 "--frontend", "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0",
                                 "--log-level", "warn"])
        while not os.path.exists(ep):
            time.sleep(0.02)
        fields = dict(line.strip().split("=", 1) for line in open(ep) if "=" in line)
        node = subprocess.Popen([os.path.join(BIN, "zgrid-node"), "--head", fields["backend"],
                                 "--services-dir", reg, "--log-level", "warn"])
        try:
            grid = zgrid.connect(fields["frontend"])
            while not any("pysquare" in x["services"] for x in grid.nodes()):
                time.sleep(0.05)
            list(grid.map("pysquare", inputs[:1000]))  # the worker is up and warm
            t0 = time.perf_counter()
            got = [int(r) for r in grid.map("pysquare", inputs)]
            seconds = (time.perf_counter() - t0) / n
            assert got == [int(p) ** 2 for p in inputs]
        finally:
            for p in (node, head):
                p.send_signal(signal.SIGTERM)
                p.wait(10)
    return seconds


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    sys.path.insert(0, os.path.dirname(SERVICE))
    import square_service  # the same function, called directly

    inputs = [str(i % 1000 + 14) for i in range(n)]  # never 13 (it raises)
    t0 = time.perf_counter()
    for p in inputs:
        square_service.square(p.encode())
    plain = (time.perf_counter() - t0) / n

    on_grid = {}
    for pipeline in (False, True):
        on_grid[pipeline] = run_grid(inputs, pipeline)
    print(f"plain loop          {plain * 1e6:8.2f} us/request")
    for pipeline, label in ((False, "one at a time"), (True, "pipeline = true")):
        t = on_grid[pipeline]
        print(f"through the grid    {t * 1e6:8.2f} us/request (1 worker process, {label}): "
              f"overhead {(t - plain) * 1e6:.2f} us/request, {1 / t:,.0f} requests/s")

if __name__ == "__main__":
    main()
