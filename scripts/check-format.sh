#!/usr/bin/env bash
# Fails (exit 1) when a tracked C++ file differs from what .clang-format
# makes of it, naming each such file. Run by the test suite (format_check).
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=$(command -v clang-format-14 || command -v clang-format || true)
[ -n "$fmt" ] || { echo "check-format: clang-format not installed (scripts/install-deps.sh)" >&2; exit 2; }
bad=0
while IFS= read -r f; do
  [ -f "$f" ] || continue
  if ! "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "check-format: $f is not formatted: $fmt -i $f" >&2
    bad=1
  fi
done < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.cc' 2>/dev/null || find . -path ./build\* -prune -o \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' \) -print)
exit $bad
