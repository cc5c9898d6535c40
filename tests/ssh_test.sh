#!/usr/bin/env bash
# scripts/grid-up.sh / grid-down.sh against two hosts made of network
# namespaces, each with its own sshd (addresses of the test's own; nothing
# leaves the machine). Up twice starts nothing twice; down leaves nothing.
# Needs root, iproute2 and openssh-server; skips otherwise, except under
# CI=true, where it must run.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/build}
skip() {
  if [ "${CI:-}" = true ]; then echo "ssh_test: FAIL: $*" >&2; exit 1; fi
  echo "ssh_test: skipped: $*" >&2; exit 77
}
fail() { echo "ssh_test: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root"
for c in ip sshd ssh ssh-keygen unshare; do command -v $c >/dev/null || [ -x /usr/sbin/$c ] || skip "$c not installed"; done

T=$(mktemp -d /tmp/zgrid-ssh.XXXXXX)
tag=$(( $$ % 100000 ))
H1=zgs${tag}a H2=zgs${tag}b
net=$(( $$ % 250 ))
A1=10.214.$net.1 A2=10.214.$net.2
PORT=$(( 30000 + RANDOM % 20000 ))
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  # Any daemon of this grid still alive (a failed test): ours, by PID.
  for p in $(pgrep -f "zgrid-head --frontend tcp://0.0.0.0:$PORT|zgrid-node --head tcp://$A1:$((PORT + 1))"); do kill -9 "$p" 2>/dev/null; done
  ip netns del "$H1" 2>/dev/null
  ip netns del "$H2" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

ip netns add "$H1" && ip netns add "$H2" || skip "cannot create network namespaces"
ip link add "${H1}v" type veth peer name "${H2}v" || fail "veth"
ip link set "${H1}v" netns "$H1" && ip link set "${H2}v" netns "$H2"
ip -n "$H1" addr add "$A1/30" dev "${H1}v" && ip -n "$H2" addr add "$A2/30" dev "${H2}v"
for ns in "$H1" "$H2"; do ip -n "$ns" link set lo up; done
ip -n "$H1" link set "${H1}v" up && ip -n "$H2" link set "${H2}v" up

ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey" && ssh-keygen -q -t ed25519 -N '' -f "$T/userkey" || fail "ssh-keygen"
cp "$T/userkey.pub" "$T/authorized_keys"
for pair in "$H1 $A1" "$H2 $A2"; do
  set -- $pair
  cat >"$T/sshd-$1.conf" <<CONF
ListenAddress $2
HostKey $T/hostkey
PidFile /run/sshd.pid
AuthorizedKeysFile $T/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
UsePAM no
StrictModes no
CONF
  ip netns exec "$1" unshare --uts sh -c "hostname $1 && mount -t tmpfs -o mode=755 tmpfs /run && mkdir /run/sshd && exec /usr/sbin/sshd -D -e -f $T/sshd-$1.conf" >"$T/sshd-$1.log" 2>&1 &
  pids+=($!)
done
SSH="ssh -i $T/userkey -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR -l root"
for a in "$A1" "$A2"; do
  ok=0
  for _ in $(seq 1 50); do ip netns exec "$H1" $SSH "$a" true 2>/dev/null && { ok=1; break; }; sleep 0.1; done
  [ $ok = 1 ] || { cat "$T"/sshd-*.log >&2; fail "sshd on $a does not answer"; }
done

printf '# head first\n%s 1\n%s 2   # two workers\n' "$A1" "$A2" >"$T/hosts"
run() { ip netns exec "$H1" env ZGRID_SSH="$SSH" ZGRID_BIN="$BIN" ZGRID_PORT="$PORT" "$@"; }
count() { pgrep -fc "zgrid-head --frontend tcp://0.0.0.0:$PORT|zgrid-node --head tcp://$A1:$((PORT + 1))"; }

out=$(run "$ROOT/scripts/grid-up.sh" "$T/hosts") || { echo "$out" >&2; fail "grid-up.sh failed"; }
echo "$out"
echo "$out" | grep -q "2 of 2 nodes registered" || fail "not every node registered"
[ "$(count)" = 3 ] || fail "expected 3 daemons, found $(count)"
out=$(run "$ROOT/scripts/grid-up.sh" "$T/hosts") || { echo "$out" >&2; fail "second grid-up.sh failed"; }
[ "$(echo "$out" | grep -c ': already')" = 3 ] || { echo "$out" >&2; fail "up twice started something twice"; }
[ "$(count)" = 3 ] || fail "up twice: $(count) daemons"

# A durable session across the two hosts.
id=$(ip netns exec "$H1" "$BIN/zgrid" --head "tcp://$A1:$PORT" submit --durable --service factorize --random 60) || fail "submit"
n=$(ip netns exec "$H1" "$BIN/zgrid" --head "tcp://$A1:$PORT" fetch "$id" | grep -c " = ")
[ "$n" = 60 ] || fail "fetched $n of 60"

out=$(run "$ROOT/scripts/grid-down.sh" "$T/hosts") || fail "grid-down.sh failed"
echo "$out"
sleep 0.3
[ "$(count)" = 0 ] || fail "down left $(count) daemons running"
echo "1 passed, 0 failed"
