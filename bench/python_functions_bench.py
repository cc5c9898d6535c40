#!/usr/bin/env python3
"""Python functions on the grid against their peers, in one run (issue 30).

    PYTHONPATH=build/python /usr/bin/python3 bench/python_functions_bench.py [--quick]

Measures on this machine, medians over --runs runs (3), every result
checked outside the timed region:

  1. A no-op function (returns its argument), N calls
       - submit: N futures one call at a time, then every result gathered
       - map: map(fn, range(N), chunksize=1000) (Dask: client.map, which
         has no chunks)
     through zgrid.Executor (a zgrid-head and one zgrid-node with
     `--python PYTHON --python-workers 2`), Dask distributed
     (LocalCluster(n_workers=2, threads_per_worker=1, processes=True)) and
     concurrent.futures.ProcessPoolExecutor(2), with the ratios the goals
     name (zgrid submit >= 10x Dask, zgrid map >= 0.8x ProcessPoolExecutor).
  2. The node's own cost per Python task: zgrid-node's CPU time
     (utime+stime of /proc/PID/stat) over the stream of single-call no-op
     tasks of (1), divided by the tasks; beside it the Python workers' CPU
     per task, and the head's.
  3. A 1 ms CPU-bound function on every core: N calls of a busy loop of
     about 1 ms, through map(chunksize=20) (the sweep a user runs), submit
     one call at a time and map(chunksize=1), ProcessPoolExecutor(cores)
     and a plain loop per core (no executor) beside them, interleaved in
     rounds. The figure, "of ideal": the CPU time the calls themselves used
     over cores x wall, the share of the machine that ran the function
     (this VM's speed drifts by tens of percent between minutes; it moves
     both alike). Beside it: against a calibration made once at the start,
     and the wall time inside a call.

--quick: small N, one run (the test suite's smoke run). --skip-dask: without
the Dask peer. --markdown: the table as docs/benchmarks.md shows it.
ZGRID_BIN_DIR: where zgrid-head and zgrid-node are (default build/).
"""

import argparse
import concurrent.futures as cf
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("ZGRID_BIN_DIR", os.path.join(ROOT, "build"))
CORES = os.cpu_count() or 1
TICK = os.sysconf("SC_CLK_TCK")


# ---- the functions every peer runs (module level: ProcessPoolExecutor pickles by name) ----


# The 1 ms figure's sweep: calls per request of map (the grid's and the
# stdlib's cost per request spread over this many 1 ms calls).
CPU_CHUNK = 20


def noop(x):
    return x


def busy(n):
    """A CPU-bound loop of n steps; returns n (the check), its own wall time
    and the CPU time its thread spent in it."""
    t0 = time.perf_counter()
    c0 = time.thread_time()
    acc = 0
    for i in range(n):
        acc += i * i
    assert acc >= 0
    return n, time.perf_counter() - t0, time.thread_time() - c0


def calibrate_busy(target_s=0.001):
    """Steps of busy() that take target_s on an idle core, and their time.

    Other processes on a shared machine only ever make a run slower, so the
    time is the fastest of 20 batches' medians (20 calls each): what one
    call costs when it has a core to itself, the ideal the efficiency is
    measured against."""
    def uncontended(n):
        return min(statistics.median(busy(n)[1] for _ in range(20)) for _ in range(20))

    n = 1000
    while True:
        _, t, _ = busy(n)
        if t > 0.0002:
            break
        n *= 2
    n = int(n * target_s / t)
    for _ in range(2):
        n = max(1, int(n * target_s / uncontended(n)))
    return n, uncontended(n)


# ---- process CPU from /proc ------------------------------------------------------------


def cpu_seconds(pid):
    """utime+stime of a process (seconds); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return 0.0


def switches(pid):
    """Context switches (voluntary and not) of every thread of a process."""
    n = 0
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/status") as f:
                n += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
    except OSError:
        pass
    return n


def children(pid):
    """The PIDs whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


class CpuMeter:
    """CPU seconds spent by named processes (and a process's children)
    between start() and stop()."""

    def __init__(self, pids, children_of=None):
        self.pids = dict(pids)  # name -> pid
        self.children_of = children_of

    def _read(self):
        r = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        r.update({name + " switches": switches(pid) for name, pid in self.pids.items()})
        if self.children_of is not None:
            kids = children(self.children_of)
            r["workers"] = sum(cpu_seconds(k) for k in kids)
            r["_kids"] = tuple(sorted(kids))
        return r

    def start(self):
        self.before = self._read()

    def stop(self):
        after = self._read()
        if self.children_of is not None and after["_kids"] != self.before["_kids"]:
            raise RuntimeError(
                "the node's Python workers changed during the measurement "
                f"({self.before['_kids']} -> {after['_kids']}): their CPU cannot be compared")
        return {k: after[k] - self.before[k] for k in after if not k.startswith("_")}


# ---- the measurements, one peer at a time ----------------------------------------------


def check(got, want, what):
    if got != want:
        bad = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        raise AssertionError(f"{what}: wrong results (first difference at {bad}; "
                             f"{len(got)} results for {len(want)} calls)")


def run_submit(submit, gather, n):
    """N single calls, then every result: tasks per second (checked after the clock)."""
    t0 = time.perf_counter()
    futures = [submit(noop, i) for i in range(n)]
    results = gather(futures)
    wall = time.perf_counter() - t0
    check(list(results), list(range(n)), "submit")
    return n / wall


def run_map(map_fn, n):
    t0 = time.perf_counter()
    results = list(map_fn(noop, range(n)))
    wall = time.perf_counter() - t0
    check(results, list(range(n)), "map")
    return n / wall


def run_cpu(runner, steps, n, one_call_s, cores):
    """N calls of busy(steps): (efficiency against the calibrated time, the
    mean wall time inside a call, the share of the cores' time the calls'
    own CPU filled). The last is the figure: this VM's speed drifts by tens
    of percent between minutes, and it moves the calls' CPU time and the
    wall time together, so their ratio stays what the executor costs."""
    t0 = time.perf_counter()
    results = runner(steps, n)
    wall = time.perf_counter() - t0
    if len(results) != n or any(r[0] != steps for r in results):
        raise AssertionError("busy: wrong results")
    inside = statistics.mean(r[1] for r in results)
    used = sum(r[2] for r in results) / (cores * wall)
    return (n * one_call_s / cores) / wall, inside, used


def median_of(runs, fn):
    values = [fn() for _ in range(runs)]
    if isinstance(values[0], tuple):
        return tuple(statistics.median(v[i] for v in values) for i in range(len(values[0])))
    return statistics.median(values)


class ZgridGrid:
    """A zgrid-head and one zgrid-node with Python workers on loopback."""

    def __init__(self, python, workers, tmp):
        self.tmp = tmp
        ep = os.path.join(tmp, "endpoints")
        self.head = subprocess.Popen(
            [os.path.join(BIN, "zgrid-head"), "--endpoints-file", ep, "--frontend",
             "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0", "--http", "off",
             "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "head.log"), "w"))
        deadline = time.monotonic() + 10
        while not (os.path.exists(ep) and "pid=" in open(ep).read()):
            if time.monotonic() > deadline or self.head.poll() is not None:
                raise RuntimeError("zgrid-head did not start")
            time.sleep(0.02)
        fields = dict(line.strip().split("=", 1) for line in open(ep) if "=" in line)
        self.frontend = fields["frontend"]
        node = [os.path.join(BIN, "zgrid-node"), "--head", fields["backend"], "--workers",
                str(workers), "--log-level", "warn"]
        help_text = subprocess.run(node[:1] + ["--help"], capture_output=True, text=True).stdout
        if "--python-workers" in help_text:
            self.how = f"zgrid-node --python {python} --python-workers {workers}"
            node += ["--python", python, "--python-workers", str(workers)]
        else:  # until the node has --python: the worker registered as an exec service
            reg = os.path.join(tmp, "services.d")
            os.mkdir(reg)
            worker = os.path.join(ROOT, "python", "zgrid", "_worker.py")
            with open(os.path.join(reg, "python.toml"), "w") as f:
                f.write(f'name = "python"\nversion = "1"\nprogram = "{python}"\n'
                        f'args = ["{worker}"]\noperations = ["call"]\nconcurrency = {workers}\n')
            self.how = f"zgrid-node --services-dir (python = {python} _worker.py, concurrency {workers})"
            node += ["--services-dir", reg]
        self.node = subprocess.Popen(node, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(tmp, "node.log"), "w"))

    def logs(self):
        text = ""
        for name in ("head.log", "node.log"):
            with open(os.path.join(self.tmp, name)) as f:
                text += f"--- {name} (last lines)\n" + "".join(f.readlines()[-20:])
        return text

    def executor(self):
        import zgrid

        deadline = time.monotonic() + 20
        grid = zgrid.connect(self.frontend)
        while not any("python" in str(n.get("services", "")) for n in grid.nodes()):
            if time.monotonic() > deadline or self.node.poll() is not None:
                raise RuntimeError("zgrid-node with Python workers did not register")
            time.sleep(0.05)
        return zgrid.Executor(head=self.frontend)

    def close(self):
        for p in (self.node, self.head):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (self.node, self.head):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def warm(submit, gather, workers):
    """Every worker up and holding the functions before the clock starts."""
    gather([submit(noop, i) for i in range(20 * workers)])
    gather([submit(busy, 10) for _ in range(4 * workers)])


def measure_zgrid(a, steps, one_call_s, out):
    with tempfile.TemporaryDirectory(prefix="zgrid-pyfn-bench-") as tmp:
        grid = ZgridGrid(a.python, CORES, tmp)
        try:
            ex = grid.executor()
            try:
                gather = lambda fs: [f.result() for f in fs]  # noqa: E731
                warm(ex.submit, gather, CORES)
                out["how"] = grid.how
                meter = CpuMeter({"node": grid.node.pid, "head": grid.head.pid},
                                 children_of=grid.node.pid)
                costs = []

                def one_submit_run():
                    meter.start()
                    rate = run_submit(ex.submit, gather, a.n_submit)
                    costs.append(meter.stop())
                    return rate

                out["zgrid submit"] = median_of(a.runs, one_submit_run)
                for who in ("node", "workers", "head"):
                    out[f"{who} us/task"] = statistics.median(c[who] for c in costs) / a.n_submit * 1e6
                for who in ("node", "head"):
                    out[f"{who} switches/task"] = statistics.median(
                        c[who + " switches"] for c in costs) / a.n_submit
                out["zgrid map"] = median_of(
                    a.runs, lambda: run_map(lambda f, it: ex.map(f, it, chunksize=1000), a.n_map))
                measure_cpu(a, steps, one_call_s, out, ex, meter)
            finally:
                ex.shutdown()
        except BaseException:
            sys.stderr.write(grid.logs())
            raise
        finally:
            grid.close()


def measure_ppe(a, steps, one_call_s, out):
    with cf.ProcessPoolExecutor(CORES) as ex:
        gather = lambda fs: [f.result() for f in fs]  # noqa: E731
        warm(ex.submit, gather, CORES)
        out["ppe submit"] = median_of(a.runs, lambda: run_submit(ex.submit, gather, a.n_submit))
        out["ppe map"] = median_of(
            a.runs, lambda: run_map(lambda f, it: ex.map(f, it, chunksize=1000), a.n_map))


def _bare_loop(steps, n, q):
    q.put([busy(steps) for _ in range(n)])


def bare_loops(steps, n):
    """The calls in one plain loop per core, no executor at all."""
    import multiprocessing as mp

    q = mp.Queue()
    per = [n // CORES + (1 if i < n % CORES else 0) for i in range(CORES)]
    ps = [mp.Process(target=_bare_loop, args=(steps, k, q)) for k in per]
    for p in ps:
        p.start()
    got = [r for _ in ps for r in q.get()]
    for p in ps:
        p.join()
    return got


def measure_cpu(a, steps, one_call_s, out, zex=None, meter=None):
    """The 1 ms CPU-bound figure: rounds, each running the plain loop per
    core (the ideal's check: about 100%) and then every executor, the
    median of each over the rounds (run_cpu says what the figure is)."""
    gather = lambda fs: [f.result() for f in fs]  # noqa: E731
    cases = []
    if zex is not None:
        cases += [
            ("zgrid cpu chunks", lambda s, n: list(zex.map(busy, [s] * n, chunksize=CPU_CHUNK))),
            ("zgrid cpu submit", lambda s, n: gather([zex.submit(busy, s) for _ in range(n)])),
            ("zgrid cpu map", lambda s, n: list(zex.map(busy, [s] * n, chunksize=1))),
        ]
    runs = {k: [] for k in ["bare cpu"] + [c[0] for c in cases] + ["ppe cpu chunks", "ppe cpu map"]}
    cpu_costs = []
    with cf.ProcessPoolExecutor(CORES) as pex:
        warm(pex.submit, gather, CORES)
        cases += [
            ("ppe cpu chunks", lambda s, n: list(pex.map(busy, [s] * n, chunksize=CPU_CHUNK))),
            ("ppe cpu map", lambda s, n: list(pex.map(busy, [s] * n, chunksize=1))),
        ]
        for _ in range(max(a.runs, 3) if not a.quick else 1):
            runs["bare cpu"].append(run_cpu(bare_loops, steps, a.n_cpu, one_call_s, CORES))
            for key, fn in cases:
                if key == "zgrid cpu submit" and meter is not None:
                    meter.start()
                    c0 = time.process_time()
                figures = run_cpu(fn, steps, a.n_cpu, one_call_s, CORES)
                if key == "zgrid cpu submit" and meter is not None:
                    cost = meter.stop()
                    cost["client"] = time.process_time() - c0
                    cpu_costs.append(cost)
                runs[key].append(figures)
    for key, values in runs.items():
        if values:
            out[key] = tuple(statistics.median(v[i] for v in values) for i in range(3))
    if cpu_costs:
        for who in ("node", "head", "client"):
            out[f"{who} us/1ms task"] = statistics.median(c[who] for c in cpu_costs) / a.n_cpu * 1e6
        for who in ("node", "head"):
            out[f"{who} switches/1ms task"] = statistics.median(
                c[who + " switches"] for c in cpu_costs) / a.n_cpu



def measure_dask(a, out):
    # Its workers' processes log their shutdown as errors: quiet.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("python_functions_bench: Dask distributed is not installed (python3-distributed): "
              "its peer figures are left out", file=sys.stderr)
        return

    for name in ("distributed", "tornado", "bokeh"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with LocalCluster(n_workers=CORES, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        submit = lambda f, x: client.submit(f, x, pure=False)  # noqa: E731
        warm(submit, client.gather, CORES)
        out["dask submit"] = median_of(a.runs, lambda: run_submit(submit, client.gather, a.n_dask))
        out["dask map"] = median_of(a.runs, lambda: run_map(
            lambda f, it: client.gather(client.map(f, list(it), pure=False)), a.n_dask))


# ---- report ----------------------------------------------------------------------------


def report(a, r, steps, one_call_s):
    rows = []

    def rate(key):
        return f"{r[key]:,.0f} tasks/s" if key in r else "not run"

    rows.append(("no-op, submit one at a time", "zgrid.Executor", rate("zgrid submit"),
                 f"N={a.n_submit:,}"))
    rows.append(("", "Dask distributed", rate("dask submit"), f"N={a.n_dask:,}"))
    rows.append(("", "ProcessPoolExecutor", rate("ppe submit"), f"N={a.n_submit:,}"))
    rows.append(("no-op, map(chunksize=1000)", "zgrid.Executor", rate("zgrid map"),
                 f"N={a.n_map:,}"))
    rows.append(("", "Dask distributed (client.map)", rate("dask map"), f"N={a.n_dask:,}"))
    rows.append(("", "ProcessPoolExecutor", rate("ppe map"), f"N={a.n_map:,}"))
    if "node us/task" in r:
        rows.append(("CPU per single-call task", "zgrid-node", f"{r['node us/task']:.1f} us",
                     "utime+stime over the submit stream"))
        rows.append(("", "its Python workers", f"{r['workers us/task']:.1f} us", ""))
        rows.append(("", "zgrid-head", f"{r['head us/task']:.1f} us", ""))
        rows.append(("", "context switches per task", "",
                     "node {:.1f}, head {:.1f}".format(r["node switches/task"],
                                                        r["head switches/task"])))
    cpu = f"N={a.n_cpu:,} x {one_call_s * 1e3:.2f} ms on {CORES} cores"
    label = "1 ms CPU-bound, every core"
    for key, who in (("bare cpu", "no executor: a plain loop per core (ideal)"),
                     ("zgrid cpu chunks", f"zgrid.Executor map(chunksize={CPU_CHUNK})"),
                     ("ppe cpu chunks", f"ProcessPoolExecutor map(chunksize={CPU_CHUNK})"),
                     ("zgrid cpu submit", "zgrid.Executor submit"),
                     ("zgrid cpu map", "zgrid.Executor map(chunksize=1)"),
                     ("ppe cpu map", "ProcessPoolExecutor map(chunksize=1)")):
        if key in r:
            eff, inside, used = r[key]
            rows.append((label, who, f"{used * 100:.1f}% of ideal",
                         f"{cpu}; {eff * 100:.1f}% of the calibrated time; "
                         f"{inside * 1e3:.2f} ms inside"))
            label = ""
        if key == "zgrid cpu submit" and "node us/1ms task" in r:
            rows.append(("", "(its CPU per task besides the function)", "",
                         "node {:.0f} us, head {:.0f} us, client {:.0f} us; context switches "
                         "per task: node {:.1f}, head {:.1f}".format(
                             r["node us/1ms task"], r["head us/1ms task"],
                             r["client us/1ms task"], r["node switches/1ms task"],
                             r["head switches/1ms task"])))
    ratios = []
    if "zgrid submit" in r and "dask submit" in r:
        ratios.append(f"submit_vs_dask={r['zgrid submit'] / r['dask submit']:.1f}x (goal >= 10x)")
    if "zgrid map" in r and "dask map" in r:
        ratios.append(f"map_vs_dask={r['zgrid map'] / r['dask map']:.0f}x")
    if "zgrid submit" in r and "ppe submit" in r:
        ratios.append(f"submit_vs_processpool={r['zgrid submit'] / r['ppe submit']:.2f}x")
    if "zgrid map" in r and "ppe map" in r:
        ratios.append(f"map_vs_processpool={r['zgrid map'] / r['ppe map']:.2f}x (goal >= 0.8x)")
    if "node us/task" in r:
        ratios.append(f"node_us_per_task={r['node us/task']:.1f} (goal <= 20)")
    if "zgrid cpu chunks" in r:
        ratios.append(f"cpu_efficiency={r['zgrid cpu chunks'][2] * 100:.1f}% (goal >= 90%, "
                      f"map chunksize={CPU_CHUNK})")
    if "zgrid cpu submit" in r:
        ratios.append(f"cpu_efficiency_single_calls={r['zgrid cpu submit'][2] * 100:.1f}%")
    if "zgrid cpu submit" in r and "ppe cpu map" in r:
        ratios.append(f"cpu_vs_processpool={r['zgrid cpu submit'][2] / r['ppe cpu map'][2]:.2f}x")
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    head = (f"python_functions_bench: {CORES} cores (load {load} at the end), "
            f"Python {sys.version.split()[0]}, "
            f"median of {a.runs} run(s); busy loop {steps} steps = {one_call_s * 1e3:.3f} ms; "
            f"grid: {r.get('how', 'not run')}")
    if a.markdown:
        print(head + "\n")
        print("| what | who | result | |\n|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        print(head)
        for row in rows:
            print(f"  {row[0]:<30} {row[1]:<38} {row[2]:>20}  {row[3]}")
    print("ratios: " + " ".join(ratios))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small N, one run (smoke)")
    p.add_argument("--runs", type=int, default=None, help="runs per figure (default 3; 1 with --quick)")
    p.add_argument("--python", default="/usr/bin/python3", help="the nodes' Python")
    p.add_argument("--n-submit", type=int, default=None)
    p.add_argument("--n-map", type=int, default=None)
    p.add_argument("--n-dask", type=int, default=None)
    p.add_argument("--n-cpu", type=int, default=None)
    p.add_argument("--skip-dask", action="store_true")
    p.add_argument("--skip-zgrid", action="store_true")
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args()
    q = a.quick
    a.runs = a.runs or (1 if q else 3)
    a.n_submit = a.n_submit or (1_000 if q else 30_000)
    a.n_map = a.n_map or (20_000 if q else 1_000_000)
    a.n_dask = a.n_dask or (200 if q else 3_000)
    a.n_cpu = a.n_cpu or (200 if q else 4_000)

    steps, one_call_s = calibrate_busy()
    r = {}
    if not a.skip_zgrid:
        measure_zgrid(a, steps, one_call_s, r)
    measure_ppe(a, steps, one_call_s, r)
    if a.skip_zgrid:
        measure_cpu(a, steps, one_call_s, r)
    if not a.skip_dask:
        measure_dask(a, r)
    report(a, r, steps, one_call_s)


if __name__ == "__main__":
    main()
