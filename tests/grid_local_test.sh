#!/usr/bin/env bash
# scripts/grid-local.sh: up starts a head and supervised nodes (with Python
# workers by default: a function runs through zgrid.Executor), a killed node
# comes back, down stops exactly what up started. up --standby starts a
# failover pair: the standby takes over from a SIGKILLed active head within
# 5 s, the node and the CLI follow, the killed head comes back as the standby.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ZGRID_BIN=${1:-$ROOT/build}
export ZGRID_RUN_DIR=$(mktemp -d /tmp/zgrid-local-test.XXXXXX)
export ZGRID_FRONTEND=tcp://127.0.0.1:0 ZGRID_BACKEND=tcp://127.0.0.1:0 ZGRID_HTTP=127.0.0.1:0
export ZGRID_FRONTEND2=tcp://127.0.0.1:0 ZGRID_BACKEND2=tcp://127.0.0.1:0 ZGRID_HTTP2=127.0.0.1:0
fail() { echo "grid_local_test: FAIL: $*" >&2; "$ROOT/scripts/grid-local.sh" down >/dev/null 2>&1; exit 1; }
trap 'rm -rf "$ZGRID_RUN_DIR"' EXIT
G="$ROOT/scripts/grid-local.sh"
"$G" up --nodes 2 --workers 1 || fail "up"
st=$("$G" status) || fail "status"
grep -q "^node 2: pid" <<<"$st" || fail "status: $st"
pids="$(cat "$ZGRID_RUN_DIR"/*.pid)"
eval "$("$G" env)"
[ "$("$ZGRID_BIN/zgrid" nodes --json | grep -c node_id)" = 2 ] || fail "2 nodes expected"
# Python workers are on by default: a notebook's functions run on this grid
# (Debian's Python, which the module is built for; ZGRID_HEAD from env).
grep -q "^python workers: /" <<<"$st" || fail "Python workers are not on by default: $st"
PYTHONPATH="$ZGRID_BIN/python" timeout 120 /usr/bin/python3 - <<'PY' || fail "a Python function did not run on the grid"
import zgrid

offset = 7
with zgrid.Executor() as ex:
    got = list(ex.map(lambda x: x * x + offset, range(200), chunksize=9))
    assert got == [x * x + offset for x in range(200)], got
    assert ex.submit(pow, 2, 10).result(timeout=60) == 1024
PY
# A node that dies is restarted by its supervisor.
old=$(cat "$ZGRID_RUN_DIR/node-1.pid")
kill -9 "$old"
ok=0
for _ in $(seq 1 100); do
  new=$(cat "$ZGRID_RUN_DIR/node-1.pid")
  [ "$new" != "$old" ] && kill -0 "$new" 2>/dev/null && { ok=1; break; }
  sleep 0.05
done
[ $ok = 1 ] || fail "the killed node was not restarted"
pids="$pids $(cat "$ZGRID_RUN_DIR/node-1.pid")"
"$G" up --nodes 2 2>&1 | grep -q "already up" || fail "up twice started a second grid"
"$G" down || fail "down"
for p in $pids; do
  [ "$p" = "$old" ] && continue
  # A zombie (exited, not yet reaped by its new parent) does not run.
  if [ -e "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then
    fail "process $p still runs after down"
  fi
done
"$G" status >/dev/null && fail "status says running after down"

# A failover pair on one data directory.
role() { sed -n 's/^role=//p' "$ZGRID_RUN_DIR/$1" 2>/dev/null; }
gone() {  # every PID given has exited (a zombie does not run)
  for p in "$@"; do
    if [ -e "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then return 1; fi
  done
}
"$G" up --standby --nodes 1 --workers 1 --no-python || fail "up --standby"
st=$("$G" status) || fail "status of the pair"
grep -q "^python workers: off" <<<"$st" || fail "--no-python: $st"
"$ZGRID_BIN/zgrid" --head "$(sed -n 's/^frontend=//p' "$ZGRID_RUN_DIR/endpoints")" nodes --json \
  | grep -Eq '[",]python@' && fail "--no-python: a node offers the python service"
[ "$(role endpoints)" = active ] || fail "head 1 is not active: $(role endpoints)"
[ "$(role endpoints2)" = standby ] || fail "head 2 is not the standby: $(role endpoints2)"
[ -d "$ZGRID_RUN_DIR/data/lease" ] || fail "the pair does not share the run dir's data directory"
st=$("$G" status) || fail "status of the pair"
grep -q "^head 1: pid [0-9]*, active (epoch 1)" <<<"$st" || fail "status: head 1: $st"
grep -q "^head 2: pid [0-9]*, standby (epoch 1)" <<<"$st" || fail "status: head 2: $st"
eval "$("$G" env)"
[[ "$ZGRID_HEAD" == tcp://*,tcp://* ]] || fail "env does not list both heads: $ZGRID_HEAD"
"$ZGRID_BIN/zgrid" nodes --json | grep -q node_id || fail "the CLI given both heads sees no node"
pids="$(cat "$ZGRID_RUN_DIR"/*.pid)"
old=$(cat "$ZGRID_RUN_DIR/head.pid")
kill -9 "$old"
t0=$(date +%s%N)
until [ "$(role endpoints2)" = active ]; do
  [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ] || fail "the standby did not take over within 5 s"
  sleep 0.05
done
echo "grid_local_test: takeover in $(( ($(date +%s%N) - t0) / 1000000 )) ms" >&2
[ "$(sed -n 's/^epoch=//p' "$ZGRID_RUN_DIR/endpoints2")" = 2 ] || fail "the new active head is not at epoch 2"
# The node re-registers with the new active head; the CLI finds it.
ok=0
for _ in $(seq 1 200); do
  "$ZGRID_BIN/zgrid" --timeout 2s nodes --json 2>/dev/null | grep -q node_id && { ok=1; break; }
  sleep 0.05
done
[ $ok = 1 ] || fail "the node is not registered with the new active head"
# The killed head is restarted by its supervisor and comes back as the standby.
ok=0
for _ in $(seq 1 200); do
  new=$(cat "$ZGRID_RUN_DIR/head.pid")
  [ "$new" != "$old" ] && kill -0 "$new" 2>/dev/null && [ "$(role endpoints)" = standby ] && { ok=1; break; }
  sleep 0.05
done
[ $ok = 1 ] || fail "the killed head did not come back as the standby"
st=$("$G" status) || fail "status after the takeover"
grep -q "^head 1: pid $new, standby (epoch 2)" <<<"$st" || fail "status after the takeover: $st"
pids="$pids $new"
"$G" down || fail "down of the pair"
# shellcheck disable=SC2086
gone $pids || fail "a process of the pair still runs after down"
"$G" status >/dev/null && fail "status says running after down of the pair"
[ -z "$(ls "$ZGRID_RUN_DIR"/*.pid 2>/dev/null)" ] || fail "pid files left after down"
echo "2 passed, 0 failed"
