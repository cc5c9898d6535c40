#!/usr/bin/env bash
# Builds the libFuzzer target over the wire decoder with clang and runs it for
# SECONDS (default 60). Exit 0 when no crash was found. Part of the test suite.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
OUT=${ZGRID_FUZZ_DIR:-build-fuzz}
CXX=${ZGRID_FUZZ_CXX:-$(command -v clang++-14 || command -v clang++ || true)}
[ -n "$CXX" ] || { echo "fuzz: clang++ not found (scripts/install-deps.sh installs clang-14)" >&2; exit 2; }
mkdir -p "$OUT/corpus"
if [ ! -x "$OUT/decode_fuzz" ] || [ -n "$(find common include tests/fuzz -newer "$OUT/decode_fuzz" \( -name '*.?pp' -o -name '*.def' \) | head -n 1)" ]; then
  "$CXX" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -DMSGPACK_NO_BOOST -I. -Iinclude \
    tests/fuzz/decode_fuzz.cpp common/codec.cpp common/protocol.cpp common/status.cpp \
    -lzmq -o "$OUT/decode_fuzz"
fi
# Seeds: a few valid messages, so the fuzzer starts inside the format.
printf '\x93\x01\x01\x01' >"$OUT/corpus/hello"
printf '\x98\x01\x05\x07\xa1s\xa1c\x01\xc3\x91\x92\xc4\x01u\xc4\x02\x31\x32' >"$OUT/corpus/send"
printf '\x95\x01\x16\x00\xa9factorize\x91\x92\x05\xc4\x0242' >"$OUT/corpus/tasks"
printf '\x94\x01\x17\x00\x91\x93\x05\xc0\xc4\x017' >"$OUT/corpus/results"
printf '\x96\x01\x16\x00\xa4echo\x91\x92\x05\xc4\x0142\xcd\x07\xd0' >"$OUT/corpus/tasks-timeout"
printf '\x96\x01\x15\x00\xa1n\x00\x02' >"$OUT/corpus/heartbeat-stuck"
printf '\x9b\x01\x11\x01\xa4echo\xc2\x00\x00\x00\xc2\xa1c\x91\x92\xc4\x01u\xc4\x0212' >"$OUT/corpus/submit"
printf '\x9b\x01\x73\x01\xa1s\xa4echo\xc2\x01\xc2\x01\x01\xc0' >"$OUT/corpus/submitted"
printf '\x98\x01\x02\x01\xa4echo\xc3\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00' >"$OUT/corpus/create-huge"
printf '\x9a\x01\x02\x01\xa4echo\xc3\x00\x00\x00\xc2\xa5tok-1' >"$OUT/corpus/create-token"
printf '\x96\x01\x04\x01\xa1s\xa1c\xa5tok-1' >"$OUT/corpus/open-client-token"
exec "$OUT/decode_fuzz" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -rss_limit_mb=2048 \
  -print_final_stats=1 "$OUT/corpus"
