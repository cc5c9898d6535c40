"""Issue 30: zgrid.Executor runs any Python function on the grid with the
concurrent.futures contract (service `python`, python/zgrid/_worker.py).
Real head and node processes (conftest.LocalGrid); the nodes run the
worker with `zgrid-node --python /usr/bin/python3`."""

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import cloudpickle
import pytest
import zgrid
from conftest import LocalGrid, wait_until

# This module is not importable on the nodes: its functions and classes
# travel by value (what a user's own module needs too; docs/python.md).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PYTHON = "/usr/bin/python3"
WAIT = 60  # bound of every wait on a result (seconds): a loaded machine, never a hang


def make_grid(tmp, nodes=1, **kw):
    return LocalGrid(tmp, nodes=nodes, workers=2, node_args=["--python", PYTHON], **kw)


@pytest.fixture
def pygrid():
    with tempfile.TemporaryDirectory(prefix="zgrid-fn-") as tmp:
        g = make_grid(tmp)
        try:
            yield g
        finally:
            g.stop()


@pytest.fixture
def ex(pygrid):
    with zgrid.Executor(head=pygrid.frontend) as e:
        yield e


# ---- functions, as ProcessPoolExecutor takes them ----------------------------------


def add(a, b=0, *, c=0):
    return a + b + c


class Odd(Exception):
    pass


class WithData(Exception):
    def __init__(self, code, detail):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


class Unpicklable(Exception):
    def __init__(self, msg):
        super().__init__(msg)

    def __reduce__(self):
        raise TypeError("cannot pickle this one")


def raise_(kind, x):
    if kind == "value":
        raise ValueError(f"bad value {x}")
    if kind == "key":
        return {}[x]
    if kind == "odd":
        raise Odd(x)
    if kind == "data":
        raise WithData(7, {"x": x})
    if kind == "unpicklable":
        raise Unpicklable(f"no way {x}")
    return x


def wait_for_file(path, value):
    """Blocks (bounded) until `path` exists: a call that stays running."""
    import os
    import time

    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return value


def test_plain_functions_lambdas_closures_and_builtins(ex):
    k = 10

    def closure(x):
        return x * k

    assert ex.submit(add, 1, 2, c=3).result(WAIT) == 6
    assert ex.submit(lambda x: x ** 2, 7).result(WAIT) == 49
    assert ex.submit(closure, 4).result(WAIT) == 40
    assert ex.submit(pow, 2, 10).result(WAIT) == 1024
    assert ex.submit(add, a=1, b=1).result(WAIT) == 2
    # A lambda as an argument, a set and bytes as results.
    assert ex.submit(lambda f, x: f(x), lambda y: {y, b"b"}, "a").result(WAIT) == {"a", b"b"}
    fs = [ex.submit(closure, i) for i in range(500)]
    assert [f.result(WAIT) for f in fs] == [i * 10 for i in range(500)]
    assert isinstance(ex, cf.Executor)


def test_map_several_iterables_chunksize_and_laziness(ex):
    assert list(ex.map(add, [1, 2, 3], [10, 20, 30, 40])) == [11, 22, 33]  # zip: the shortest
    want = [i * i for i in range(1000)]
    for chunksize in (1, 7, 1000, 5000):
        assert list(ex.map(lambda x: x * x, range(1000), chunksize=chunksize)) == want
    assert list(ex.map(add, [], [])) == []
    with pytest.raises(ValueError):
        ex.map(add, [1], chunksize=0)
    # The iterables are read at the call, as the standard library does.
    it = iter(range(5))
    results = ex.map(add, it)
    assert list(it) == []
    assert list(results) == [0, 1, 2, 3, 4]
    # A function that raises: map raises it when its result is reached.
    results = ex.map(raise_, ["x", "x", "value", "x"], [1, 2, 3, 4])
    assert next(results) == 1 and next(results) == 2
    with pytest.raises(ValueError, match="bad value 3"):
        next(results)


def test_map_and_result_time_out(pygrid, ex, tmp_path):
    gate = str(tmp_path / "open")
    with pytest.raises(cf.TimeoutError):
        list(ex.map(wait_for_file, [gate] * 3, [1, 2, 3], timeout=0.3))
    f = ex.submit(wait_for_file, gate, "late")
    with pytest.raises(cf.TimeoutError):
        f.result(timeout=0.2)
    open(gate, "w").close()
    assert f.result(WAIT) == "late"


def test_as_completed_and_wait_with_every_return_when(ex, tmp_path):
    gate = str(tmp_path / "open")
    slow = ex.submit(wait_for_file, gate, "slow")
    quick = [ex.submit(add, i, 1) for i in range(20)]
    done, pending = cf.wait(quick + [slow], timeout=WAIT, return_when=cf.FIRST_COMPLETED)
    assert done and slow in pending
    bad = ex.submit(raise_, "odd", 1)
    done, pending = cf.wait([slow, bad], timeout=WAIT, return_when=cf.FIRST_EXCEPTION)
    assert done == {bad} and pending == {slow}
    assert sorted(f.result() for f in cf.as_completed(quick, timeout=WAIT)) == list(range(1, 21))
    open(gate, "w").close()
    done, pending = cf.wait(quick + [slow, bad], timeout=WAIT, return_when=cf.ALL_COMPLETED)
    assert not pending and slow.result() == "slow"


def test_remote_exceptions_keep_their_type_and_traceback(ex):
    with pytest.raises(ValueError, match="bad value 5") as e:
        ex.submit(raise_, "value", 5).result(WAIT)
    cause = e.value.__cause__
    assert isinstance(cause, zgrid.RemoteTraceback)
    assert "Traceback" in str(cause) and "raise_" in str(cause) and "bad value 5" in str(cause)
    with pytest.raises(KeyError):
        ex.submit(raise_, "key", "missing").result(WAIT)
    # A class of this (not importable) module comes back as the very same class.
    with pytest.raises(Odd) as e:
        ex.submit(raise_, "odd", 3).result(WAIT)
    assert type(e.value) is Odd and e.value.args == (3,)
    with pytest.raises(WithData) as e:
        ex.submit(raise_, "data", 4).result(WAIT)
    assert (e.value.code, e.value.detail) == (7, {"x": 4})
    # One that cannot travel: a zgrid error naming its type and message.
    with pytest.raises(zgrid.RemoteError) as e:
        ex.submit(raise_, "unpicklable", 9).result(WAIT)
    assert "Unpicklable" in str(e.value) and "no way 9" in str(e.value)
    assert isinstance(e.value, zgrid.Error) and "raise_" in str(e.value.__cause__)
    # An exception raised inside a lambda, from the standard library.
    with pytest.raises(ZeroDivisionError):
        ex.submit(lambda: 1 / 0).result(WAIT)
    assert ex.submit(add, 1).result(WAIT) == 1  # the worker goes on


def test_request_faults_and_limits(pygrid, ex, tmp_path):
    # A function of a module the node lacks (imported here by reference).
    (tmp_path / "only_here_mod.py").write_text("def f(x):\n    return x + 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import only_here_mod

        assert only_here_mod.f(1) == 2
        with pytest.raises(zgrid.RequestFault) as e:
            ex.submit(only_here_mod.f, 1).result(WAIT)
        assert e.value.code == "service_error" and "only_here_mod" in e.value.message
    finally:
        sys.path.remove(str(tmp_path))
    # A call over the payload limit: refused at submit, nothing sent.
    with pytest.raises(zgrid.InvalidRequest, match="1048576-byte payload limit"):
        ex.submit(len, b"x" * (2 << 20))
    with pytest.raises(zgrid.InvalidRequest, match="payload limit"):
        ex.map(len, [bytes([i]) * (300 << 10) for i in range(8)], chunksize=8)
    # A result over the limit: that call's fault, naming the limit.
    with pytest.raises(zgrid.RequestFault, match="limit"):
        ex.submit(bytes, 2 << 20).result(WAIT)
    assert ex.submit(len, b"x" * (900 << 10)).result(WAIT) == 900 << 10


def test_cancel_and_shutdown_cancel_futures_while_work_is_queued(pygrid, tmp_path):
    gate = str(tmp_path / "open")
    ex = zgrid.Executor(head=pygrid.frontend, window=2)
    running = [ex.submit(wait_for_file, gate, i) for i in range(2)]
    queued = [ex.submit(add, i) for i in range(10)]
    wait_until(lambda: all(f.running() for f in running), timeout=WAIT, what="two calls sent")
    assert queued[0].cancel() and queued[0].cancelled()
    assert not running[0].cancel()  # sent: it runs
    ex.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(RuntimeError):
        ex.submit(add, 1)
    open(gate, "w").close()
    ex.shutdown(wait=True)
    assert [f.result(WAIT) for f in running] == [0, 1]
    assert all(f.cancelled() for f in queued)


def test_shutdown_waits_for_everything_and_submit_after_it_raises(pygrid):
    with zgrid.Executor(head=pygrid.frontend) as ex:
        fs = [ex.submit(add, i, 1) for i in range(300)]
    assert all(f.done() for f in fs) and [f.result() for f in fs] == list(range(1, 301))
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(add, 1)
    ex.shutdown()  # again: nothing
    # The window follows the grid: 2 per python worker slot, at least 128.
    assert ex.window == 128


def test_submit_from_threads_and_a_grid_argument(pygrid):
    with zgrid.connect(pygrid.frontend) as grid, zgrid.Executor(grid) as ex:
        with cf.ThreadPoolExecutor(4) as pool:
            outer = [pool.submit(lambda i=i: ex.submit(add, i, i).result(WAIT)) for i in range(40)]
            assert [f.result(WAIT) for f in outer] == [2 * i for i in range(40)]


def test_numpy_arrays_as_arguments_and_results(ex):
    np = pytest.importorskip("numpy", reason="python3-numpy is not installed")
    a = np.arange(12.0).reshape(3, 4)
    out = ex.submit(lambda m: m @ m.T, a).result(WAIT)
    assert isinstance(out, np.ndarray) and np.array_equal(out, a @ a.T)
    sums = list(ex.map(np.sum, [a, a * 2], chunksize=2))
    assert sums == [66.0, 132.0]


def exit_on(x, bad):
    import os

    if x == bad:
        os._exit(3)  # the worker dies mid-task
    return x * 3


def test_a_worker_killed_mid_task_faults_only_that_call(ex):
    fs = [ex.submit(exit_on, i, 7) for i in range(40)]
    for i, f in enumerate(fs):
        if i == 7:
            with pytest.raises(zgrid.RequestFault):
                f.result(WAIT)
        else:
            assert f.result(WAIT) == i * 3
    assert ex.submit(add, 2, 2).result(WAIT) == 4  # replaced: the node serves on


def slow_mark(x, marks):
    import os
    import time

    open(os.path.join(marks, str(x)), "w").close()
    time.sleep(0.02)
    return x + 1000


def test_a_node_killed_mid_map_loses_nothing(tmp_path):
    with tempfile.TemporaryDirectory(prefix="zgrid-fn-") as tmp:
        g = make_grid(tmp, nodes=2)
        try:
            marks = str(tmp_path)
            n = 300
            with zgrid.Executor(head=g.frontend) as ex:
                results = ex.map(slow_mark, range(n), [marks] * n, chunksize=2, timeout=2 * WAIT)
                wait_until(lambda: len(os.listdir(marks)) >= 40, timeout=WAIT, what="calls running")
                node = next(p for p in g.procs if "zgrid-node" in p.args[0])
                node.send_signal(signal.SIGKILL)
                node.wait(10)
                assert list(results) == [i + 1000 for i in range(n)]  # each once, in order
        finally:
            g.stop()


def neg_slowly(gate, x):
    import time

    time.sleep(0.02)
    return wait_for_file(gate, -x)


READER = """
import json, sys, zgrid
grid = zgrid.connect(sys.argv[1], timeout=30)
s = grid.attach(sys.argv[2])
for r in s.results(timeout=60):
    v = r.value if r.ok else type(r.fault).__name__ + ":" + str(r.fault)
    print(json.dumps([r.index, v]), flush=True)
print(json.dumps(["service", s.service]), flush=True)
"""


def test_a_durable_function_session_outlives_the_client_and_head_kills(tmp_path):
    with tempfile.TemporaryDirectory(prefix="zgrid-fn-") as tmp:
        g = make_grid(tmp)
        try:
            gate = str(tmp_path / "open")
            ex = zgrid.Executor(head=g.frontend, durable=True, timeout=30)
            sid = ex.session_id
            singles = [ex.submit(wait_for_file, gate, i) for i in range(5)]  # calls 0..4
            # calls 5..104; 20 ms each: the reader below reads while they run
            chunked = ex.map(neg_slowly, [gate] * 100, range(5, 105), chunksize=10)
            bad = ex.submit(lambda: (wait_for_file(gate, 0), raise_("value", 105)))  # call 105
            assert ex.detach() == sid
            with pytest.raises(zgrid.Error, match=sid):
                singles[0].result(WAIT)
            with pytest.raises(zgrid.Error, match=sid):
                list(chunked)
            with pytest.raises(zgrid.Error, match=sid):
                bad.result(WAIT)
            g.kill_head()  # the calls are journaled: they run after the restart
            g.start_head()
            open(gate, "w").close()
            reader = subprocess.Popen([sys.executable, "-c", READER, g.frontend, sid],
                                      stdout=subprocess.PIPE, text=True)
            seen = {}
            killed = False
            for line in reader.stdout:
                i, v = json.loads(line)
                if i == "service":
                    assert v == "python"
                    break
                seen.setdefault(i, []).append(v)
                if not killed and len(seen) >= 20:
                    g.kill_head()  # while the other process reads
                    g.start_head()
                    killed = True
            assert reader.wait(WAIT) == 0
            assert killed
            assert sorted(seen) == list(range(106))
            assert all(len(v) == 1 for v in seen.values())  # each call once, across the kill
            assert [seen[i][0] for i in range(5)] == list(range(5))
            assert [seen[i][0] for i in range(5, 105)] == [-i for i in range(5, 105)]
            assert seen[105][0] == "ValueError:bad value 105"
            # In order, from this process too.
            with zgrid.connect(g.frontend, timeout=30) as grid:
                rs = list(grid.attach(sid).results_in_order())
                assert [r.index for r in rs] == list(range(106))
                assert rs[5].value == -5 and isinstance(rs[105].fault, ValueError)
        finally:
            g.stop()


def test_durable_executor_shutdown_waits_for_its_results(pygrid):
    with zgrid.Executor(head=pygrid.frontend, durable=True) as ex:
        fs = [ex.submit(add, i, 1) for i in range(50)]
        squares = ex.map(lambda x: x * x, range(30), chunksize=4)
        assert list(squares) == [x * x for x in range(30)]
    assert [f.result(WAIT) for f in fs] == list(range(1, 51))
    with zgrid.connect(pygrid.frontend) as grid:
        st = grid.attach(ex.session_id).status()
        assert st.complete and st.done == 50 + 8
    interactive = zgrid.Executor(head=pygrid.frontend)
    with pytest.raises(zgrid.InvalidRequest, match="durable"):
        interactive.detach()
    interactive.shutdown()


PROCESS_POOL_CODE = '''
import concurrent.futures as cf
import sys


class Odd(Exception):
    pass


def square(x):
    if x == 13:
        raise Odd("unlucky")
    return x * x


def main(Pool):
    with Pool(max_workers=2) as pool:
        futures = {pool.submit(square, i): i for i in range(20)}
        out = {}
        for f in cf.as_completed(futures):
            try:
                out[futures[f]] = f.result()
            except Odd as e:
                out[futures[f]] = "odd: %s" % e
        mapped = list(pool.map(square, range(10), chunksize=3))
        total = sum(pool.map(pow, [2, 3], [3, 2]))
    print(sorted(out.items()), mapped, total)


if __name__ == "__main__":
    if sys.argv[1] == "grid":
        import zgrid
        main(zgrid.Executor)
    else:
        main(cf.ProcessPoolExecutor)
'''


def test_code_written_for_process_pool_executor_runs_unchanged(pygrid, tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(textwrap.dedent(PROCESS_POOL_CODE))
    env = dict(os.environ, ZGRID_HEAD=pygrid.frontend)
    outs = [subprocess.run([sys.executable, str(script), which], capture_output=True, text=True,
                           timeout=120, env=env) for which in ("local", "grid")]
    for o in outs:
        assert o.returncode == 0, o.stderr
    assert outs[0].stdout == outs[1].stdout and "odd: unlucky" in outs[0].stdout


def test_the_functions_example_runs(pygrid):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python", "functions.py")
    env = dict(os.environ, ZGRID_HEAD=pygrid.frontend)
    out = subprocess.run([sys.executable, example], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("100 results")
    assert out.stderr.count("diverged: diverged at") == 10


def test_an_idle_executor_is_not_removed_by_the_client_idle_timeout(monkeypatch):
    import zgrid.functions

    monkeypatch.setattr(zgrid.functions, "_KEEPALIVE", 0.2)
    with tempfile.TemporaryDirectory(prefix="zgrid-fn-") as tmp:
        g = make_grid(tmp, head_args=["--client-idle-timeout", "1s"])
        try:
            for durable in (False, True):
                with zgrid.Executor(head=g.frontend, durable=durable) as ex:
                    assert ex.submit(add, 1, 1).result(WAIT) == 2
                    import time

                    time.sleep(2.5)  # idle: what is under test, longer than the idle timeout
                    assert ex.submit(add, 2, 2).result(WAIT) == 4
        finally:
            g.stop()


def test_a_removed_executor_client_is_an_error_not_a_hang(monkeypatch):
    """A laptop that slept past the head's client idle timeout: the futures
    in flight end with zgrid.Removed."""
    import zgrid.functions

    monkeypatch.setattr(zgrid.functions, "_KEEPALIVE", 1000)
    monkeypatch.setattr(zgrid.functions, "_STALLED", 0.5)
    with tempfile.TemporaryDirectory(prefix="zgrid-fn-") as tmp:
        g = make_grid(tmp, head_args=["--client-idle-timeout", "1s"])
        try:
            ex = zgrid.Executor(head=g.frontend)
            assert ex.submit(add, 1, 1).result(WAIT) == 2
            # Idle, no keepalive: the head removes the client (1 s idle timeout).
            with zgrid.connect(g.frontend) as grid:
                wait_until(lambda: grid.conn.session_status(ex.session_id).get("clients_removed", 0) > 0,
                           WAIT, "the head to remove the idle executor's client")
            with pytest.raises(zgrid.Removed, match="removed"):
                ex.submit(add, 2, 2).result(WAIT)
            ex.shutdown()
        finally:
            g.stop()


def test_a_grid_without_python_nodes_is_an_error_not_a_hang(monkeypatch):
    import zgrid.functions

    monkeypatch.setattr(zgrid.functions, "_STALLED", 0.5)
    monkeypatch.setenv("ZGRID_TEST_NODE_WINDOW_MS", "300")  # the head's verdict comes soon
    with tempfile.TemporaryDirectory(prefix="zgrid-fn-") as tmp:
        g = LocalGrid(tmp, nodes=1, workers=2)  # no --python
        try:
            ex = zgrid.Executor(head=g.frontend)
            with pytest.raises(zgrid.InvalidRequest, match="no node offers service python.*--python"):
                ex.submit(add, 1, 1).result(WAIT)
            ex.shutdown()
        finally:
            g.stop()


def test_the_window_rule_counts_the_python_slots_of_the_grid():
    from zgrid.functions import WINDOW_MIN, WINDOW_PER_SLOT, _slots

    nodes = [
        {"state": "ok", "workers": 40, "services": "factorize@1,python@1"},
        {"state": "ok", "workers": 64, "services": "python@1,echo@1"},
        {"state": "ok", "workers": 99, "services": "factorize@1"},  # no python: not counted
        {"state": "draining", "workers": 50, "services": "python@1"},  # takes no new work
    ]
    assert _slots(nodes) == 104
    assert max(WINDOW_MIN, WINDOW_PER_SLOT * _slots(nodes)) == 208
    assert max(WINDOW_MIN, WINDOW_PER_SLOT * _slots(nodes[:1])) == WINDOW_MIN == 128


# ---- the session's options: task_timeout, deadline, stateful ------------------------


def sleep_if(x, bad, pids):
    import os
    import time

    if x == bad:
        with open(pids, "a") as f:
            f.write("%d\n" % os.getpid())
        time.sleep(60)  # past any task timeout of the test
    return x * 2


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_call_past_its_task_timeout_faults_alone_and_its_worker_is_replaced(tmp_path):
    with tempfile.TemporaryDirectory(prefix="zgrid-fn-") as tmp:
        g = make_grid(tmp, head_args=["--max-retries", "1"])
        try:
            pids = str(tmp_path / "pids")
            with zgrid.Executor(head=g.frontend) as warm:  # a worker's start counts in its first call
                assert list(warm.map(add, range(40))) == list(range(40))
            with zgrid.Executor(head=g.frontend, task_timeout=1.5) as ex:
                fs = [ex.submit(sleep_if, i, 7, pids) for i in range(30)]
                for i, f in enumerate(fs):
                    if i == 7:
                        with pytest.raises(zgrid.RequestFault) as e:
                            f.result(WAIT)
                        assert e.value.code == "retry_limit_exceeded", e.value
                        assert "ran past its task timeout 2 times" in e.value.message
                    else:
                        assert f.result(WAIT) == 2 * i
                assert ex.submit(add, 2, 2).result(WAIT) == 4  # the executor goes on
            killed = [int(p) for p in open(pids).read().split()]
            assert len(killed) == 2  # a try each, in a worker killed for it
            wait_until(lambda: all(gone(p) for p in killed), timeout=WAIT, what="timed-out workers gone")
        finally:
            g.stop()


total = 0  # a stateful session's state: accumulate()'s globals on its worker


def accumulate(x):
    global total
    total += x
    return total


def test_a_stateful_executor_runs_in_order_on_one_worker_of_its_own(pygrid):
    with zgrid.Executor(head=pygrid.frontend, stateful=True) as ex, \
            zgrid.Executor(head=pygrid.frontend) as pooled:
        assert "stateful" in repr(ex)
        fs = [ex.submit(accumulate, i) for i in range(1, 101)]
        other = [pooled.submit(accumulate, 1) for _ in range(20)]  # pooled workers: apart from it
        assert [f.result(WAIT) for f in fs] == [i * (i + 1) // 2 for i in range(1, 101)]
        assert list(ex.map(accumulate, [1000, 1], chunksize=2)) == [5050 + 1000, 5050 + 1001]
        pids = {ex.submit(os.getpid).result(WAIT) for _ in range(5)}
        assert len(pids) == 1
        assert pids.isdisjoint({pooled.submit(os.getpid).result(WAIT) for _ in range(20)})
        assert all(f.result(WAIT) >= 1 for f in other)
    assert total == 0  # nothing ran here


def accumulate_slowly(x, marks):
    import os
    import time

    open(os.path.join(marks, "%d.%d" % (x, os.getppid())), "w").close()  # which node ran it
    time.sleep(0.01)
    return accumulate(x)


def test_a_stateful_executor_survives_a_node_kill_by_replay(tmp_path, monkeypatch):
    import zgrid.functions

    settled = []
    real_settle = zgrid.functions.Executor._settle

    def counting_settle(self, inflight, t):
        settled.append(t[1])
        real_settle(self, inflight, t)

    monkeypatch.setattr(zgrid.functions.Executor, "_settle", counting_settle)
    with tempfile.TemporaryDirectory(prefix="zgrid-fn-") as tmp:
        g = make_grid(tmp, nodes=2, head_args=["--heartbeat", "500ms"])
        try:
            marks = str(tmp_path)
            n = 150
            with zgrid.Executor(head=g.frontend, stateful=True) as ex:
                fs = [ex.submit(accumulate_slowly, i, marks) for i in range(1, n + 1)]
                wait_until(lambda: len(os.listdir(marks)) >= 30, timeout=WAIT, what="calls running")
                newest = max(os.scandir(marks), key=lambda e: e.stat().st_mtime_ns)
                node_pid = int(newest.name.split(".")[1])  # the node running the session now
                node = next(p for p in g.procs if p.pid == node_pid)
                node.send_signal(signal.SIGKILL)
                node.wait(10)
                assert [f.result(WAIT) for f in fs] == [i * (i + 1) // 2 for i in range(1, n + 1)]
            assert len(settled) == n and len(set(settled)) == n  # each answered once
            ran_on = {name.split(".")[1] for name in os.listdir(marks)}
            assert len(ran_on) == 2  # replayed on the other node
        finally:
            g.stop()


def test_past_the_deadline_calls_fault_timeout_and_running_ones_finish(pygrid, tmp_path):
    gate, mark = str(tmp_path / "open"), str(tmp_path / "running")

    def running_until_gate():
        open(mark, "w").close()
        return wait_for_file(gate, "ran")

    import time

    created = time.monotonic()
    with zgrid.Executor(head=pygrid.frontend, deadline=2.0) as ex:
        slow = ex.submit(running_until_gate)
        wait_until(lambda: os.path.exists(mark), timeout=WAIT, what="a call running")
        wait_until(lambda: time.monotonic() > created + 2.5, timeout=WAIT, what="the deadline")
        late = [ex.submit(add, i) for i in range(10)]
        chunks = ex.map(add, range(10), chunksize=3)
        for f in late:
            with pytest.raises(zgrid.RequestFault) as e:
                f.result(WAIT)
            assert e.value.code == "timeout" and "deadline" in e.value.message
        with pytest.raises(zgrid.RequestFault, match="deadline"):
            list(chunks)
        open(gate, "w").close()
        assert slow.result(WAIT) == "ran"  # started before the deadline: it finishes


def test_session_options_are_checked():
    with pytest.raises(ValueError, match="task_timeout"):
        zgrid.Executor(head="tcp://127.0.0.1:1", task_timeout=-1)


def test_the_options_reach_the_head_and_a_live_executor_talks_within_its_idle_timeout(pygrid):
    import time

    with zgrid.Executor(head=pygrid.frontend, client_idle_timeout=1.0, stateful=True) as ex:
        with zgrid.connect(pygrid.frontend) as grid:
            st = grid.conn.session_status(ex.session_id)
            assert st["client_idle_timeout_ms"] == 1000 and st["stateful"], st
        assert ex.submit(add, 1, 1).result(WAIT) == 2
        time.sleep(2.5)  # idle past its timeout: what is under test
        assert ex.submit(add, 2, 2).result(WAIT) == 4
