#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite (CTest over the GoogleTest executables).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/check_format.sh
ctest --test-dir "${FAIRDIFF_BUILD_DIR:-build}" --output-on-failure "$@"
