#!/usr/bin/env bash
# scripts/zgrid.sbatch end to end on a real single-host Slurm cluster that
# this test starts (munge + slurmctld + slurmd under a private directory) and
# stops by PID; then a job with a standby head whose active head is killed.
# Needs root and Debian's slurm-wlm and munge; skips otherwise,
# except under CI=true, where it must run.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/build}
skip() {
  if [ "${CI:-}" = true ]; then echo "slurm_test: FAIL: $*" >&2; exit 1; fi
  echo "slurm_test: skipped: $*" >&2; exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root"
for c in slurmctld slurmd munged mungekey sbatch; do command -v $c >/dev/null || skip "$c not installed"; done

B=$(mktemp -d /tmp/zgrid-slurm.XXXXXX)
chmod 755 "$B"
mkdir -p "$B"/{etc,run,state,log} "$B/spool/slurmd-$(hostname -s)"
chmod 755 "$B/run"
chmod 700 "$B/etc"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ -f "$B/run/munged.pid" ] && kill "$(cat "$B/run/munged.pid")" 2>/dev/null
  rm -rf "$B"
}
trap cleanup EXIT

mungekey --create --keyfile="$B/etc/munge.key" --force >/dev/null 2>&1 || skip "mungekey failed"
munged --socket="$B/run/munge.socket" --key-file="$B/etc/munge.key" --log-file="$B/log/munged.log" \
  --pid-file="$B/run/munged.pid" --seed-file="$B/state/munge.seed" --force || skip "munged did not start"
for _ in $(seq 1 100); do [ -S "$B/run/munge.socket" ] && break; sleep 0.05; done

H=$(hostname -s)
cat >"$B/etc/slurm.conf" <<CONF
ClusterName=zgridtest
SlurmctldHost=$H
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$B/run/munge.socket
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool/slurmd-%n
SlurmctldPidFile=$B/run/slurmctld.pid
SlurmdPidFile=$B/run/slurmd.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd.log
SlurmctldPort=$((17000 + RANDOM % 2000))
SlurmdPort=$((19000 + RANDOM % 2000))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
NodeName=$H CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$B/etc/slurm.conf
slurmctld -D -i >"$B/log/ctld.out" 2>&1 &
pids+=($!)
slurmd -D >"$B/log/d.out" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 1 200); do
  state=$(sinfo -h -o %t 2>/dev/null | head -n 1)
  [ "$state" = idle ] && break
  sleep 0.1
done
[ "$state" = idle ] || { tail -5 "$B/log/slurmctld.log" "$B/log/slurmd.log" >&2; echo "slurm_test: FAIL: slurm not idle ($state)" >&2; exit 1; }

# The user's batch: a durable submit, then fetch every result by id.
PORT=$((24000 + RANDOM % 20000))
JOB=$(cd "$B" && ZGRID_BIN="$BIN" ZGRID_PORT=$PORT ZGRID_HEAD_ADDR=127.0.0.1 ZGRID_DATA_DIR="$B/data" \
  sbatch --parsable -o "$B/job.out" "$ROOT/scripts/zgrid.sbatch" \
  bash -c 'id=$(zgrid submit --durable --service factorize --random 100 --seed 9) && zgrid fetch "$id" | grep -c " = "')
[ -n "$JOB" ] || { echo "slurm_test: FAIL: sbatch refused the job" >&2; exit 1; }
for _ in $(seq 1 600); do
  js=$(scontrol show job "$JOB" 2>/dev/null | grep -o 'JobState=[A-Z]*' | cut -d= -f2)
  case "$js" in PENDING|RUNNING|CONFIGURING|COMPLETING|"") sleep 0.1 ;; *) break ;; esac
done
out=$(cat "$B/job.out" 2>/dev/null)
exitcode=$(scontrol show job "$JOB" | grep -o 'ExitCode=[0-9:]*' | cut -d= -f2)
echo "slurm_test: job $JOB state $js exit $exitcode" >&2
echo "$out" >&2
[ "$js" = COMPLETED ] && [ "$exitcode" = "0:0" ] || { echo "slurm_test: FAIL: job did not complete cleanly" >&2; exit 1; }
echo "$out" | grep -qx 100 || { echo "slurm_test: FAIL: expected 100 results" >&2; exit 1; }
# Torn down: no zgrid daemon of that job is left.
sleep 0.5
if pgrep -f "zgrid-head --frontend tcp://0.0.0.0:$PORT" >/dev/null; then
  echo "slurm_test: FAIL: the head outlived the job" >&2; exit 1
fi

# ZGRID_STANDBY=1: a standby head on the same data directory (one host here:
# ports +10). The batch kills the active head (its PID is in the lease's
# epoch file) before submitting: the standby takes over, the node and the CLI
# follow, and every result comes back.
PORT=$((24000 + RANDOM % 20000))
JOB=$(cd "$B" && ZGRID_BIN="$BIN" ZGRID_PORT=$PORT ZGRID_HEAD_ADDR=127.0.0.1 ZGRID_DATA_DIR="$B/data2" \
  ZGRID_STANDBY=1 sbatch --parsable -o "$B/job2.out" "$ROOT/scripts/zgrid.sbatch" \
  bash -c 'echo "heads $ZGRID_HEAD"; pid=$(sed -n "s/^pid=//p" "$ZGRID_DATA_DIR/lease/epoch-1") &&
    kill -9 "$pid" && id=$(zgrid submit --durable --service factorize --random 100 --seed 9) &&
    zgrid fetch "$id" | grep -c " = "')
[ -n "$JOB" ] || { echo "slurm_test: FAIL: sbatch refused the standby job" >&2; exit 1; }
for _ in $(seq 1 900); do
  js=$(scontrol show job "$JOB" 2>/dev/null | grep -o 'JobState=[A-Z]*' | cut -d= -f2)
  case "$js" in PENDING|RUNNING|CONFIGURING|COMPLETING|"") sleep 0.1 ;; *) break ;; esac
done
out=$(cat "$B/job2.out" 2>/dev/null)
exitcode=$(scontrol show job "$JOB" | grep -o 'ExitCode=[0-9:]*' | cut -d= -f2)
echo "slurm_test: standby job $JOB state $js exit $exitcode" >&2
echo "$out" | grep -v " INFO " >&2
[ "$js" = COMPLETED ] && [ "$exitcode" = "0:0" ] || { echo "slurm_test: FAIL: the standby job did not complete cleanly" >&2; exit 1; }
echo "$out" | grep -q "^heads tcp://127.0.0.1:$PORT,tcp://127.0.0.1:$((PORT + 10))$" ||
  { echo "slurm_test: FAIL: ZGRID_HEAD does not list both heads" >&2; exit 1; }
echo "$out" | grep -q "at epoch 2, taken over from" || { echo "slurm_test: FAIL: no takeover in the job's log" >&2; exit 1; }
echo "$out" | grep -qx 100 || { echo "slurm_test: FAIL: expected 100 results after the takeover" >&2; exit 1; }
sleep 0.5
if pgrep -f "zgrid-head --frontend tcp://0.0.0.0:$((PORT + 10))" >/dev/null; then
  echo "slurm_test: FAIL: the standby head outlived the job" >&2; exit 1
fi
echo "2 passed, 0 failed"
