#!/usr/bin/env bash
# A grid on this machine: one zgrid-head (or, with --standby, a failover pair
# of heads on one data directory) and N supervised zgrid-node processes.
#
#   grid-local.sh up [--nodes N] [--workers W] [--data-dir DIR] [--standby]
#                    [--python PYTHON | --no-python]
#   grid-local.sh down | status | restart | env
#
# Nodes run Python functions (zgrid.Executor) by default: each is started
# with `zgrid-node --python PYTHON`, PYTHON the first of $ZGRID_PYTHON,
# `python3` on PATH and /usr/bin/python3 that can import cloudpickle (the
# client's Python should be the same version: functions travel as its
# bytecode). --python PYTHON picks one (it must import cloudpickle);
# --no-python (or ZGRID_PYTHON=off) starts the nodes without Python workers.
#
# Run directory: $ZGRID_RUN_DIR (default /tmp/zgrid-$USER) holds pid files and
# logs. Endpoints: $ZGRID_FRONTEND / $ZGRID_BACKEND (defaults 127.0.0.1:5555 /
# :5556; ":0" picks free ports), $ZGRID_HTTP (the dashboard; default the
# head's own, 127.0.0.1:9755 or a free port when that is taken). With
# --standby the second head uses $ZGRID_FRONTEND2 / $ZGRID_BACKEND2 /
# $ZGRID_HTTP2 (defaults :5565 / :5566 / the head's own), both heads are
# supervised (one that exits, e.g. killed or stood down, is restarted and
# comes back as the standby), and nodes and the CLI get both heads'
# endpoints. Nodes are supervised: one that dies is restarted. `down` stops
# exactly the processes `up` started (by PID).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${ZGRID_BIN:-$HERE/../build}
[ -x "$BIN/zgrid-head" ] || BIN=$(dirname "$(command -v zgrid-head 2>/dev/null || echo /nonexistent/x)")
RUN=${ZGRID_RUN_DIR:-/tmp/zgrid-${USER:-$(id -un)}}
FRONTEND=${ZGRID_FRONTEND:-tcp://127.0.0.1:5555}
BACKEND=${ZGRID_BACKEND:-tcp://127.0.0.1:5556}
HTTP=${ZGRID_HTTP:-}
FRONTEND2=${ZGRID_FRONTEND2:-tcp://127.0.0.1:5565}
BACKEND2=${ZGRID_BACKEND2:-tcp://127.0.0.1:5566}
HTTP2=${ZGRID_HTTP2:-}
STANDBY=0
NODES=2
WORKERS=0
DATA_DIR=${ZGRID_DATA_DIR:-}
PYTHON=${ZGRID_PYTHON:-}

die() { echo "grid-local: $*" >&2; exit 2; }
USAGE="usage: grid-local.sh up|down|status|restart|env [--nodes N] [--workers W] [--data-dir DIR] [--standby]
                         [--python PYTHON | --no-python]

  up        start zgrid-head and N supervised zgrid-node processes (default 2);
            --standby: a failover pair of heads on one data directory (default
            \$ZGRID_RUN_DIR/data), both supervised, nodes given both;
            nodes run Python functions (zgrid.Executor) with the first python3
            that imports cloudpickle (\$ZGRID_PYTHON, python3 on PATH,
            /usr/bin/python3); --python PYTHON picks it, --no-python turns it off
  down      stop exactly the processes up started (by PID)
  status    what runs, its endpoints and the dashboard's address
  restart   down, then up
  env       print 'export ZGRID_HEAD=...' for the zgrid CLI

Run directory \$ZGRID_RUN_DIR (default /tmp/zgrid-\$USER); endpoints \$ZGRID_FRONTEND,
\$ZGRID_BACKEND (default tcp://127.0.0.1:5555 and :5556; :0 picks free ports), \$ZGRID_HTTP;
the standby's \$ZGRID_FRONTEND2, \$ZGRID_BACKEND2, \$ZGRID_HTTP2 (default :5565, :5566)."
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
    --standby) STANDBY=1; shift ;;
    --python) PYTHON=$2; shift 2 ;;
    --no-python) PYTHON=off; shift ;;
    *) die "unknown option $1 (use --nodes N, --workers W, --data-dir DIR, --standby, --python PYTHON, --no-python)" ;;
  esac
done

# True when pid file $1 names a live process whose command is $2.
alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qa "$2" "/proc/$pid/cmdline" 2>/dev/null
}

# Head K's files: head 1 keeps the single head's names (head.pid, head.log,
# endpoints), head 2 has head2.pid, head2.log, endpoints2.
hf() { if [ "$1" = 1 ]; then echo "$RUN/$2"; else echo "$RUN/${2%%.*}$1${2#"${2%%.*}"}"; fi; }
# endpoint KEY [K]: a line of head K's endpoints file (default head 1).
endpoint() { sed -n "s/^$1=//p" "$(hf "${2:-1}" endpoints)" 2>/dev/null; }
# The heads up started: 1, or 1 2 for a pair.
heads() { if [ -e "$RUN/pair" ]; then echo 1 2; else echo 1; fi; }
# Comma-separated endpoints of every head (KEY frontend or backend), as up
# recorded them.
head_list() { cat "$RUN/$1s" 2>/dev/null || endpoint "$1"; }
head_alive() { alive "$(hf "$1" head.pid)" zgrid-head; }
# The frontend of the head that says it is active (else head 1's).
active_frontend() {
  local k
  for k in $(heads); do
    if head_alive "$k" && [ "$(endpoint role "$k")" = active ]; then endpoint frontend "$k"; return; fi
  done
  endpoint frontend
}

# The Python the nodes' workers run (zgrid-node --python), as an absolute
# path, or "off". A given one must import cloudpickle; by default the first
# of python3 on PATH and /usr/bin/python3 that does, else off with a note.
resolve_python() {
  local p c
  case "$PYTHON" in
    off|no|none|0) PYTHON=off; return 0 ;;
  esac
  if ! "$BIN/zgrid-node" --help 2>/dev/null | grep -q -- '--python'; then
    [ -z "$PYTHON" ] || die "--python $PYTHON: this zgrid-node ($BIN) has no --python"
    echo "grid-local: nodes without Python workers: this zgrid-node has no --python" >&2
    PYTHON=off
    return 0
  fi
  case "$PYTHON" in
    "")
      for c in "$(command -v python3 2>/dev/null || true)" /usr/bin/python3; do
        if [ -z "$c" ] || [ ! -x "$c" ]; then continue; fi
        p=$("$c" -c 'import cloudpickle, sys; print(sys.executable)' 2>/dev/null) || continue
        [ -n "$p" ] && PYTHON=$p && return 0
      done
      echo "grid-local: nodes without Python workers: no python3 here imports cloudpickle" \
        "(install python3-cloudpickle, or give --python PYTHON)" >&2
      PYTHON=off ;;
    *)
      c=$(command -v "$PYTHON" 2>/dev/null) || die "--python $PYTHON: no such program"
      p=$("$c" -c 'import cloudpickle, sys; print(sys.executable)' 2>/dev/null) \
        || die "--python $c cannot import cloudpickle (install python3-cloudpickle, or pip install cloudpickle into that environment)"
      PYTHON=$p ;;
  esac
}

supervise() {
  local i=$1 child=0 py=()
  [ "$PYTHON" = off ] || py=(--python "$PYTHON")
  trap 'touch "$RUN/node-$i.stopping"; [ $child -gt 0 ] && kill -TERM $child 2>/dev/null; wait $child 2>/dev/null; exit 0' TERM INT
  while true; do
    "$BIN/zgrid-node" --head "$(head_list backend)" --workers "$WORKERS" --node-id "$(hostname -s)-local-$i" \
      "${py[@]}" >>"$RUN/node-$i.log" 2>&1 &
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

# The arguments of head K: its configured endpoints, or, once it wrote its
# endpoints file, the ones it bound (a restarted head comes back on the same
# ports, which the nodes and the CLI were given).
head_args() {
  local k=$1 f b h ep
  ep=$(hf "$k" endpoints)
  if [ "$k" = 1 ]; then f=$FRONTEND b=$BACKEND h=$HTTP; else f=$FRONTEND2 b=$BACKEND2 h=$HTTP2; fi
  if [ -s "$ep" ]; then
    f=$(endpoint frontend "$k") b=$(endpoint backend "$k")
    if [ -n "$(endpoint http "$k")" ]; then h=$(endpoint http "$k"); h=${h#http://}; h=${h%/}; fi
  fi
  printf '%s\n' --frontend "$f" --backend "$b" --endpoints-file "$ep"
  [ -z "$h" ] || printf '%s\n' --http "$h"
  [ -z "$DATA_DIR" ] || printf '%s\n' --data-dir "$DATA_DIR"
}

# A head of a pair, restarted whenever it exits (killed, or it lost its
# lease and stood down) until down: it comes back as the standby. The 2 s
# pause lets the standby take over first.
supervise_head() {
  local k=$1 child=0 rc
  trap 'touch "$RUN/head$k.stopping"; [ $child -gt 0 ] && kill -TERM $child 2>/dev/null; wait $child 2>/dev/null; exit 0' TERM INT
  while true; do
    mapfile -t args < <(head_args "$k")
    "$BIN/zgrid-head" "${args[@]}" >>"$(hf "$k" head.log)" 2>&1 &
    child=$!
    echo "$child" >"$(hf "$k" head.pid)"
    set +e
    wait "$child"
    rc=$?
    set -e
    [ -f "$RUN/head$k.stopping" ] && exit 0
    echo "$rc" >"$RUN/head$k.exited"
    echo "$(date -u +%FT%TZ) grid-local: zgrid-head $k exited ($rc); restarting in 2s" >>"$(hf "$k" head.log)"
    sleep 2
    [ -f "$RUN/head$k.stopping" ] && exit 0
  done
}

# Starts head K (supervised in a pair) and waits (bounded) for its endpoints.
start_head() {
  local k=$1 ep log
  ep=$(hf "$k" endpoints)
  log=$(hf "$k" head.log)
  if [ -e "$RUN/pair" ]; then
    supervise_head "$k" </dev/null >/dev/null 2>&1 &
    echo $! >"$RUN/head-supervisor-$k.pid"
  else
    mapfile -t args < <(head_args "$k")
    "$BIN/zgrid-head" "${args[@]}" >>"$log" 2>&1 &
    echo $! >"$(hf "$k" head.pid)"
  fi
  for _ in $(seq 1 200); do
    [ -s "$ep" ] && return 0
    if [ -e "$RUN/head$k.exited" ] || { [ ! -e "$RUN/pair" ] && ! head_alive "$k"; }; then
      tail -n 5 "$log" >&2
      [ -e "$RUN/pair" ] && down >/dev/null 2>&1
      die "zgrid-head did not start"
    fi
    sleep 0.05
  done
  [ -e "$RUN/pair" ] && down >/dev/null 2>&1
  die "zgrid-head did not write its endpoints"
}

up() {
  [ -x "$BIN/zgrid-head" ] || die "zgrid-head not found (build first: scripts/build.sh)"
  mkdir -p "$RUN"
  local k
  for k in 1 2; do
    if head_alive "$k" || alive "$RUN/head-supervisor-$k.pid" bash; then
      echo "grid-local: already up (head pid $(cat "$(hf "$k" head.pid)" 2>/dev/null))" >&2
      return 0
    fi
  done
  rm -f "$RUN"/endpoints "$RUN"/endpoints2 "$RUN"/frontends "$RUN"/backends "$RUN"/pair \
    "$RUN"/node-*.stopping "$RUN"/head*.stopping "$RUN"/head*.exited
  resolve_python
  echo "$PYTHON" >"$RUN/python"
  if [ "$STANDBY" = 1 ]; then
    # A pair shares one data directory: the lease in it picks the active head.
    DATA_DIR=${DATA_DIR:-$RUN/data}
    touch "$RUN/pair"
  fi
  for k in $(heads); do start_head "$k"; done
  if [ "$STANDBY" = 1 ]; then
    echo "$(endpoint frontend 1),$(endpoint frontend 2)" >"$RUN/frontends"
    echo "$(endpoint backend 1),$(endpoint backend 2)" >"$RUN/backends"
  else
    endpoint frontend >"$RUN/frontends"
    endpoint backend >"$RUN/backends"
  fi
  echo "$NODES" >"$RUN/nodes"
  for i in $(seq 1 "$NODES"); do
    supervise "$i" </dev/null >/dev/null 2>&1 &
    echo $! >"$RUN/supervisor-$i.pid"
  done
  local front n=0
  front=$(active_frontend)
  for _ in $(seq 1 200); do
    n=$("$BIN/zgrid" --head "$front" --timeout 2s nodes --json 2>/dev/null | grep -c node_id || true)
    [ "$n" -ge "$NODES" ] && break
    sleep 0.05
  done
  [ "$n" -ge "$NODES" ] || die "only $n of $NODES nodes registered (logs in $RUN)"
  if [ "$STANDBY" = 1 ]; then
    echo "grid-local: up: heads $(head_list frontend) ($(endpoint role 1), $(endpoint role 2); data dir $DATA_DIR), $NODES nodes (run dir $RUN)" >&2
  else
    echo "grid-local: up: head $front, $NODES nodes (run dir $RUN)" >&2
  fi
  if [ "$PYTHON" = off ]; then
    echo "grid-local: Python workers off" >&2
  else
    echo "grid-local: Python workers: $PYTHON (zgrid.Executor runs functions here)" >&2
  fi
}

down() {
  local stopped=0 k
  for f in "$RUN"/supervisor-*.pid; do
    [ -e "$f" ] || continue
    local i=${f##*/supervisor-}; i=${i%.pid}
    touch "$RUN/node-$i.stopping"
    if alive "$f" bash; then kill -TERM "$(cat "$f")" 2>/dev/null || true; fi
    if alive "$RUN/node-$i.pid" zgrid-node; then kill -TERM "$(cat "$RUN/node-$i.pid")" 2>/dev/null || true; fi
    stopped=$((stopped + 1))
  done
  # Heads: standbys first (bounded wait), so that the active head's clean
  # stop hands its lease to nobody.
  for pass in standby active; do
    for k in 1 2; do
      [ "$pass" = active ] || [ "$(endpoint role "$k")" != active ] || continue
      touch "$RUN/head$k.stopping"
      if alive "$RUN/head-supervisor-$k.pid" bash; then kill -TERM "$(cat "$RUN/head-supervisor-$k.pid")" 2>/dev/null || true; fi
      if head_alive "$k"; then kill -TERM "$(cat "$(hf "$k" head.pid)")" 2>/dev/null || true; fi
    done
    [ "$pass" = active ] && break
    for _ in $(seq 1 100); do
      local any=0
      for k in 1 2; do [ "$(endpoint role "$k")" != active ] && head_alive "$k" && any=1; done
      [ $any -eq 0 ] && break
      sleep 0.05
    done
  done
  # Wait (bounded) for everything to exit, then SIGKILL what is left.
  for _ in $(seq 1 100); do
    local any=0
    for k in 1 2; do head_alive "$k" && any=1; done
    for f in "$RUN"/node-*.pid; do [ -e "$f" ] && alive "$f" zgrid-node && any=1; done
    [ $any -eq 0 ] && break
    sleep 0.05
  done
  for k in 1 2; do
    head_alive "$k" && kill -KILL "$(cat "$(hf "$k" head.pid)")" 2>/dev/null || true
    alive "$RUN/head-supervisor-$k.pid" bash && kill -KILL "$(cat "$RUN/head-supervisor-$k.pid")" 2>/dev/null || true
  done
  for f in "$RUN"/node-*.pid "$RUN"/supervisor-*.pid; do
    [ -e "$f" ] || continue
    if alive "$f" zgrid-node || alive "$f" bash; then kill -KILL "$(cat "$f")" 2>/dev/null || true; fi
  done
  rm -f "$RUN"/*.pid "$RUN"/node-*.stopping "$RUN"/head*.stopping "$RUN"/head*.exited \
    "$RUN"/endpoints "$RUN"/endpoints2 "$RUN"/frontends "$RUN"/backends "$RUN"/pair "$RUN"/python
  echo "grid-local: down ($stopped nodes)" >&2
}

status() {
  local k any=0
  for k in $(heads); do head_alive "$k" && any=1; done
  if [ $any = 0 ]; then
    echo "grid-local: not running (run dir $RUN)"
    return 3
  fi
  if [ -e "$RUN/pair" ]; then
    for k in 1 2; do
      if head_alive "$k"; then
        echo "head $k: pid $(cat "$(hf "$k" head.pid)"), $(endpoint role "$k") (epoch $(endpoint epoch "$k")), clients at $(endpoint frontend "$k"), nodes at $(endpoint backend "$k")"
        [ -z "$(endpoint http "$k")" ] || echo "head $k dashboard and /metrics: $(endpoint http "$k")"
      else
        echo "head $k: not running (its supervisor restarts it)"
      fi
    done
  else
    echo "head: pid $(cat "$RUN/head.pid"), clients at $(endpoint frontend), nodes at $(endpoint backend)"
    [ -z "$(endpoint http)" ] || echo "dashboard and /metrics: $(endpoint http)"
  fi
  for f in "$RUN"/node-*.pid; do
    [ -e "$f" ] || continue
    local i=${f##*/node-}; i=${i%.pid}
    if alive "$f" zgrid-node; then echo "node $i: pid $(cat "$f")"; else echo "node $i: not running"; fi
  done
  if [ -s "$RUN/python" ]; then
    if [ "$(cat "$RUN/python")" = off ]; then echo "python workers: off"; else echo "python workers: $(cat "$RUN/python")"; fi
  fi
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  restart) down; up ;;
  env) [ -s "$RUN/endpoints" ] || die "not running"; echo "export ZGRID_HEAD=$(head_list frontend)" ;;
  *) die "unknown command '$cmd' ($(head -n1 <<<"$USAGE"))" ;;
esac
