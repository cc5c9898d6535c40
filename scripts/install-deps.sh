#!/usr/bin/env bash
# Installs exactly the Debian packages zgrid needs: `run` to build and run the
# grid (the demo), `test` (the default) for that plus the tests and benchmarks.
# Idempotent: installs only what is missing, and runs `apt-get update` once.
set -euo pipefail

# What the grid needs to build and run (the README's first command).
RUN_PACKAGES=(
  g++ cmake make pkg-config          # toolchain
  libzmq3-dev cppzmq-dev             # ZeroMQ and its C++ binding
  libmsgpack-cxx-dev                 # msgpack codec (header-only)
  libleveldb-dev libsnappy-dev       # journal (leveldb's CMake config links snappy)
  libcli11-dev                       # flags, config files, service registration files
  nlohmann-json3-dev                 # the CLI's JSON input and output (client/ only)
  libcpp-httplib-dev                 # the head's HTTP listener: /metrics, JSON API, dashboard
  python3 python3-msgpack            # the Python exec-bridge worker example
  python3-dev pybind11-dev           # the zgrid Python module (python/), over the C++ client
  python3-cloudpickle                # Python functions on the grid: zgrid.Executor pickles them,
                                     # the node's Python workers (zgrid-node --python) unpickle them
  coreutils procps                   # `factor` (kernel reference), ps/pgrep in scripts
)
# What only the tests, benchmarks and checks need (the README's second command).
TEST_PACKAGES=(
  python3-pytest                     # the Python module's tests (run by ctest)
  python3-numpy                      # numpy arrays as arguments and results of Python functions (tests)
  python3-distributed                # Dask, only as the peer bench/python_functions_bench.py measures
  prometheus                         # promtool, which checks every /metrics scrape in the tests
  chromium chromium-driver python3-selenium  # the dashboard's test in a real headless browser
  libgtest-dev libbenchmark-dev      # tests and benchmarks
  clang-14 libfuzzer-14-dev          # the libFuzzer target over the decoder (scripts/fuzz.sh)
  clang-format-14                    # scripts/check-format.sh (the format_check test)
  iproute2                           # network namespaces as hosts in the multi-host tests
  slurm-wlm munge                    # scripts/zgrid.sbatch and its test on a single-host Slurm
  openssh-server openssh-client      # grid-up.sh/grid-down.sh and their test (sshd in namespaces)
)

case "${1:-test}" in
  run) PACKAGES=("${RUN_PACKAGES[@]}") ;;
  test) PACKAGES=("${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
  *) echo "usage: install-deps.sh [run|test]   (run: build and run the grid; test: also its tests)" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 2; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
