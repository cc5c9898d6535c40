#!/usr/bin/env bash
# The main job on this machine: install what is missing, build, start a local
# grid (head + 2 nodes), factorize 100 random numbers through it, stop the grid.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh run
# Only the daemons and the CLI, with the test command's flags, so that
# ./scripts/test.sh afterwards reuses these objects instead of starting over.
ZGRID_TARGETS="zgrid-head zgrid-node zgrid" ./scripts/build.sh \
  -DZGRID_SANITIZE=OFF -DZGRID_WERROR=ON -DZGRID_BUILD_TESTS=OFF -DZGRID_BUILD_BENCH=OFF >/dev/null
export PATH="$PWD/build:$PATH"

# A private run directory and free ports, so the demo never disturbs a grid
# that is already running on this machine.
export ZGRID_RUN_DIR=$(mktemp -d /tmp/zgrid-demo.XXXXXX)
export ZGRID_FRONTEND=tcp://127.0.0.1:0 ZGRID_BACKEND=tcp://127.0.0.1:0
trap './scripts/grid-local.sh down >/dev/null; rm -rf "$ZGRID_RUN_DIR"' EXIT
./scripts/grid-local.sh up --nodes 2 --data-dir "$ZGRID_RUN_DIR/data"
eval "$(./scripts/grid-local.sh env)"

echo "== interactive: 100 random numbers, results as they arrive" >&2
zgrid submit --interactive --service factorize --random 100

echo "== durable: submit 100 numbers and exit; fetch them by session id; purge" >&2
id=$(zgrid submit --durable --service factorize --random 100)
zgrid fetch "$id" | head -n 5
echo "... ($(zgrid fetch "$id" | wc -l) responses for session $id)" >&2
zgrid close "$id" --purge
