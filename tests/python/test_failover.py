"""Issue 28: zgrid.connect() takes a list of heads (an active one and a
standby on one data directory), uses the active one, and a durable session
carries on after the active head is SIGKILLed. Real processes."""

import os
import signal
import subprocess
import tempfile

import pytest
import zgrid

from conftest import BIN, wait_until


class Head:
    """One zgrid-head of a pair on `data_dir`, with an endpoints file of its own."""

    def __init__(self, tmp, name, data_dir):
        self.tmp, self.name, self.data_dir = tmp, name, data_dir
        self.ep = os.path.join(tmp, f"{name}.endpoints")
        self.proc = None
        self.frontend = self.backend = None

    def start(self):
        if os.path.exists(self.ep):
            os.unlink(self.ep)
        args = [os.path.join(BIN, "zgrid-head"), "--endpoints-file", self.ep, "--log-level", "warn",
                "--data-dir", self.data_dir, "--http", "off"]
        args += ["--frontend", self.frontend or "tcp://127.0.0.1:0",
                 "--backend", self.backend or "tcp://127.0.0.1:0"]
        log = open(os.path.join(self.tmp, f"{self.name}.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        wait_until(lambda: os.path.exists(self.ep), what=f"head {self.name}'s endpoints file")
        fields = dict(line.strip().split("=", 1) for line in open(self.ep) if "=" in line)
        self.frontend, self.backend = fields["frontend"], fields["backend"]

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def pair():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        a, b = Head(tmp, "a", data), Head(tmp, "b", data)
        procs = []
        try:
            a.start()
            b.start()
            yield a, b, procs
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    p.wait(10)
            a.kill()
            b.kill()


def node(backend, procs, tmp_log):
    p = subprocess.Popen([os.path.join(BIN, "zgrid-node"), "--head", backend, "--workers", "2"],
                         stdout=tmp_log, stderr=tmp_log)
    procs.append(p)
    return p


def test_connect_takes_a_list_and_follows_a_takeover(pair):
    a, b, procs = pair
    wait_until(lambda: zgrid.connect(a.frontend, timeout=5).status().get("role") == "active",
               what="head a active")
    heads = [a.frontend, b.frontend]
    for given in (heads, tuple(heads), ",".join(heads), [b.frontend]):
        with zgrid.connect(given, timeout=5) as grid:
            assert grid.head == a.frontend  # the standby named it
            assert grid.epoch >= 1
    with pytest.raises(TypeError):
        zgrid.connect([a.frontend, 5])

    log = open(os.devnull, "wb")
    with zgrid.connect(heads, timeout=10) as grid:
        table = {h["endpoint"]: h for h in grid.heads()}
        assert table[a.frontend]["role"] == "active"
        assert table[b.frontend]["role"] == "standby"
        epoch = grid.epoch
        na = node(a.backend, procs, log)
        numbers = list(range(2_000_000, 2_000_300))
        s = grid.session("factorize", durable=True)
        s.send_many(str(n) for n in numbers)
        s.commit()
        sid = s.id
        # The active head dies; the standby takes over; the same Grid goes on.
        a.kill()
        na.send_signal(signal.SIGKILL)
        na.wait(10)
        node(b.backend, procs, log)
        got = {}
        for r in grid.attach(sid).results(decode="text", timeout=60):
            assert r.index not in got
            got[r.index] = r.value
        assert len(got) == len(numbers)
        for i, v in got.items():
            product = 1
            for f in v.split(" * "):
                product *= int(f)
            assert product == numbers[i]
        assert grid.head == b.frontend
        assert grid.epoch > epoch
