#!/usr/bin/env bash
# scripts/grid-local.sh: up starts a head and supervised nodes, a killed node
# comes back, down stops exactly what up started.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ZGRID_BIN=${1:-$ROOT/build}
export ZGRID_RUN_DIR=$(mktemp -d /tmp/zgrid-local-test.XXXXXX)
export ZGRID_FRONTEND=tcp://127.0.0.1:0 ZGRID_BACKEND=tcp://127.0.0.1:0
fail() { echo "grid_local_test: FAIL: $*" >&2; "$ROOT/scripts/grid-local.sh" down >/dev/null 2>&1; exit 1; }
trap 'rm -rf "$ZGRID_RUN_DIR"' EXIT
G="$ROOT/scripts/grid-local.sh"
"$G" up --nodes 2 --workers 1 || fail "up"
"$G" status | grep -q "^node 2: pid" || fail "status"
pids="$(cat "$ZGRID_RUN_DIR"/*.pid)"
eval "$("$G" env)"
[ "$("$ZGRID_BIN/zgrid" nodes --json | grep -c node_id)" = 2 ] || fail "2 nodes expected"
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
echo "1 passed, 0 failed"
