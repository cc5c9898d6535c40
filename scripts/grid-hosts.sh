# Shared by grid-up.sh and grid-down.sh (sourced): settings and the host file.
BIN=${ZGRID_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}
PORT=${ZGRID_PORT:-5555}
# Evaluated on each host: one run directory per host even on a shared /tmp.
RUN=${ZGRID_RUN_DIR:-'/tmp/zgrid-$(id -un)-$(hostname -s)'}
read -r -a SSH_CMD <<<"${ZGRID_SSH:-ssh -o BatchMode=yes -o ConnectTimeout=5}"

remote() {  # host, shell command
  local host=$1
  shift
  "${SSH_CMD[@]}" "$host" "$*"
}

read_hostfile() {  # fills HOSTS and WORKERS
  local file=$1
  [ -n "$file" ] && [ -r "$file" ] || { echo "usage: $(basename "$0") HOSTFILE" >&2; exit 2; }
  HOSTS=()
  WORKERS=()
  while read -r host workers _; do
    host=${host%%#*}
    [ -n "$host" ] || continue
    HOSTS+=("$host")
    WORKERS+=("${workers:-0}")
  done <"$file"
  [ ${#HOSTS[@]} -gt 0 ] || { echo "$(basename "$0"): no host in $file" >&2; exit 2; }
}
