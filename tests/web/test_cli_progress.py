"""The CLI's progress line: drawn on stderr when it is a terminal (a
pseudo-terminal here), never on a pipe, and not with --quiet."""

import os
import pty
import select
import subprocess
import tempfile

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
