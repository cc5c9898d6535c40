"""Stateful sessions and resubmitting what faulted, from Python, against a
real head and nodes (docs/python.md; docs/operations.md "Stateful sessions"
and "Resubmitting what faulted")."""

import tempfile

import pytest
import zgrid
from conftest import LocalGrid


def triangular(n: int) -> str:
    return str(n * (n + 1) // 2)


N = 2000


def test_a_stateful_running_sum_on_two_nodes_gives_the_triangular_numbers_in_order():
    with tempfile.TemporaryDirectory(prefix="zgrid-py-") as tmp:
        g = LocalGrid(tmp, nodes=2)
        try:
            with zgrid.connect(g.frontend) as grid:
                expected = [triangular(n) for n in range(1, N + 1)]
                # Interactive: the answers come back one at a time, in order.
                s = grid.session("running_sum", stateful=True)
                assert s.stateful and not s.durable
                assert s.send_many(str(n) for n in range(1, N + 1)) == N
                s.commit()
                got = list(s.responses(timeout=60, decode="text"))
                assert [r.index for r in got] == list(range(N))
                assert all(r.ok for r in got)
                assert [r.value for r in got] == expected
                assert s.status().stateful

                # Durable: recorded in order, and attach() says it is stateful.
                d = grid.session("running_sum", durable=True, stateful=True)
                d.send_many(str(n) for n in range(1, N + 1))
                d.commit()
                results = list(d.results(decode="text", timeout=60))
                assert [r.index for r in results] == list(range(N))
                assert [r.value for r in results] == expected
                with zgrid.connect(g.frontend) as other:
                    again = other.attach(d.id)
                    assert again.stateful and again.durable
                    st = again.status()
                    assert (st.stateful, st.done, st.faulted, st.complete) == (True, N, 0, True)
                    assert st.state in ("complete", "closed", "sealed")

                # map(stateful=True): the same, as an iterator.
                assert list(grid.map("running_sum", ["5", "-2", "10"], stateful=True,
                                     decode="text", timeout=30)) == ["5", "3", "13"]
        finally:
            g.stop()


def test_a_stateful_session_for_a_service_without_sessions_is_refused(grid_env):
    with zgrid.connect(grid_env.frontend) as grid:
        with pytest.raises(zgrid.InvalidRequest, match="echo does not support stateful sessions") as e:
            grid.session("echo", stateful=True)
        assert e.value.code == "failed_precondition"
        with pytest.raises(zgrid.InvalidRequest, match="does not support stateful sessions"):
            list(grid.map("echo", ["1"], durable=True, stateful=True, timeout=10))
        # Per-call sessions of echo still work, and are not stateful.
        s = grid.session("echo")
        assert not s.stateful
        assert list(grid.map("echo", ["x"], decode="text", timeout=30)) == ["x"]


GARBAGE = {5: "abc", 17: "12z", 30: "x"}


def factorize_inputs():
    inputs = [str(n) for n in range(2, 42)]
    for i, bad in GARBAGE.items():
        inputs[i] = bad
    return inputs


def test_faulted_requests_and_resubmit_to_another_service(grid_env):
    inputs = factorize_inputs()
    with zgrid.connect(grid_env.frontend) as grid:
        s = grid.session("factorize", durable=True)
        s.send_many(inputs)
        s.commit()
        results = list(s.results(decode="text", timeout=60))
        assert len(results) == len(inputs)
        faulted = {r.request_id: r for r in results if not r.ok}
        assert sorted(r.index for r in faulted.values()) == sorted(GARBAGE)
        assert {r.fault.code for r in faulted.values()} == {"invalid_argument"}

        # The session's stored requests, in id order.
        stored = list(s.requests())
        assert [q.payload.decode() for q in stored] == inputs
        assert all(q.fault_code is None for q in stored)

        picked = grid.faulted_requests(s.id)
        assert [q.request_id for q in picked] == sorted(faulted)
        for q in picked:
            assert isinstance(q, zgrid.StoredRequest)
            assert q.payload.decode() == GARBAGE[faulted[q.request_id].index]
            assert q.fault_code == "invalid_argument"
            assert q.user_data == str(q.request_id).encode()
        assert grid.faulted_requests(s, codes="invalid_argument") == picked  # a Session, one code
        assert grid.faulted_requests(s.id, codes=["service_error"]) == []

        new = grid.resubmit(s.id, codes=["invalid_argument"], service="echo")
        assert isinstance(new, zgrid.Session)
        assert new.durable and new.id != s.id and new.service.startswith("echo")
        with zgrid.connect(grid_env.frontend) as other:  # attachable like any durable session
            again = list(other.attach(new.id).results(decode="text", timeout=60))
        assert len(again) == len(picked)
        by_original = {int(r.user_data): r for r in again}
        assert sorted(by_original) == sorted(faulted)
        for original_id, r in by_original.items():
            assert r.ok and r.value == GARBAGE[faulted[original_id].index]  # echo: the input back
        st = new.status()
        assert (st.total, st.done, st.faulted, st.complete) == (len(picked), len(picked), 0, True)

        # The original is unchanged.
        st = s.status()
        assert (st.total, st.done, st.faulted) == (len(inputs), len(inputs) - len(GARBAGE), len(GARBAGE))

        # Interactive: the results stream back to the session object.
        live = grid.resubmit(s.id, service="echo", durable=False)
        assert not live.durable
        got = list(live.responses(timeout=30, decode="text"))
        assert sorted(int(r.user_data) for r in got) == sorted(faulted)
        assert all(r.ok and r.value == GARBAGE[faulted[int(r.user_data)].index] for r in got)

        # Nothing matching: says so.
        with pytest.raises(zgrid.UnknownSession, match="nothing to resubmit") as e:
            grid.resubmit(s.id, codes=["service_error"])
        assert e.value.code == "not_found"
        with pytest.raises(zgrid.UnknownSession, match="nothing to resubmit"):
            grid.resubmit(s.id, codes=["service_error"], durable=False)


def test_faulted_requests_refuses_what_it_cannot_answer(grid_env):
    with zgrid.connect(grid_env.frontend) as grid:
        with pytest.raises(zgrid.UnknownSession):
            grid.faulted_requests("f" * 32)
        with pytest.raises(zgrid.UnknownSession):
            grid.resubmit("f" * 32)
        # Not complete yet: sent and flushed, not committed.
        open_ = grid.session("factorize", durable=True)
        open_.send("abc")
        open_.flush()
        with pytest.raises(zgrid.InvalidRequest, match="not complete") as e:
            grid.faulted_requests(open_.id)
        assert e.value.code == "failed_precondition"
        with pytest.raises(zgrid.InvalidRequest, match="not complete"):
            grid.resubmit(open_.id)
        open_.close(purge=True)
        # Interactive: the head keeps none of its requests.
        live = grid.session("factorize")
        with pytest.raises(zgrid.InvalidRequest, match="interactive"):
            grid.faulted_requests(live.id)
        with pytest.raises(zgrid.InvalidRequest):
            list(live.requests())
