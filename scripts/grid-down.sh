#!/usr/bin/env bash
# Stops what scripts/grid-up.sh started on the hosts of HOSTFILE: nodes
# first, then the head, each by the PID in its pid file (and only if that
# PID is still a zgrid daemon). Same environment as grid-up.sh.
#
#   scripts/grid-down.sh HOSTFILE
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/grid-hosts.sh"

read_hostfile "${1:-}"
down_one() {  # host, what
  remote "$1" "RUN=$RUN; pidf=\"\$RUN/$2.pid\"
    [ -f \"\$pidf\" ] || { echo 'not running'; exit 0; }
    pid=\$(cat \"\$pidf\")
    if kill -0 \"\$pid\" 2>/dev/null && grep -qa zgrid-$2 /proc/\$pid/cmdline; then
      kill -TERM \"\$pid\"
      for _ in \$(seq 1 100); do kill -0 \"\$pid\" 2>/dev/null || break; sleep 0.05; done
      kill -0 \"\$pid\" 2>/dev/null && kill -KILL \"\$pid\"
      echo stopped
    else
      echo 'not running'
    fi
    rm -f \"\$pidf\""
}
for h in "${HOSTS[@]}"; do echo "node  $h: $(down_one "$h" node || echo unreachable)"; done
echo "head  ${HOSTS[0]}: $(down_one "${HOSTS[0]}" head || echo unreachable)"
