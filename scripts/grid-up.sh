#!/usr/bin/env bash
# Starts a grid across a cluster over ssh: the head on the first host of
# HOSTFILE, a node on every host listed.
#
#   scripts/grid-up.sh HOSTFILE
#
# HOSTFILE: one host per line, optionally followed by its worker count
# ("node17 32"); '#' starts a comment. Idempotent: a daemon already running
# on a host (by its pid file) is left alone. Prints which hosts came up.
#
# Environment: ZGRID_SSH (the ssh command; default
# "ssh -o BatchMode=yes -o ConnectTimeout=5"), ZGRID_BIN (directory of the
# binaries on the hosts; default this checkout's build/), ZGRID_RUN_DIR (pid
# files and logs on each host; default /tmp/zgrid-USER-HOSTNAME, evaluated
# there), ZGRID_PORT (frontend port, backend is +1; default 5555),
# ZGRID_HEAD_ADDR (how nodes reach the head; default the first host),
# ZGRID_DATA_DIR (the head's journal; default RUN_DIR/data).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/grid-hosts.sh"

read_hostfile "${1:-}"
HEAD=${HOSTS[0]}
ADDR=${ZGRID_HEAD_ADDR:-$HEAD}
BACKEND="tcp://$ADDR:$((PORT + 1))"

up_one() {  # host, what (head|node), command...
  local host=$1 what=$2
  shift 2
  remote "$host" "RUN=$RUN; mkdir -p \"\$RUN\" || exit 9
    pidf=\"\$RUN/$what.pid\"
    if [ -f \"\$pidf\" ] && kill -0 \"\$(cat \"\$pidf\")\" 2>/dev/null && grep -qa zgrid-$what /proc/\$(cat \"\$pidf\")/cmdline; then
      echo already
    else
      nohup $* >>\"\$RUN/$what.log\" 2>&1 </dev/null &
      echo \$! >\"\$pidf\"
      echo started
    fi"
}

failed=0
state=$(up_one "$HEAD" head "$BIN/zgrid-head" --frontend "tcp://0.0.0.0:$PORT" --backend "tcp://0.0.0.0:$((PORT + 1))" \
  --data-dir "${ZGRID_DATA_DIR:-\$RUN/data}") || state="unreachable"
echo "head  $HEAD: $state"
[ "$state" = started ] || [ "$state" = already ] || failed=1
for i in "${!HOSTS[@]}"; do
  h=${HOSTS[$i]}
  state=$(up_one "$h" node "$BIN/zgrid-node" --head "$BACKEND" --workers "${WORKERS[$i]}") || state="unreachable"
  echo "node  $h: $state"
  [ "$state" = started ] || [ "$state" = already ] || failed=1
done

# Report what registered, asking the head on its own host (bounded wait).
n=0
for _ in $(seq 1 100); do
  n=$(remote "$HEAD" "$BIN/zgrid --head tcp://127.0.0.1:$PORT --timeout 2s nodes --json 2>/dev/null" | grep -c node_id)
  [ "$n" -ge "${#HOSTS[@]}" ] && break
  sleep 0.2
done
echo "grid: head tcp://$ADDR:$PORT, $n of ${#HOSTS[@]} nodes registered"
[ "$n" -ge "${#HOSTS[@]}" ] && [ $failed = 0 ]
