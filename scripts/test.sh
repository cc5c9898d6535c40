#!/usr/bin/env bash
# Installs what is missing, builds (Release) and runs the whole test suite with ctest.
# Warnings are errors here (-DZGRID_WERROR=ON), and a test checks the
# formatting (format_check), so CI fails on either.
# ZGRID_SANITIZE=1 builds and tests with AddressSanitizer + UBSan into build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh test
if [ "${ZGRID_SANITIZE:-0}" = 1 ]; then
  export ZGRID_BUILD_DIR=${ZGRID_BUILD_DIR:-build-asan} ZGRID_BUILD_TYPE=RelWithDebInfo
  ./scripts/build.sh -DZGRID_SANITIZE=ON -DZGRID_BUILD_TESTS=ON -DZGRID_BUILD_BENCH=OFF
else
  # The same flags as scripts/demo.sh, so a build the demo made is reused.
  ./scripts/build.sh -DZGRID_SANITIZE=OFF -DZGRID_WERROR=ON -DZGRID_BUILD_TESTS=ON -DZGRID_BUILD_BENCH=ON
fi
cd "${ZGRID_BUILD_DIR:-build}"
ctest --output-on-failure -j "${ZGRID_TEST_JOBS:-2}" --timeout 900
