"""A real zgrid-head and zgrid-node on loopback with ephemeral ports, for the
Python package's tests. Binaries come from ZGRID_BIN_DIR (set by ctest)."""

import os
import signal
import subprocess
import tempfile
import time

import pytest

BIN = os.environ.get("ZGRID_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def wait_until(cond, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class LocalGrid:
    """One head (durable when data_dir is given) and `nodes` nodes."""

    def __init__(self, tmp, nodes=1, workers=2, head_args=(), data=True, node_args=(),
                 client_keys=None):
        self.tmp = tmp
        self.procs = []
        self.head_proc = None
        self.data_dir = os.path.join(tmp, "data") if data else None
        self.head_args = list(head_args)
        self.node_args = list(node_args)
        self.client_keys = client_keys or {}  # key=, head_key= for zgrid.connect (CURVE)
        self.frontend = self.backend = None
        self.start_head()
        for i in range(nodes):
            self.start_node(workers, i)
        wait_until(lambda: self._node_count() == nodes, what=f"{nodes} node(s) to register")

    def start_head(self):
        ep = os.path.join(self.tmp, "endpoints")
        if os.path.exists(ep):
            os.unlink(ep)
        args = [os.path.join(BIN, "zgrid-head"), "--endpoints-file", ep, "--log-level", "warn"]
        if self.frontend:  # a restart keeps its ports
            args += ["--frontend", self.frontend, "--backend", self.backend]
        else:
            args += ["--frontend", "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0"]
        if self.data_dir:
            args += ["--data-dir", self.data_dir]
        args += self.head_args
        log = open(os.path.join(self.tmp, "head.log"), "ab")
        self.head_proc = subprocess.Popen(args, stdout=log, stderr=log)
        self.procs.append(self.head_proc)
        wait_until(lambda: os.path.exists(ep), what="the head's endpoints file")
        fields = dict(line.strip().split("=", 1) for line in open(ep) if "=" in line)
        self.frontend, self.backend = fields["frontend"], fields["backend"]

    def start_node(self, workers, i):
        args = [os.path.join(BIN, "zgrid-node"), "--head", self.backend, "--workers", str(workers)]
        args += self.node_args
        log = open(os.path.join(self.tmp, f"node{i}.log"), "ab")
        self.procs.append(subprocess.Popen(args, stdout=log, stderr=log))

    def kill_head(self):
        self.head_proc.send_signal(signal.SIGKILL)
        self.head_proc.wait(10)

    def _node_count(self):
        import zgrid

        try:
            with zgrid.connect(self.frontend, timeout=1.0, **self.client_keys) as g:
                return len(g.nodes())
        except zgrid.Error:
            return -1

    def stop(self):
        for p in reversed(self.procs):  # only the processes this fixture started
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@pytest.fixture
def grid_env():
    with tempfile.TemporaryDirectory(prefix="zgrid-py-") as tmp:
        g = LocalGrid(tmp)
        try:
            yield g
        finally:
            g.stop()
