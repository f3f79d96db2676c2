#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite (CTest over the GoogleTest executables), then a short
# run of each fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/check_format.sh
ctest --test-dir "${FAIRDIFF_BUILD_DIR:-build}" --output-on-failure "$@"
# A few seconds of each libFuzzer harness over its seed corpus (its own clang build in build-fuzz; docs/fuzzing.md).
# FAIRDIFF_SKIP_FUZZ=1 leaves it out (hosts without clang, e.g. with FAIRDIFF_SKIP_APT=1).
if [ "${FAIRDIFF_SKIP_FUZZ:-0}" != 1 ]; then
  bash scripts/fuzz.sh --smoke
fi
