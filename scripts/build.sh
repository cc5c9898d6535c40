#!/usr/bin/env bash
# Configures and builds zgrid (Release) into ./build, or $ZGRID_BUILD_DIR.
# Extra arguments go to cmake, e.g. -DZGRID_SANITIZE=ON. ZGRID_TARGETS names
# the targets to build (default: all), e.g. "zgrid-head zgrid-node zgrid".
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${ZGRID_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${ZGRID_BUILD_TYPE:-Release} "$@" >/dev/null
targets=()
for t in ${ZGRID_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "${ZGRID_JOBS:-$(nproc)}" "${targets[@]}"
