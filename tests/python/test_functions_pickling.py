"""Issue 30, what travels and what comes back: arguments of classes the
nodes cannot import, exceptions a function raises that are not Exceptions,
and a durable function session read back with a cursor that must never
skip a call. Real head and node processes (conftest.LocalGrid), the nodes
with `zgrid-node --python /usr/bin/python3`."""

import os
import subprocess
import sys
import tempfile
import textwrap

import cloudpickle
import pytest
import zgrid
from conftest import LocalGrid

# Not importable on the nodes: its functions and classes go by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PYTHON = "/usr/bin/python3"
WAIT = 60  # bound of every wait on a result (seconds)


@pytest.fixture
def pygrid():
    with tempfile.TemporaryDirectory(prefix="zgrid-fnpk-") as tmp:
        g = LocalGrid(tmp, nodes=1, workers=2, node_args=["--python", PYTHON])
        try:
            yield g
        finally:
            g.stop()


class Params:
    def __init__(self, a, b):
        self.a, self.b = a, b


def area(p):
    return Params(p.a * p.b, p.a + p.b)


def leave(code):
    raise SystemExit(code)


NOTEBOOK_CODE = '''
import dataclasses
import zgrid


@dataclasses.dataclass
class Params:
    a: int
    b: int


class Outcome:
    def __init__(self, v):
        self.v = v


def simulate(p):
    return Outcome(p.a * p.b)


with zgrid.Executor() as ex:
    got = [o.v for o in ex.map(simulate, [Params(i, i + 1) for i in range(50)], chunksize=7)]
    one = ex.submit(simulate, Params(6, 7)).result(60)
print(got == [i * (i + 1) for i in range(50)], type(one) is Outcome, one.v)
'''


def test_arguments_and_results_of_classes_defined_in_main(pygrid, tmp_path):
    # A notebook's or script's own classes: the nodes' __main__ is the
    # worker, so they must travel by value both ways (plain pickle would name
    # __main__.Params and the node could not load it).
    script = tmp_path / "notebook.py"
    script.write_text(textwrap.dedent(NOTEBOOK_CODE))
    env = dict(os.environ, ZGRID_HEAD=pygrid.frontend)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "42"]


def test_arguments_of_a_module_registered_by_value(pygrid):
    with zgrid.Executor(head=pygrid.frontend) as ex:
        r = ex.submit(area, Params(3, 4)).result(WAIT)
        assert isinstance(r, Params) and (r.a, r.b) == (12, 7)
        assert [(p.a, p.b) for p in ex.map(area, [Params(i, 2) for i in range(5)], chunksize=2)] \
            == [(2 * i, i + 2) for i in range(5)]


def test_a_function_raising_system_exit_raises_it_from_result(pygrid):
    # As ProcessPoolExecutor does: the call's exception, not a dead worker.
    with zgrid.Executor(head=pygrid.frontend) as ex:
        f = ex.submit(leave, 3)
        with pytest.raises(SystemExit) as e:
            f.result(WAIT)
        assert e.value.code == 3
        assert ex.submit(pow, 2, 5).result(WAIT) == 32  # the worker lives on


def test_resuming_a_function_session_from_its_cursor_never_skips_a_call(pygrid):
    # 10,000 calls in chunks of 2: 5,000 stored results, so the first page
    # (4,096 stored results) ends with a chunk. A reader that stops as soon
    # as the cursor moves and resumes from it must get every call.
    with zgrid.Executor(head=pygrid.frontend, durable=True) as ex:
        assert list(ex.map(abs, range(-10_000, 0), chunksize=2)) == list(range(10_000, 0, -1))
        sid = ex.session_id
    with zgrid.connect(pygrid.frontend) as grid:
        results = grid.attach(sid).results()
        seen = []
        for r in results:
            seen.append(r.index)
            assert r.value == 10_000 - r.index
            if results.cursor != 0:
                break
        assert len(seen) < 10_000, "the cursor never moved"
        resumed = grid.attach(sid).results(from_=results.cursor, wait=False)
        after = [r.index for r in resumed]
        missing = set(range(10_000)) - set(seen) - set(after)
        assert not missing, f"resuming from the cursor skipped calls {sorted(missing)[:5]}"
