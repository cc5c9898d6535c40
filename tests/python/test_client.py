"""The zgrid Python package against a real head and node."""

import concurrent.futures as cf
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import zgrid
from conftest import LocalGrid


def factors_ok(n: int, text: str) -> bool:
    product = 1
    for f in text.split("*"):
        product *= int(f)
    return product == n


def test_map_in_order_and_as_completed(grid_env):
    numbers = [random.randrange(2, 2**31) for _ in range(100_000)]
    with zgrid.connect(grid_env.frontend) as grid:
        results = list(grid.map("factorize", (str(n) for n in numbers), decode="text"))
        assert len(results) == len(numbers)
        assert all(factors_ok(n, r) for n, r in zip(numbers, results))
        unordered = list(grid.map("factorize", (str(n) for n in numbers), ordered=False, decode="text"))
        assert sorted(unordered) == sorted(results)


def test_map_raises_a_fault_when_reached_or_returns_it(grid_env):
    inputs = ["91", "not a number", "1001"]
    with zgrid.connect(grid_env.frontend) as grid:
        it = grid.map("factorize", inputs, decode="text")
        assert factors_ok(91, next(it))
        with pytest.raises(zgrid.RequestFault) as e:
            next(it)
        assert e.value.index == 1
        assert e.value.code
        got = list(grid.map("factorize", inputs, decode="text", errors="return"))
        assert isinstance(got[1], zgrid.RequestFault)
        assert factors_ok(1001, got[2])


def test_service_executor_futures_and_a_fault_on_its_own_future(grid_env):
    with zgrid.ServiceExecutor("factorize", head=grid_env.frontend, decode="text") as ex:
        numbers = [random.randrange(2, 2**31) for _ in range(1000)]
        futures = {ex.submit(str(n)): n for n in numbers}
        bad = ex.submit("garbage")
        done = 0
        for f in cf.as_completed(futures, timeout=60):
            assert factors_ok(futures[f], f.result())
            done += 1
        assert done == 1000
        with pytest.raises(zgrid.RequestFault):
            bad.result(timeout=30)
        assert list(ex.map(["15", "21"])) == ["3 * 5", "3 * 7"]


def test_durable_session_attached_from_another_process(grid_env):
    numbers = [random.randrange(2, 2**31) for _ in range(5000)]
    with zgrid.connect(grid_env.frontend) as grid:
        s = grid.session("factorize", durable=True)
        assert s.send_many(str(n) for n in numbers) == len(numbers)
        s.commit()
        sid = s.id
    code = f"""
import zgrid, sys
grid = zgrid.connect({grid_env.frontend!r})
s = grid.attach({sid!r})
for r in s.results(decode="text"):
    print(r.index, r.value)
st = s.status()
print("status", st.done, st.faulted, st.complete)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    seen = {}
    for line in lines[:-1]:
        i, value = line.split(" ", 1)
        assert int(i) not in seen
        seen[int(i)] = value
    assert len(seen) == len(numbers)
    assert all(factors_ok(numbers[i], v) for i, v in seen.items())
    assert lines[-1] == f"status {len(numbers)} 0 True"


def test_submit_makes_a_whole_session_in_one_message(grid_env):
    numbers = [random.randrange(2, 2**31) for _ in range(500)]
    with zgrid.connect(grid_env.frontend) as grid:
        # Interactive: the results stream back, then the session leaves the head.
        s = grid.submit("factorize", [str(n) for n in numbers])
        got = {r.index: r.value for r in s.responses(timeout=30, decode="text")}
        assert len(got) == len(numbers)
        assert all(factors_ok(numbers[i], v) for i, v in got.items())
        s.commit()  # committed already: nothing to do
        with pytest.raises(zgrid.Error):
            s.send("12")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                s.status()
            except zgrid.UnknownSession:
                break
            time.sleep(0.02)
        else:
            pytest.fail("a delivered submitted session stayed in the head")
        # Durable: sealed, kept, read by id from another connection.
        d = grid.submit("factorize", [str(n) for n in numbers[:50]], durable=True)
        sid = d.id
    with zgrid.connect(grid_env.frontend) as grid:
        attached = grid.attach(sid)
        got = {r.index: r.value for r in attached.results(decode="text", timeout=30)}
        assert len(got) == 50
        assert all(factors_ok(numbers[i], v) for i, v in got.items())
        st = attached.status()
        assert st.state == "sealed" and st.complete and st.total == 50
        attached.close(purge=True)
        # Over one message, or one payload over the limit: refused, nothing made.
        before = len(grid.sessions())
        with pytest.raises(zgrid.InvalidRequest, match="one message"):
            grid.submit("echo", [b"x"] * 1025)
        with pytest.raises(zgrid.InvalidRequest, match="one message"):
            grid.submit("echo", [b"x" * ((1 << 20) + 1)], durable=True)
        assert len(grid.sessions()) == before
        # map() of a small list goes the same way, faults and all.
        got = list(grid.map("factorize", ["91", "not a number", "1001"], decode="text",
                            errors="return"))
        assert factors_ok(91, got[0]) and factors_ok(1001, got[2])
        assert isinstance(got[1], zgrid.RequestFault) and got[1].index == 1
        assert list(grid.map("factorize", [str(n) for n in numbers[:20]], durable=True,
                             decode="text")) == [
            r for r in grid.map("factorize", (str(n) for n in numbers[:20]), decode="text")
        ]


def test_durable_results_survive_a_head_kill(grid_env):
    numbers = [random.randrange(2, 2**31) for _ in range(3000)]
    with zgrid.connect(grid_env.frontend) as grid:
        s = grid.session("factorize", durable=True)
        s.send_many(str(n) for n in numbers)
        s.commit()
        sid = s.id
    grid_env.kill_head()
    grid_env.start_head()
    with zgrid.connect(grid_env.frontend, timeout=20) as grid:
        got = {}
        for r in grid.attach(sid).results(decode="text", timeout=60):
            assert r.index not in got
            got[r.index] = r.value
        assert len(got) == len(numbers)
        assert all(factors_ok(numbers[i], v) for i, v in got.items())


def test_errors_are_exceptions_with_the_cli_meanings(grid_env):
    with zgrid.connect(grid_env.frontend) as grid:
        with pytest.raises(zgrid.UnknownSession):
            grid.attach("f" * 32)
        with pytest.raises(zgrid.InvalidRequest):
            grid.session("no such service!")
        with pytest.raises(zgrid.InvalidRequest, match="no node offers service 'nosuch'"):
            list(grid.map("nosuch", ["1"], timeout=1))
        s = grid.session("factorize", durable=True)
        s.close(purge=True)
        with pytest.raises(zgrid.UnknownSession, match="purged"):
            grid.attach(s.id)
    t0 = time.monotonic()
    with pytest.raises(zgrid.ConnectionError):
        zgrid.connect("tcp://127.0.0.1:9", timeout=0.5)
    assert time.monotonic() - t0 < 5


def test_an_oversized_payload_is_refused_not_a_crash(grid_env):
    with zgrid.connect(grid_env.frontend) as grid:
        s = grid.session("echo")
        with pytest.raises(zgrid.Error):
            s.send(b"x" * (100 << 20))
            s.commit()
        assert grid.status()["nodes"] == 1  # the head still serves


def test_ctrl_c_interrupts_a_blocking_results_call(grid_env):
    code = f"""
import zgrid, time, sys
grid = zgrid.connect({grid_env.frontend!r})
s = grid.session("factorize", durable=True)
s.send("91")   # not committed: results() waits for more
s.flush()
print("waiting", flush=True)
t0 = time.monotonic()
try:
    for r in s.results(timeout=30):
        pass
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    sys.exit(0)
sys.exit(3)
"""
    assert_sigint_interrupts(code)


def assert_sigint_interrupts(code: str) -> None:
    """Runs `code` (prints "waiting", then blocks; prints "interrupted T" on
    KeyboardInterrupt) and checks a SIGINT ends the wait within 200 ms."""
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "waiting"
    time.sleep(0.5)  # let it block
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    line = p.stdout.readline().split()
    assert p.wait(10) == 0
    assert line[0] == "interrupted"
    assert float(line[1]) - sent < 0.2


def test_payloads_and_decoding(grid_env):
    with zgrid.connect(grid_env.frontend) as grid:
        got = list(grid.map("echo", [b"\x00\x01", "text", {"a": [1, 2]}], decode=None))
        assert got[0] == b"\x00\x01"
        assert got[1] == b"text"
        import msgpack

        assert msgpack.unpackb(got[2]) == {"a": [1, 2]}
        assert list(grid.map("echo", [{"k": 3}], decode="msgpack")) == [{"k": 3}]
        assert list(grid.map("echo", ['{"j": 1}'], decode="json")) == [{"j": 1}]


EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python")


def run_example(grid_env, *args):
    env = dict(os.environ, ZGRID_HEAD=grid_env.frontend)
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, args[0]), *args[1:]],
                          capture_output=True, text=True, timeout=120, env=env)


def test_the_examples_run(grid_env):
    out = run_example(grid_env, "executor.py")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" = ") for line in out.stdout.splitlines())
    assert len(lines) == 5
    assert all(factors_ok(int(n), f) for n, f in lines.items())
    assert "fault:" in out.stderr

    sub = run_example(grid_env, "sweep.py", "submit", "500")
    assert sub.returncode == 0, sub.stderr
    sid = sub.stdout.strip()
    got = run_example(grid_env, "sweep.py", "fetch", sid)
    assert got.returncode == 0, got.stderr
    rows = [line.split("\t") for line in got.stdout.splitlines()]
    assert sorted(int(i) for i, _ in rows) == list(range(500))
    rng = random.Random(42)
    numbers = [rng.randrange(2, 2**31) for _ in range(500)]
    assert all(factors_ok(numbers[int(i)], v) for i, v in rows)
    assert "complete True" in got.stderr


SENDER = """
import random, sys, zgrid
rng = random.Random(11)
grid = zgrid.connect(sys.argv[1], timeout=30)
s = grid.session("factorize", durable=True)
print(s.id, flush=True)
s.send_many(str(rng.randrange(2, 2**31)) for _ in range(int(sys.argv[2])))
s.commit()
print("committed", flush=True)
"""

READER = """
import sys, zgrid
grid = zgrid.connect(sys.argv[1], timeout=30)
for r in grid.attach(sys.argv[2]).results(decode="text", timeout=60):
    print(r.index, r.value, flush=True)
print("end", flush=True)
"""


def test_durable_across_processes_with_the_head_killed_during_both(grid_env):
    n = 200_000
    rng = random.Random(11)
    numbers = [rng.randrange(2, 2**31) for _ in range(n)]
    sender = subprocess.Popen([sys.executable, "-c", SENDER, grid_env.frontend, str(n)],
                              stdout=subprocess.PIPE, text=True)
    sid = sender.stdout.readline().strip()
    assert len(sid) == 32

    def accepted():
        try:
            with zgrid.connect(grid_env.frontend, timeout=2) as g:
                return g.attach(sid).status().total
        except zgrid.Error:
            return 0

    from conftest import wait_until

    wait_until(lambda: accepted() >= n // 4, timeout=60, what="a quarter of the requests accepted")
    grid_env.kill_head()  # while the sender sends
    grid_env.start_head()
    assert sender.stdout.readline().strip() == "committed"
    assert sender.wait(120) == 0

    reader = subprocess.Popen([sys.executable, "-c", READER, grid_env.frontend, sid],
                              stdout=subprocess.PIPE, text=True)
    seen = {}
    killed = False
    for line in reader.stdout:
        if line.strip() == "end":
            break
        i, value = line.rstrip("\n").split(" ", 1)
        seen.setdefault(int(i), []).append(value)
        if not killed and len(seen) >= n // 3:
            grid_env.kill_head()  # while the reader reads
            grid_env.start_head()
            killed = True
    assert reader.wait(120) == 0
    assert killed
    assert len(seen) == n  # every request answered
    # A page may be read again after the restart (at most one): values agree.
    assert all(len(set(v)) == 1 for v in seen.values())
    assert all(factors_ok(numbers[i], v[0]) for i, v in seen.items())
    with zgrid.connect(grid_env.frontend) as grid:
        st = grid.attach(sid).status()
        assert (st.done, st.faulted, st.complete) == (n, 0, True)


def test_a_sender_killed_before_commit_is_removed_and_reading_says_so():
    import tempfile

    from conftest import LocalGrid, wait_until

    with tempfile.TemporaryDirectory(prefix="zgrid-py-") as tmp:
        g = LocalGrid(tmp, head_args=["--client-idle-timeout", "1s"])
        try:
            code = f"""
import os, signal, zgrid
grid = zgrid.connect({g.frontend!r})
s = grid.session("factorize", durable=True)
s.send_many(str(n) for n in range(2, 102))
s.flush()
print(s.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)   # dies before commit()
"""
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
            assert p.returncode == -signal.SIGKILL
            sid = p.stdout.strip()
            with zgrid.connect(g.frontend) as grid:
                s = grid.attach(sid)
                wait_until(lambda: s.status().clients_removed == 1, timeout=30,
                           what="the idle client to be removed")
                st = s.status()
                assert st.removed == 100 and st.complete
                with pytest.raises(zgrid.Removed, match="100 requests were removed"):
                    for _ in s.results(timeout=10):
                        pass
        finally:
            g.stop()


def test_a_python_service_written_with_the_decorator():
    import tempfile

    with tempfile.TemporaryDirectory(prefix="zgrid-py-") as tmp:
        reg = os.path.join(tmp, "services.d")
        os.mkdir(reg)
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(reg, "pysquare.toml"), "w") as f:
            f.write('name = "pysquare"\nversion = "1"\n'
                    f'program = "{here}/square_service.py"\n'
                    'operations = ["square", "neg"]\nconcurrency = 2\n'
                    f'env = ["PYTHONPATH={os.environ.get("PYTHONPATH", "")}"]\n')
        g = LocalGrid(tmp, node_args=["--services-dir", reg])
        try:
            with zgrid.connect(g.frontend) as grid:
                got = list(grid.map("pysquare", (str(i) for i in range(200)), decode="text",
                                    errors="return"))
                for i, v in enumerate(got):
                    if i == 13:
                        assert isinstance(v, zgrid.RequestFault)
                        assert v.code == "service_error" and "unlucky number" in v.message
                    else:
                        assert v == str(i * i)  # the worker kept serving after the fault
                assert list(grid.map("pysquare@1/neg", ["5", "7"], decode="text")) == ["-5", "-7"]
        finally:
            g.stop()


def test_another_keys_session_is_a_permission_error_under_curve():
    import tempfile

    with tempfile.TemporaryDirectory(prefix="zgrid-py-") as tmp:
        keys = os.path.join(tmp, "keys")
        os.makedirs(keys)
        cli = os.path.join(os.environ.get("ZGRID_BIN_DIR", "build"), "zgrid")
        for name in ("head", "alice", "bob", "node1"):
            subprocess.run([cli, "keygen", "--out", keys, "--name", name], check=True,
                           capture_output=True)
        for name, d in (("alice", "clients"), ("bob", "clients"), ("node1", "nodes")):
            os.makedirs(os.path.join(keys, d), exist_ok=True)
            with open(os.path.join(keys, name + ".pub")) as src, \
                    open(os.path.join(keys, d, name + ".pub"), "w") as dst:
                dst.write(src.read())
        k = lambda n: os.path.join(keys, n)  # noqa: E731
        alice = {"key": k("alice.key"), "head_key": k("head.pub")}
        bob = {"key": k("bob.key"), "head_key": k("head.pub")}
        g = LocalGrid(tmp, head_args=["--curve-secret", k("head.key"), "--authorized-clients",
                                      k("clients"), "--authorized-nodes", k("nodes")],
                      node_args=["--head-key", k("head.pub"), "--key", k("node1.key")],
                      client_keys=alice)
        try:
            with zgrid.connect(g.frontend, **alice) as grid:
                s = grid.session("factorize", durable=True)
                s.send_many(["91", "1001"])
                s.commit()
                assert sorted(r.value for r in s.results(decode="text")) == ["7 * 11 * 13", "7 * 13"]
            with zgrid.connect(g.frontend, **bob) as grid:
                with pytest.raises(zgrid.PermissionError):
                    grid.attach(s.id)
            # No key at all: refused, with the reason.
            with pytest.raises(zgrid.PermissionError, match="CURVE"):
                zgrid.connect(g.frontend, timeout=2)
        finally:
            g.stop()


def test_map_draws_a_progress_line():
    import io

    out = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="zgrid-py-") as tmp:
        g = LocalGrid(tmp)
        try:
            with zgrid.connect(g.frontend) as grid:
                inputs = [str(n) for n in range(2, 1002)] + ["garbage"]
                got = list(grid.map("factorize", inputs, errors="return", progress=out))
                assert len(got) == 1001
        finally:
            g.stop()
    last = out.getvalue().rstrip("\n").split("\r")[-1]
    assert "1,001/1,001" in last and "done 1,000 faulted 1" in last and "/s" in last


def test_ctrl_c_interrupts_a_connect_that_waits_for_a_head():
    code = """
import socket, sys, time, zgrid
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)   # accepts, never answers
port = s.getsockname()[1]
print("waiting", flush=True)
try:
    zgrid.connect(f"tcp://127.0.0.1:{port}", timeout=30)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    sys.exit(0)
sys.exit(3)
"""
    assert_sigint_interrupts(code)
