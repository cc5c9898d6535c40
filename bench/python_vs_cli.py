#!/usr/bin/env python3
"""Python's throughput against the zgrid CLI's, on the same numbers, in one run.

    PYTHONPATH=build/python python3 bench/python_vs_cli.py [N] [ROUNDS]

Starts a durable head and one node (2 workers) on loopback ephemeral ports,
writes N random 31-bit numbers (default 1,000,000; seed 7), then per round,
alternating: the CLI (`zgrid submit --file`, interactive; `zgrid submit
--durable` + `zgrid fetch`) and Python (`grid.map`, interactive; a durable
session: send_many, commit, iterate results). Prints each run and the
median ratio Python / CLI for both (docs/benchmarks.md, issue 15).
"""

import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import zgrid

BIN = os.environ.get("ZGRID_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "build"))


def start(tmp):
    ep = os.path.join(tmp, "endpoints")
    head = subprocess.Popen(
        [os.path.join(BIN, "zgrid-head"), "--endpoints-file", ep, "--frontend", "tcp://127.0.0.1:0",
         "--backend", "tcp://127.0.0.1:0", "--data-dir", os.path.join(tmp, "data"),
         "--log-level", "warn"])
    deadline = time.monotonic() + 20
    while not os.path.exists(ep):
        if time.monotonic() > deadline:
            raise SystemExit("the head did not start")
        time.sleep(0.02)
    f = dict(line.strip().split("=", 1) for line in open(ep) if "=" in line)
    node = subprocess.Popen([os.path.join(BIN, "zgrid-node"), "--head", f["backend"], "--workers", "2",
                             "--log-level", "warn"])
    with zgrid.connect(f["frontend"]) as g:
        while len(g.nodes()) < 1:
            time.sleep(0.02)
    return head, node, f["frontend"]


def cli(front, *args, stdout=subprocess.DEVNULL):
    r = subprocess.run([os.path.join(BIN, "zgrid"), "--head", front, *args], stdout=stdout,
                       stderr=subprocess.PIPE, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"zgrid {' '.join(args)}: {r.stderr.strip()}")
    return r


def run(label, fn, n, results):
    t0 = time.perf_counter()
    fn()
    s = time.perf_counter() - t0
    results.setdefault(label, []).append(n / s)
    print(f"{label:28s} {n / s:12,.0f} req/s", flush=True)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory(prefix="zgrid-pybench-") as tmp:
        rng = random.Random(7)
        numbers = [str(rng.randrange(1, 2**31)) for _ in range(n)]
        path = os.path.join(tmp, "numbers.txt")
        with open(path, "w") as f:
            f.write("\n".join(numbers) + "\n")
        head, node, front = start(tmp)
        results = {}
        try:
            grid = zgrid.connect(front)

            def cli_interactive():
                cli(front, "submit", "--service", "factorize", "--file", path)

            def cli_durable():
                r = cli(front, "submit", "--service", "factorize", "--durable", "--file", path,
                        stdout=subprocess.PIPE)
                sid = r.stdout.split()[-1] if r.stdout.strip() else r.stderr.split()[2]
                cli(front, "fetch", sid)

            def py_interactive():
                got = sum(1 for _ in grid.map("factorize", numbers))
                assert got == n

            def py_durable():
                s = grid.session("factorize", durable=True)
                s.send_many(numbers)
                s.commit()
                got = sum(1 for _ in s.results())
                assert got == n

            for _ in range(rounds):
                run("cli interactive", cli_interactive, n, results)
                run("python interactive", py_interactive, n, results)
                run("cli durable", cli_durable, n, results)
                run("python durable", py_durable, n, results)
        finally:
            for p in (node, head):
                p.send_signal(signal.SIGTERM)
                p.wait(10)
        med = {k: statistics.median(v) for k, v in results.items()}
        for kind in ("interactive", "durable"):
            print(f"python / cli, {kind}: {med['python ' + kind] / med['cli ' + kind]:.2f} "
                  f"({med['python ' + kind]:,.0f} / {med['cli ' + kind]:,.0f} req/s, medians of {rounds})")


if __name__ == "__main__":
    main()
