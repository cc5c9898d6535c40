#!/usr/bin/env bash
# The installed package, as a user outside zgrid's tree sees it:
#   1. `cmake --install` into a temporary prefix: public headers only
#      (<zgrid/...>, nothing that includes an internal header), the client
#      library, the CMake package;
#   2. <zgrid/client.hpp> compiles with only PREFIX/include and pulls in
#      neither ZeroMQ nor msgpack;
#   3. a project in a temporary directory (a copy of examples/soa_client.cpp,
#      a program using <zgrid/client.hpp> alone, and a plug-in) builds with
#      find_package(zgrid CONFIG REQUIRED), zgrid::client and
#      zgrid_add_service, and sees nothing of the source or build tree;
#   4. what it built runs against the installed zgrid-head and zgrid-node on
#      loopback with ephemeral ports: every factorization soa_client prints
#      multiplies back to its number, and the node serves the plug-in.
# With ZGRID_FROM_DEB=1 the same checks run on the Debian package instead:
# `cpack -G DEB` in BUILD_DIR, the .deb extracted with `dpkg-deb -x` (not
# installed) and its usr/ taken as the prefix; then the systemd units, the
# docs, `zgrid-head --help` and the Python module are checked too.
# Usage: install_test.sh BUILD_DIR [CXX [CMAKE]]
set -uo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
CXX_BIN=${2:-${CXX:-c++}}
CMAKE_BIN=${3:-cmake}
TMP=$(mktemp -d /tmp/zgrid-install-test.XXXXXX)
PREFIX=$TMP/prefix
pids=()

stop_started() {
  # Only the processes this script started, by PID: TERM, a bounded wait, KILL.
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 1 100); do
    local any=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && any=1; done
    [ $any = 0 ] && break
    sleep 0.05
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  pids=()
}
trap 'stop_started; rm -rf "$TMP"' EXIT
fail() {
  echo "install_test: FAIL: $*" >&2
  for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}
# Polls a condition (a command) every 50 ms for at most $1 seconds.
wait_for() {
  local secs=$1
  shift
  for _ in $(seq 1 $((secs * 20))); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}

# ---- 1. install -------------------------------------------------------------------
if [ "${ZGRID_FROM_DEB:-0}" = 1 ]; then
  CPACK_BIN=$(dirname "$(command -v "$CMAKE_BIN")")/cpack
  (cd "$BUILD" && "$CPACK_BIN" -G DEB -B "$TMP/deb") >"$TMP/install.log" 2>&1 || fail "cpack -G DEB"
  deb=$(ls "$TMP"/deb/zgrid_*_*.deb 2>/dev/null | head -n 1)
  [ -n "$deb" ] || fail "no zgrid_<version>_<arch>.deb"
  dpkg-deb -x "$deb" "$TMP/root" || fail "dpkg-deb -x"
  PREFIX=$TMP/root/usr
  for f in lib/systemd/system/zgrid-head.service lib/systemd/system/zgrid-node.service \
    share/doc/zgrid/architecture.md share/doc/zgrid/python.md share/doc/zgrid/README.md; do
    [ -e "$PREFIX/$f" ] || fail "not in the package: $f"
  done
  deps=$(dpkg-deb -f "$deb" Depends)
  for d in libzmq5 libleveldb1d python3-msgpack; do
    grep -q "$d" <<<"$deps" || fail "the package does not depend on $d: $deps"
  done
  "$PREFIX/bin/zgrid-head" --help >"$TMP/help.log" 2>&1 || fail "zgrid-head --help"
  grep -q -- "--data-dir" "$TMP/help.log" || fail "zgrid-head --help says nothing of --data-dir"
else
  "$CMAKE_BIN" --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" 2>&1 || fail "cmake --install"
fi
for f in include/zgrid/client.hpp include/zgrid/status.hpp include/zgrid/types.hpp \
  include/zgrid/service.hpp lib/libzgrid_client.a lib/libzgrid_common.a \
  lib/cmake/zgrid/zgridConfig.cmake lib/cmake/zgrid/zgridConfigVersion.cmake \
  share/zgrid/cmake/ZgridService.cmake bin/zgrid-head bin/zgrid-node bin/zgrid; do
  [ -e "$PREFIX/$f" ] || fail "not installed: $f"
done
extra=$(cd "$PREFIX/include" && find . -type f ! -path './zgrid/*')
[ -z "$extra" ] || fail "installed headers outside include/zgrid/: $extra"
[ ! -e "$PREFIX/include/zgrid/transport.hpp" ] || fail "the private transport header is installed"
if grep -n '#include "' "$PREFIX"/include/zgrid/*; then fail "a public header includes a private one"; fi
if grep -rlF -e "$SRC" -e "$BUILD" "$PREFIX/lib/cmake" "$PREFIX/share"; then
  fail "the installed package names the source or build tree"
fi

# ---- 2. the public header alone ------------------------------------------------------
mkdir -p "$TMP/app"
printf '#include <zgrid/client.hpp>\n' >"$TMP/app/only_header.cpp"
"$CXX_BIN" -std=c++17 -Wall -Wextra -Werror -fsyntax-only -I"$PREFIX/include" \
  "$TMP/app/only_header.cpp" 2>"$TMP/header.log" || fail "<zgrid/client.hpp> alone does not compile"
deps=$("$CXX_BIN" -std=c++17 -M -I"$PREFIX/include" "$TMP/app/only_header.cpp") ||
  fail "cannot list the header's dependencies"
if grep -qE 'zmq|msgpack' <<<"$deps"; then fail "<zgrid/client.hpp> pulls in ZeroMQ or msgpack"; fi
if grep -qF "$SRC" <<<"$deps"; then fail "<zgrid/client.hpp> reaches into the source tree"; fi

# ---- 3. a project outside the tree -------------------------------------------------------
cp "$SRC/examples/soa_client.cpp" "$SRC/tests/plugins/testsvc.cpp" \
  "$SRC/examples/plugins/montecarlo/montecarlo.cpp" "$TMP/app/"
cat >"$TMP/app/api_check.cpp" <<'EOF'
// Only the public header: errors are values, and the helpers link.
#include <zgrid/client.hpp>

#include <cstdio>

int main() {
  zgrid::client::ClientOptions o;
  o.head = "tcp://127.0.0.1:1";  // nothing listens there
  o.timeout_ms = 300;
  auto conn = zgrid::client::Connection::open(o);
  if (conn.ok() || conn.status().code() != zgrid::Code::kUnavailable) return 1;
  zgrid::client::Fields f;
  f.items.emplace_back("n", std::uint64_t{7});
  std::printf("%s %s %d\n", zgrid::client::describe(conn.status()).empty() ? "-" : "described",
              f.to_json().c_str(), zgrid::client::is_text("plain") ? 1 : 0);
  return 0;
}
EOF
cat >"$TMP/app/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.20)
project(zgrid_user LANGUAGES CXX)
find_package(zgrid 0.1 CONFIG REQUIRED)
add_executable(soa_client soa_client.cpp)
target_link_libraries(soa_client PRIVATE zgrid::client)
add_executable(api_check api_check.cpp)
target_link_libraries(api_check PRIVATE zgrid::client)
if(NOT TARGET zgrid::service_api OR NOT COMMAND zgrid_add_service)
  message(FATAL_ERROR "the package has no plug-in API")
endif()
zgrid_add_service(testsvc testsvc.cpp)
zgrid_add_service(montecarlo montecarlo.cpp)  # the example plug-in, as its author would build it
target_link_libraries(montecarlo PRIVATE $<IF:$<TARGET_EXISTS:msgpack-cxx>,msgpack-cxx,msgpackc-cxx>)
EOF
"$CMAKE_BIN" -S "$TMP/app" -B "$TMP/app/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$TMP/configure.log" 2>&1 ||
  fail "find_package(zgrid) in a project outside the tree"
grep -q "^zgrid_DIR:PATH=$PREFIX/lib/cmake/zgrid$" "$TMP/app/build/CMakeCache.txt" ||
  fail "zgrid was not found in the temporary prefix"
"$CMAKE_BIN" --build "$TMP/app/build" -j 2 >"$TMP/build.log" 2>&1 || fail "building against the package"
if grep -rqF -e "$SRC" -e "$BUILD" "$TMP/app/build/compile_commands.json" \
  "$TMP/app/build/CMakeFiles" "$TMP/app/build/CMakeCache.txt"; then
  fail "the project outside the tree saw the source or build tree"
fi
"$TMP/app/build/api_check" >"$TMP/api_check.log" 2>&1 || fail "api_check"
grep -qx 'described {"n": 7} 1' "$TMP/api_check.log" || fail "api_check printed the wrong thing"

# ---- 4. run it against a grid ---------------------------------------------------------------
cd "$TMP"
"$PREFIX/bin/zgrid-head" --frontend tcp://127.0.0.1:0 --backend tcp://127.0.0.1:0 \
  --data-dir "$TMP/data" --endpoints-file "$TMP/endpoints" >"$TMP/head.log" 2>&1 &
pids+=($!)
wait_for 10 test -s "$TMP/endpoints" || fail "zgrid-head did not write its endpoints"
front=$(sed -n 's/^frontend=//p' "$TMP/endpoints")
back=$(sed -n 's/^backend=//p' "$TMP/endpoints")
"$PREFIX/bin/zgrid-node" --head "$back" --workers 2 --node-id install-test \
  --service-lib "$TMP/app/build/libtestsvc.so" --service-lib "$TMP/app/build/libmontecarlo.so" \
  >"$TMP/node.log" 2>&1 &
pids+=($!)
node_up() { "$PREFIX/bin/zgrid" --head "$front" --timeout 2s nodes --json 2>/dev/null | grep -q install-test; }
wait_for 20 node_up || fail "the node did not register"

N=12
"$TMP/app/build/soa_client" submit "$front" $N >"$TMP/submit.out" 2>"$TMP/submit.log" ||
  fail "soa_client submit"
sid=$(head -n 1 "$TMP/submit.out")
[[ $sid =~ ^[0-9a-f]{32}$ ]] || fail "soa_client submit printed no session id: $sid"
timeout 60 "$TMP/app/build/soa_client" collect "$front" "$sid" >"$TMP/collect.out" \
  2>"$TMP/collect.log" || fail "soa_client collect"
[ "$(wc -l <"$TMP/collect.out")" = $N ] || fail "$N lines expected: $(cat "$TMP/collect.out")"
seen=()
while IFS= read -r line; do
  [[ $line =~ ^request\ ([0-9]+):\ ([0-9]+( \* [0-9]+)*)$ ]] || fail "not a factorization: $line"
  i=${BASH_REMATCH[1]}
  product=1
  for f in ${BASH_REMATCH[2]//\*/ }; do
    [ "$f" -ge 2 ] || fail "factor $f in: $line"
    product=$((product * f))
  done
  [ "$product" = $((1000000007 * i)) ] || fail "does not multiply back to $((1000000007 * i)): $line"
  [ -z "${seen[$i]:-}" ] || fail "request $i answered twice"
  seen[$i]=1
done <"$TMP/collect.out"
for i in $(seq 1 $N); do [ -n "${seen[$i]:-}" ] || fail "request $i not answered"; done

out=$(printf 'hello\n' | "$PREFIX/bin/zgrid" --head "$front" submit --service testsvc/echo --file -) ||
  fail "the plug-in built against the package did not serve: $out"
[ "$out" = "hello = v1:hello" ] || fail "the plug-in answered: $out"
out=$(printf 'ping\n' | "$PREFIX/bin/zgrid" --head "$front" submit --service montecarlo/echo --file -) ||
  fail "the montecarlo plug-in built against the package did not serve: $out"
[ "$out" = "ping = ping" ] || fail "the montecarlo plug-in answered: $out"

# The Python module, as installed (when the build made it).
if [ -d "$BUILD/python/zgrid" ]; then
  PYDIR=$PREFIX/lib/python3/dist-packages
  [ -e "$PYDIR/zgrid/__init__.py" ] || fail "the Python module is not installed"
  py=$(cd "$TMP" && PYTHONPATH=$PYDIR /usr/bin/python3 -c "
import zgrid, sys
assert zgrid.__file__.startswith('$PYDIR'), zgrid.__file__
print(list(zgrid.connect('$front').map('factorize', ['91', '1001'], decode='text')))" 2>&1) ||
    fail "the installed Python module: $py"
  [ "$py" = "['7 * 13', '7 * 11 * 13']" ] || fail "the installed Python module answered: $py"
fi

stop_started
echo "install_test: installed, built outside the tree, ran: $N factorizations checked"
echo "1 passed, 0 failed"
