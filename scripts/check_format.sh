#!/usr/bin/env bash
# Fails when a tracked C++/CUDA file differs from .clang-format (run by scripts/test.sh, so CI checks it).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cpp' '*.h' '*.cu' 2>/dev/null || true)
[ -n "$files" ] || exit 0
if ! echo "$files" | xargs clang-format --dry-run -Werror; then
  echo "check_format: the files above differ from .clang-format; run: git ls-files '*.cpp' '*.h' '*.cu' | xargs clang-format -i" >&2
  exit 1
fi
echo "check_format: $(echo "$files" | wc -l) files match .clang-format"
