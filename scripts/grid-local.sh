#!/usr/bin/env bash
# A grid on this machine: one zgrid-head and N supervised zgrid-node processes.
#
#   grid-local.sh up [--nodes N] [--workers W] [--data-dir DIR]
#   grid-local.sh down | status | restart | env
#
# Run directory: $ZGRID_RUN_DIR (default /tmp/zgrid-$USER) holds pid files and
# logs. Endpoints: $ZGRID_FRONTEND / $ZGRID_BACKEND (defaults 127.0.0.1:5555 /
# :5556; ":0" picks free ports). Nodes are supervised: one that dies is
# restarted. `down` stops exactly the processes `up` started (by PID).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${ZGRID_BIN:-$HERE/../build}
[ -x "$BIN/zgrid-head" ] || BIN=$(dirname "$(command -v zgrid-head 2>/dev/null || echo /nonexistent/x)")
RUN=${ZGRID_RUN_DIR:-/tmp/zgrid-${USER:-$(id -un)}}
FRONTEND=${ZGRID_FRONTEND:-tcp://127.0.0.1:5555}
BACKEND=${ZGRID_BACKEND:-tcp://127.0.0.1:5556}
NODES=2
WORKERS=0
DATA_DIR=${ZGRID_DATA_DIR:-}

die() { echo "grid-local: $*" >&2; exit 2; }
USAGE="usage: grid-local.sh up|down|status|restart|env [--nodes N] [--workers W] [--data-dir DIR]

  up        start zgrid-head and N supervised zgrid-node processes (default 2)
  down      stop exactly the processes up started (by PID)
  status    what runs, its endpoints and the dashboard's address
  restart   down, then up
  env       print 'export ZGRID_HEAD=...' for the zgrid CLI

Run directory \$ZGRID_RUN_DIR (default /tmp/zgrid-\$USER); endpoints \$ZGRID_FRONTEND,
\$ZGRID_BACKEND (default tcp://127.0.0.1:5555 and :5556; :0 picks free ports)."
usage() { echo "$USAGE"; exit 0; }

cmd=${1:-status}
case "$cmd" in -h|--help|help) usage ;; esac
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage ;;
    --nodes) NODES=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --data-dir) DATA_DIR=$2; shift 2 ;;
    *) die "unknown option $1 (use --nodes N, --workers W, --data-dir DIR)" ;;
  esac
done

# True when pid file $1 names a live process whose command is $2.
alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qa "$2" "/proc/$pid/cmdline" 2>/dev/null
}

endpoint() { sed -n "s/^$1=//p" "$RUN/endpoints" 2>/dev/null; }

supervise() {
  local i=$1 child=0
  trap 'touch "$RUN/node-$i.stopping"; [ $child -gt 0 ] && kill -TERM $child 2>/dev/null; wait $child 2>/dev/null; exit 0' TERM INT
  while true; do
    "$BIN/zgrid-node" --head "$(endpoint backend)" --workers "$WORKERS" --node-id "$(hostname -s)-local-$i" \
      >>"$RUN/node-$i.log" 2>&1 &
    child=$!
    echo "$child" >"$RUN/node-$i.pid"
    set +e
    wait "$child"
    rc=$?
    set -e
    [ -f "$RUN/node-$i.stopping" ] && exit 0
    echo "$(date -u +%FT%TZ) grid-local: zgrid-node $i exited ($rc); restarting in 1s" >>"$RUN/node-$i.log"
    sleep 1
  done
}

up() {
  [ -x "$BIN/zgrid-head" ] || die "zgrid-head not found (build first: scripts/build.sh)"
  mkdir -p "$RUN"
  if alive "$RUN/head.pid" zgrid-head; then
    echo "grid-local: already up (head pid $(cat "$RUN/head.pid"))" >&2
    return 0
  fi
  rm -f "$RUN/endpoints" "$RUN"/node-*.stopping
  local args=(--frontend "$FRONTEND" --backend "$BACKEND" --endpoints-file "$RUN/endpoints")
  [ -n "$DATA_DIR" ] && args+=(--data-dir "$DATA_DIR")
  "$BIN/zgrid-head" "${args[@]}" >>"$RUN/head.log" 2>&1 &
  echo $! >"$RUN/head.pid"
  for _ in $(seq 1 200); do
    [ -s "$RUN/endpoints" ] && break
    alive "$RUN/head.pid" zgrid-head || { tail -n 5 "$RUN/head.log" >&2; die "zgrid-head did not start"; }
    sleep 0.05
  done
  [ -s "$RUN/endpoints" ] || die "zgrid-head did not write its endpoints"
  echo "$NODES" >"$RUN/nodes"
  for i in $(seq 1 "$NODES"); do
    supervise "$i" </dev/null >/dev/null 2>&1 &
    echo $! >"$RUN/supervisor-$i.pid"
  done
  local front n=0
  front=$(endpoint frontend)
  for _ in $(seq 1 200); do
    n=$("$BIN/zgrid" --head "$front" --timeout 2s nodes --json 2>/dev/null | grep -c node_id || true)
    [ "$n" -ge "$NODES" ] && break
    sleep 0.05
  done
  [ "$n" -ge "$NODES" ] || die "only $n of $NODES nodes registered (logs in $RUN)"
  echo "grid-local: up: head $front, $NODES nodes (run dir $RUN)" >&2
}

down() {
  local stopped=0
  for f in "$RUN"/supervisor-*.pid; do
    [ -e "$f" ] || continue
    local i=${f##*/supervisor-}; i=${i%.pid}
    touch "$RUN/node-$i.stopping"
    if alive "$f" bash; then kill -TERM "$(cat "$f")" 2>/dev/null || true; fi
    if alive "$RUN/node-$i.pid" zgrid-node; then kill -TERM "$(cat "$RUN/node-$i.pid")" 2>/dev/null || true; fi
    stopped=$((stopped + 1))
  done
  if alive "$RUN/head.pid" zgrid-head; then kill -TERM "$(cat "$RUN/head.pid")" 2>/dev/null || true; fi
  # Wait (bounded) for everything to exit, then SIGKILL what is left.
  for _ in $(seq 1 100); do
    local any=0
    alive "$RUN/head.pid" zgrid-head && any=1
    for f in "$RUN"/node-*.pid; do [ -e "$f" ] && alive "$f" zgrid-node && any=1; done
    [ $any -eq 0 ] && break
    sleep 0.05
  done
  alive "$RUN/head.pid" zgrid-head && kill -KILL "$(cat "$RUN/head.pid")" 2>/dev/null || true
  for f in "$RUN"/node-*.pid "$RUN"/supervisor-*.pid; do
    [ -e "$f" ] || continue
    if alive "$f" zgrid-node || alive "$f" bash; then kill -KILL "$(cat "$f")" 2>/dev/null || true; fi
  done
  rm -f "$RUN"/*.pid "$RUN"/node-*.stopping "$RUN/endpoints"
  echo "grid-local: down ($stopped nodes)" >&2
}

status() {
  if alive "$RUN/head.pid" zgrid-head; then
    echo "head: pid $(cat "$RUN/head.pid"), clients at $(endpoint frontend), nodes at $(endpoint backend)"
    [ -z "$(endpoint http)" ] || echo "dashboard and /metrics: $(endpoint http)"
    for f in "$RUN"/node-*.pid; do
      [ -e "$f" ] || continue
      local i=${f##*/node-}; i=${i%.pid}
      if alive "$f" zgrid-node; then echo "node $i: pid $(cat "$f")"; else echo "node $i: not running"; fi
    done
  else
    echo "grid-local: not running (run dir $RUN)"
    return 3
  fi
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  restart) down; up ;;
  env) [ -s "$RUN/endpoints" ] || die "not running"; echo "export ZGRID_HEAD=$(endpoint frontend)" ;;
  *) die "unknown command '$cmd' ($(head -n1 <<<"$USAGE"))" ;;
esac
