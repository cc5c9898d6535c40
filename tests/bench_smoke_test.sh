#!/usr/bin/env bash
# scripts/bench.sh --smoke on a copy of docs/benchmarks.md: the suite runs
# from one command, every benchmark reports, and the table gets rewritten
# (so the script and the benchmarks cannot rot). Seconds, not minutes.
set -euo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp "$SRC/docs/benchmarks.md" "$TMP/benchmarks.md"
ZGRID_BUILD_DIR="$BUILD" ZGRID_BENCH_DOC="$TMP/benchmarks.md" "$SRC/scripts/bench.sh" --smoke 2>"$TMP/log" \
  || { cat "$TMP/log"; exit 1; }
table=$(sed -n '/bench.sh: begin/,/bench.sh: end/p' "$TMP/benchmarks.md")
fail=0
for row in BM_CodecSendDecode BM_JournalAppend BM_Zgrid/rand64 BM_Coreutils/semi32x32 \
           BM_Kernel/class:0 BM_GridInteractive/class:0 BM_GridDurable/class:0 BM_LoneRequest BM_HttpOverhead BM_StatefulThroughput \
           BM_HeadDispatch BM_SessionsPerSecond BM_DurableSessionsKept BM_PurgeStorm BM_LoneRequestVsRelay \
           BM_Takeover BM_StandbyRatio; do
  grep -q "\`$row" <<<"$table" || { echo "bench smoke: no row for $row"; fail=1; }
done
if grep -q '| error |' <<<"$table"; then echo "bench smoke: a benchmark failed:"; grep '| error |' <<<"$table"; fail=1; fi
grep -q 'x_kernel_allcores=' <<<"$table" || { echo "bench smoke: no ratio to the kernel"; fail=1; }
grep -q 'zgrid_over_coreutils=' <<<"$table" || { echo "bench smoke: no ratio to coreutils"; fail=1; }
grep -q 'x_scraped_vs_off=' <<<"$table" || { echo "bench smoke: no HTTP overhead ratio"; fail=1; }
grep -q 'stateful1_vs_echo=' <<<"$table" || { echo "bench smoke: no stateful ratio"; fail=1; }
grep -q 'x_relay=' <<<"$table" || { echo "bench smoke: no lone request to relay ratio"; fail=1; }
grep -q 'x_with_standby=' <<<"$table" || { echo "bench smoke: no standby ratio"; fail=1; }
grep -q 'first_result_ms_worst=' <<<"$table" || { echo "bench smoke: no takeover figure"; fail=1; }
# The rest of the document is kept.
grep -q '^## Peers on this machine' "$TMP/benchmarks.md" || { echo "bench smoke: document damaged"; fail=1; }
[ $fail = 0 ] && echo "bench smoke: ok ($(grep -c '^| `' <<<"$table") rows)"
exit $fail
