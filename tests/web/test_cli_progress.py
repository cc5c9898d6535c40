"""The CLI's progress line: drawn on stderr when it is a terminal (a
pseudo-terminal here), never on a pipe, and not with --quiet."""

import json
import os
import pty
import re
import select
import subprocess
import tempfile
import time

from conftest import BIN, LocalGrid


def run_with_tty_stderr(args, stdin_text=None, timeout=60):
    """Runs the CLI with stderr on a pseudo-terminal and stdout to a pipe:
    (exit code, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([os.path.join(BIN, "zgrid")] + args, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    if stdin_text is not None:
        p.stdin.write(stdin_text.encode())
    p.stdin.close()
    tty = b""
    while True:
        r, _, _ = select.select([master], [], [], timeout)
        if not r:
            p.kill()
            raise AssertionError("no output from the terminal for %s s" % timeout)
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed it
            break
        if not chunk:
            break
        tty += chunk
    out = p.stdout.read().decode()
    os.close(master)
    return p.wait(timeout), out, tty.decode(errors="replace")


def test_submit_and_fetch_draw_the_progress_line_on_a_terminal_only():
    with tempfile.TemporaryDirectory(prefix="zgrid-tty-") as tmp:
        g = LocalGrid(tmp, nodes=1, workers=2)
        try:
            head = ["--head", g.frontend]
            # Interactive, results to a pipe: the bar on the terminal.
            rc, out, tty = run_with_tty_stderr(
                head + ["submit", "--service", "sleep", "--file", "-"], "30\n" * 60)
            assert rc == 0 and out.count("\n") == 60
            assert "\r[" in tty and "req/s" in tty and "60/60" in tty, tty
            # Durable: what was sent and acknowledged while sending.
            rc, out, tty = run_with_tty_stderr(
                head + ["submit", "--service", "sleep", "--durable", "--file", "-"], "30\n" * 80)
            assert rc == 0 and len(out.strip()) == 32
            assert "sending: 80 sent" in tty, tty
            sid = out.strip()
            # fetch while it runs: the session's bar, then the results.
            rc, out, tty = run_with_tty_stderr(head + ["fetch", sid])
            assert rc == 0 and out.count("\n") == 80
            assert "\r[" in tty and "/80" in tty and "ETA" in tty, tty
            # --quiet: nothing on the terminal but the session line.
            rc, out, tty = run_with_tty_stderr(
                head + ["submit", "--service", "sleep", "--quiet", "--file", "-"], "1\n" * 20)
            assert rc == 0 and "\r[" not in tty and "req/s" not in tty, tty  # the tty adds \r\n
            # A pipe: never.
            r = subprocess.run([os.path.join(BIN, "zgrid")] + head
                               + ["submit", "--service", "sleep", "--file", "-"],
                               input="30\n" * 40, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and r.stdout.count("\n") == 40
            assert "\r" not in r.stderr and "req/s" not in r.stderr, r.stderr
            r = g.cli("fetch", sid)
            assert "\r" not in r.stderr and r.stdout.count("\n") == 80
        finally:
            g.stop()


def run_on_tty_timed(args, deadline_s=30):
    """Runs the CLI with stderr on a pseudo-terminal, stdin closed and stdout
    to a pipe, reading the terminal as it comes: (exit code, stdout, [(seconds
    since the start, text)] of the terminal's chunks). Killed and failed after
    `deadline_s` in all."""
    master, slave = pty.openpty()
    start = time.monotonic()
    p = subprocess.Popen([os.path.join(BIN, "zgrid")] + args, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    try:
        while True:
            left = start + deadline_s - time.monotonic()
            if left <= 0:
                raise AssertionError("%s still running after %s s; the terminal got %r"
                                     % (args, deadline_s, "".join(t for _, t in chunks)))
            r, _, _ = select.select([master], [], [], left)
            if not r:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed it
                break
            if not chunk:
                break
            chunks.append((time.monotonic() - start, chunk.decode(errors="replace")))
        out = p.stdout.read().decode()
        return p.wait(max(1, start + deadline_s - time.monotonic())), out, chunks
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        os.close(master)


WAITING = re.compile(r"zgrid: waiting for client lab-pc to commit; it will be removed at "
                     r"(\d\d):(\d\d):(\d\d) if idle\r\n")


def test_fetch_says_whom_it_waits_for_and_why_it_ends_when_that_client_is_removed():
    with tempfile.TemporaryDirectory(prefix="zgrid-tty-") as tmp:
        g = LocalGrid(tmp, nodes=1, workers=1, head_args=["--client-idle-timeout", "3s"])
        try:
            # A sender that leaves its client uncommitted, and exits 0.
            sub = g.cli("submit", "--durable", "--no-end", "--client-id", "lab-pc", "--service",
                        "factorize", "--file", "-", input="91\n1001\n15\n")
            submitted = time.monotonic()
            sid = sub.stdout.strip()
            assert len(sid) == 32, sub.stdout
            assert "not ended (--no-end)" in sub.stderr, sub.stderr

            rc, out, chunks = run_on_tty_timed(["--head", g.frontend, "fetch", sid], deadline_s=30)
            finished = time.localtime()
            tty = "".join(t for _, t in chunks)
            assert rc == 1, tty
            assert out == "", out  # nothing ran: nothing to print

            # Within a few seconds: whom it waits for, and when that client goes.
            m = WAITING.search(tty)
            assert m, tty
            seen_at = None
            so_far = ""
            for at, text in chunks:
                so_far += text
                if WAITING.search(so_far):
                    seen_at = at
                    break
            assert seen_at is not None and seen_at < 3.0, (seen_at, tty)
            assert tty.count("waiting for client lab-pc") == 1, tty  # once per client
            # The time it names is when the removal came (the fetch ended
            # just after it), to within the second it was rounded to.
            told = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])
            now = finished.tm_hour * 3600 + finished.tm_min * 60 + finished.tm_sec
            late = (now - told + 43200) % 86400 - 43200  # midnight in between: still small
            assert -2 <= late <= 10, (m[0], time.strftime("%H:%M:%S", finished))

            # Once the client is removed (its 3 s idle timeout): exit 1, and why.
            assert time.monotonic() - submitted >= 2.0, tty
            lines = tty.replace("\r\n", "\n").split("\n")
            last = [line for line in lines if "lab-pc" in line][-1]
            assert "lost the requests of removed clients" in last or "was abandoned" in last, tty
            assert "client lab-pc removed at" in last and "with 3 requests" in last, last
            assert tty.index(m[0]) < tty.rindex(last), tty

            # Later fetches say so at once, on a pipe too; status tells the same.
            r = g.cli("fetch", sid, check=False)
            assert r.returncode == 1 and "was abandoned" in r.stderr and "lab-pc" in r.stderr, r.stderr
            st = json.loads(g.cli("status", sid, "--json").stdout)
            assert st["state"] == "abandoned" and st["removed"] == 3, st
            assert "lab-pc" in st["removals"] and st["waiting_for"] == "", st
        finally:
            g.stop()
