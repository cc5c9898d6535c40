"""Real zgrid-head and zgrid-node processes on loopback with ephemeral ports,
driven through the zgrid CLI, for the dashboard's browser test and the CLI's
progress line. Binaries come from ZGRID_BIN_DIR (set by ctest)."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

BIN = os.environ.get("ZGRID_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def wait_until(cond, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def http_get(url, token=None):
    """(status, body) of a GET; never raises for an HTTP error status."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class LocalGrid:
    def __init__(self, tmp, nodes=1, workers=1, head_args=(), node_args=(), cli_args=()):
        self.tmp = tmp
        self.procs = []
        self.cli_args = list(cli_args)
        ep = os.path.join(tmp, "endpoints")
        args = [os.path.join(BIN, "zgrid-head"), "--endpoints-file", ep, "--frontend",
                "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0",
                "--data-dir", os.path.join(tmp, "data")] + list(head_args)
        log = open(os.path.join(tmp, "head.log"), "ab")
        self.procs.append(subprocess.Popen(args, stdout=log, stderr=log))
        wait_until(lambda: os.path.exists(ep), what="the head's endpoints file")
        fields = dict(line.strip().split("=", 1) for line in open(ep) if "=" in line)
        self.frontend, self.backend = fields["frontend"], fields["backend"]
        self.http = fields.get("http", "")
        for i in range(nodes):
            nlog = open(os.path.join(tmp, f"node{i}.log"), "ab")
            self.procs.append(subprocess.Popen(
                [os.path.join(BIN, "zgrid-node"), "--head", self.backend, "--workers",
                 str(workers), "--node-id", f"node{i}"] + list(node_args), stdout=nlog, stderr=nlog))
        wait_until(lambda: len(self.nodes()) == nodes, what=f"{nodes} node(s)")

    def cli(self, *args, input=None, check=True):
        r = subprocess.run([os.path.join(BIN, "zgrid"), "--head", self.frontend] + self.cli_args
                           + list(args), input=input, capture_output=True, text=True, timeout=120)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    def nodes(self):
        r = self.cli("nodes", "--json", check=False)
        return [json.loads(line) for line in r.stdout.splitlines()] if r.returncode == 0 else []

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)
