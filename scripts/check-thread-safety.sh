#!/usr/bin/env bash
# Compiles the files whose members several threads share with clang's
# thread-safety analysis (-Wthread-safety -Werror): a guarded member touched
# without its mutex fails the build of this check. Run by the test suite
# (thread_safety_check). The annotations: common/thread_annotations.hpp.
set -euo pipefail
cd "$(dirname "$0")/.."
cxx=$(command -v clang++-14 || command -v clang++ || true)
[ -n "$cxx" ] || { echo "check-thread-safety: clang++ not installed (scripts/install-deps.sh)" >&2; exit 2; }
files=(head/auth.cpp head/journal_files.cpp head/journal.cpp node/worker_pool.cpp node/io_loop.cpp services/host.cpp)
for f in "${files[@]}"; do
  "$cxx" -std=c++20 -fsyntax-only -Wthread-safety -Werror -DMSGPACK_NO_BOOST -I. -Iinclude "$f"
done
echo "check-thread-safety: ${#files[@]} files clean"
