"""The dashboard in a real browser (headless Chromium driven by Selenium):
one row per node, a session's progress growing between two reads, a
screenshot for docs/operations.md; with CURVE, no session ids without the
token; and a failover pair: each head's role and epoch, the standby's banner,
and a takeover in the header and the event list."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import BIN, LocalGrid, http_get, wait_until

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def browser():
    if not os.path.exists(CHROMEDRIVER):
        if os.environ.get("CI") == "true":
            raise AssertionError("chromedriver is missing (scripts/install-deps.sh installs it)")
        pytest.skip("no chromedriver on this machine")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--no-first-run", "--disable-extensions",
              "--disable-background-networking", "--disable-sync", "--no-proxy-server"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def polls(drv):
    return drv.execute_script("return window.zgridDashboard ? window.zgridDashboard.polls : 0")


def session_progress(drv, sid):
    rows = drv.find_elements(By.CSS_SELECTOR, f'tr.session-row[data-session-id="{sid}"]')
    if not rows:
        return None
    p = rows[0].find_element(By.CSS_SELECTOR, "progress.session-progress")
    return float(p.get_attribute("value") or 0), float(p.get_attribute("max") or 0)


def test_dashboard_shows_every_node_and_a_session_progressing():
    with tempfile.TemporaryDirectory(prefix="zgrid-web-") as tmp:
        g = LocalGrid(tmp, nodes=3, workers=1)
        drv = None
        try:
            # The browser first: its start (seconds under a sanitizer, on a
            # busy machine) must not eat the session's run time.
            drv = browser()
            drv.get(g.http)
            wait_until(lambda: polls(drv) >= 1, what="the dashboard's first poll")
            # 360 requests of 40 ms on 3 workers: about 5 s of work.
            sid = g.cli("submit", "--service", "sleep", "--durable", "--file", "-", "--quiet",
                        input="40\n" * 360).stdout.strip()
            assert len(sid) == 32
            ids = sorted(e.get_attribute("data-node-id")
                         for e in drv.find_elements(By.CSS_SELECTOR, "tr.node-row"))
            assert ids == sorted(n["node_id"] for n in g.nodes()) == ["node0", "node1", "node2"]
            first = wait_until(lambda: session_progress(drv, sid), what="the session's row")
            assert first[1] == 360
            later = wait_until(
                lambda: (lambda p: p if p and p[0] > first[0] else None)(session_progress(drv, sid)),
                timeout=20, what="the session's progress to grow")
            assert later[0] > first[0]
            # The page needed nothing from outside: its own origin only.
            resources = drv.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)")
            assert all(r.startswith(g.http.rstrip("/")) for r in resources), resources
            shot = os.path.join(os.environ.get("ZGRID_SCREENSHOT_DIR", tmp), "dashboard.png")
            assert drv.save_screenshot(shot)
            assert os.path.getsize(shot) > 10_000
        finally:
            if drv:
                drv.quit()
            g.stop()


def test_with_curve_the_page_without_the_token_shows_no_session_ids():
    with tempfile.TemporaryDirectory(prefix="zgrid-web-") as tmp:
        keys = os.path.join(tmp, "keys")
        os.makedirs(keys)
        cli = os.path.join(BIN, "zgrid")
        for name in ("head", "alice", "node1"):
            subprocess.run([cli, "keygen", "--out", keys, "--name", name], check=True,
                           capture_output=True)
        for name, d in (("alice", "clients"), ("node1", "nodes")):
            os.makedirs(os.path.join(keys, d), exist_ok=True)
            shutil.copy(os.path.join(keys, name + ".pub"), os.path.join(keys, d))
        k = lambda n: os.path.join(keys, n)  # noqa: E731
        token = "t0k3n-" + os.urandom(12).hex()
        tfile = k("http.token")
        with open(os.open(tfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(token + "\n")
        g = LocalGrid(tmp, nodes=1, head_args=["--curve-secret", k("head.key"),
                                               "--authorized-clients", k("clients"),
                                               "--authorized-nodes", k("nodes"),
                                               "--http-token", tfile],
                      node_args=["--head-key", k("head.pub"), "--key", k("node1.key")],
                      cli_args=["--head-key", k("head.pub"), "--key", k("alice.key")])
        drv = None
        try:
            sid = g.cli("submit", "--service", "factorize", "--durable", "--file", "-",
                        input="91\n1001\n").stdout.strip()
            assert len(sid) == 32
            # The API: nothing without the token (nor with a wrong one).
            for path in ("api/sessions", "api/status", "api/nodes", "api/events", "metrics"):
                st, body = http_get(g.http + path)
                assert st == 401 and sid not in body, (path, st)
                assert http_get(g.http + path, token="wrong-" + token)[0] == 401
            st, body = http_get(g.http + "api/sessions", token=token)
            assert st == 200 and sid in body
            drv = browser()
            drv.get(g.http)
            notice = wait_until(lambda: [e for e in drv.find_elements(By.ID, "auth-notice")
                                         if e.is_displayed()], what="the token notice")
            assert "token" in notice[0].text.lower()
            time.sleep(1.5)  # a poll or two more: still nothing
            assert sid not in drv.page_source
            assert not drv.find_elements(By.CSS_SELECTOR, "tr.session-row")
            # With the token (in the fragment, never sent to the server): the session.
            drv.get(g.http + "#token=" + token)
            row = wait_until(lambda: drv.find_elements(
                By.CSS_SELECTOR, f'tr.session-row[data-session-id="{sid}"]'), what="the row")
            assert row and "token=" not in drv.current_url
        finally:
            if drv:
                drv.quit()
            g.stop()


def start_head(tmp, name, data):
    """A zgrid-head on ephemeral ports with --data-dir `data`; (process, endpoints file)."""
    ep = os.path.join(tmp, name + ".endpoints")
    log = open(os.path.join(tmp, name + ".log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "zgrid-head"), "--endpoints-file", ep,
                          "--frontend", "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0",
                          "--http", "127.0.0.1:0", "--data-dir", data], stdout=log, stderr=log)
    wait_until(lambda: os.path.exists(ep), what=f"head {name}'s endpoints file")
    return p, ep


def endpoints(ep):
    # The head rewrites the file by rename: a read sees one whole version.
    with open(ep) as f:
        return dict(line.strip().split("=", 1) for line in f if "=" in line)


def shown(drv, elem_id):
    e = drv.find_elements(By.ID, elem_id)
    return e[0].text if e and e[0].is_displayed() else None


def test_a_failover_pair_shows_each_heads_role_and_the_takeover():
    with tempfile.TemporaryDirectory(prefix="zgrid-web-") as tmp:
        data = os.path.join(tmp, "data")
        procs, drv = [], None
        try:
            a, a_ep = start_head(tmp, "a", data)
            procs.append(a)
            assert endpoints(a_ep)["role"] == "active"
            b, b_ep = start_head(tmp, "b", data)
            procs.append(b)
            eb = endpoints(b_ep)
            assert eb["role"] == "standby"
            drv = browser()
            # The active head's page: its role and epoch, no standby banner.
            drv.get(endpoints(a_ep)["http"])
            wait_until(lambda: shown(drv, "stat-role") == "active", what="role active on head a")
            assert shown(drv, "stat-epoch") == "1"
            assert shown(drv, "standby-notice") is None
            # The standby's page says so and names the active head.
            drv.get(eb["http"])
            wait_until(lambda: shown(drv, "stat-role") == "standby", what="role standby on head b")
            assert shown(drv, "stat-epoch") == "1"
            notice = wait_until(lambda: shown(drv, "standby-notice"), what="the standby banner")
            assert endpoints(a_ep)["frontend"] in notice
            assert not drv.find_elements(By.CSS_SELECTOR, 'li.event[data-kind="takeover"]')
            # The active head's machine dies: the open page shows the takeover.
            a.send_signal(signal.SIGKILL)
            a.wait(10)
            wait_until(lambda: shown(drv, "stat-role") == "active", timeout=15,
                       what="head b's page to turn active")
            assert shown(drv, "stat-epoch") == "2"
            assert shown(drv, "standby-notice") is None
            ev = wait_until(lambda: drv.find_elements(By.CSS_SELECTOR, 'li.event[data-kind="takeover"]'),
                            what="the takeover event")
            tag = ev[0].find_element(By.CSS_SELECTOR, ".tag")
            assert tag.text == "takeover" and "tag-warn" in tag.get_attribute("class")
            assert "epoch 2" in ev[0].text
            shot = os.path.join(os.environ.get("ZGRID_SCREENSHOT_DIR", tmp), "dashboard-takeover.png")
            assert drv.save_screenshot(shot)
        finally:
            if drv:
                drv.quit()
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    p.wait(10)
