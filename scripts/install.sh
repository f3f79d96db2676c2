#!/usr/bin/env bash
# Installs everything fairdiff needs on Debian 12 (apt-get for libraries and tools, npm for the face models
# and the report's charting library), then configures and builds it in ./build.
# Idempotent: packages already present are not fetched again. Run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

# libopenblas0-openmp: Debian's libtorch links the generic libblas.so.3, which is the unoptimised reference BLAS
# unless an optimised one is installed (measured: a 12544x64x128 matmul 51 ms -> 6 ms on one core).
APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libopenblas0-openmp nlohmann-json3-dev libpng-dev libjpeg-dev libicu-dev libsqlite3-dev libtomlplusplus-dev
  libopencv-dev libhdf5-dev
  libgtest-dev clang-format
  chromium
)
# Node.js and npm (face models, charting library): Debian's packages only where no node/npm is on the PATH
# (a machine that already has a Node.js of its own would conflict with Debian's).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  APT_PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm packages pinned in package.json / package-lock.json.
if [ -f package.json ]; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "install.sh: installing npm packages"
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi

BUILD_DIR="${FAIRDIFF_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" --parallel "$(nproc)"
