#!/usr/bin/env bash
# Installs everything fairdiff needs on Debian 12 (apt-get for libraries and tools, npm for the face models
# and the report's charting library), then configures and builds it in ./build.
# Idempotent: packages already present are not fetched again. Run as root (or with sudo).
#
# Usage: bash scripts/install.sh [--cuda]
#   --cuda  build with CUDA (the fused kernels and `--device cuda`) against the LibTorch of an installed CUDA
#           PyTorch (found with python3), or of LIBTORCH=DIR (an unpacked LibTorch from pytorch.org); Debian's CPU
#           libtorch-dev is then not installed. Everything else is the same full product (OpenCV stays optional).
# Environment, for hosts whose packages come another way (e.g. a GPU node without a package registry):
#   FAIRDIFF_SKIP_APT=1, FAIRDIFF_SKIP_NPM=1  skip the apt-get / npm steps;
#   FAIRDIFF_DEPS_ROOT=DIR                    an extra prefix searched for headers and libraries (e.g. .deb files
#                                             unpacked with dpkg -x DEB DIR);
#   FAIRDIFF_BUILD_DIR=DIR                    build folder (default build);
#   FAIRDIFF_BUILD_TESTS=OFF                  the product only, without the GoogleTest suites.
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA=0
for arg in "$@"; do
  case "$arg" in
    --cuda) CUDA=1 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg' (expected --cuda)" >&2; exit 2 ;;
  esac
done

# The LibTorch to build against: checked first, before anything is installed.
CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=Release "-DFAIRDIFF_BUILD_TESTS=${FAIRDIFF_BUILD_TESTS:-ON}")
PREFIXES=()
if [ "$CUDA" = 1 ]; then
  if [ -n "${LIBTORCH:-}" ]; then
    [ -f "$LIBTORCH/share/cmake/Torch/TorchConfig.cmake" ] ||
      { echo "install.sh: LIBTORCH=$LIBTORCH holds no share/cmake/Torch/TorchConfig.cmake (expected an unpacked LibTorch)" >&2; exit 3; }
    PREFIXES+=("$LIBTORCH")
  else
    probe=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path); print(torch.version.cuda or "")' 2>/dev/null) ||
      { echo "install.sh: --cuda needs a CUDA PyTorch (python3 -c 'import torch' failed) or LIBTORCH=DIR" >&2; exit 3; }
    [ -n "$(echo "$probe" | sed -n 2p)" ] ||
      { echo "install.sh: the installed PyTorch has no CUDA (torch.version.cuda is None); install a CUDA build or set LIBTORCH=DIR" >&2; exit 3; }
    PREFIXES+=("$(echo "$probe" | sed -n 1p)")
  fi
  # The GPU's architecture for the fused kernels (nvcc), e.g. 9.0 -> 90; CMake's "native" otherwise.
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)
  # Warnings stay warnings here: -Werror is for the compiler CI checks with (Debian 12's GCC 12); newer ones report
  # false positives inside libstdc++ (GCC 13: -Warray-bounds in an inlined std::vector copy).
  CMAKE_ARGS+=(-DFAIRDIFF_CUDA_KERNELS=ON "-DCMAKE_CUDA_ARCHITECTURES=${cap:-native}" -DFAIRDIFF_WERROR=OFF)
  [ -n "$cap" ] && CMAKE_ARGS+=("-DTORCH_CUDA_ARCH_LIST=${cap:0:-1}.${cap: -1}")
fi
if [ -n "${FAIRDIFF_DEPS_ROOT:-}" ]; then
  PREFIXES+=("$FAIRDIFF_DEPS_ROOT/usr")
  CMAKE_ARGS+=("-DICU_ROOT=$FAIRDIFF_DEPS_ROOT/usr")
fi
if [ ${#PREFIXES[@]} -gt 0 ]; then
  CMAKE_ARGS+=("-DCMAKE_PREFIX_PATH=$(IFS=';'; echo "${PREFIXES[*]}")")
fi

# libgloo-dev: the Gloo headers of data-parallel fine-tuning on the CPU (Debian's libtorch links Gloo itself).
# clang, libclang-rt-14-dev: the libFuzzer harnesses (scripts/fuzz.sh; ASan, UBSan and libFuzzer's runtime).
# libopenblas0-openmp: Debian's libtorch links the generic libblas.so.3, which is the unoptimised reference BLAS
# unless an optimised one is installed (measured: a 12544x64x128 matmul 51 ms -> 6 ms on one core).
APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libopenblas0-openmp nlohmann-json3-dev libpng-dev libjpeg-dev libicu-dev libsqlite3-dev libtomlplusplus-dev
  libopencv-dev libhdf5-dev libcurl4-openssl-dev libcpp-httplib-dev
  libgloo-dev libgtest-dev clang-format
  clang libclang-rt-14-dev
  chromium
)
# Node.js and npm (face models, charting library): Debian's packages only where no node/npm is on the PATH
# (a machine that already has a Node.js of its own would conflict with Debian's).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  APT_PACKAGES+=(nodejs npm)
fi

if [ "$CUDA" = 1 ]; then
  # The CUDA LibTorch replaces Debian's CPU one.
  APT_PACKAGES=("${APT_PACKAGES[@]/libtorch-dev/}")
fi

missing=()
[ "${FAIRDIFF_SKIP_APT:-0}" = 1 ] && APT_PACKAGES=()
for p in "${APT_PACKAGES[@]}"; do
  [ -n "$p" ] || continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm packages pinned in package.json / package-lock.json.
if [ -f package.json ] && [ "${FAIRDIFF_SKIP_NPM:-0}" != 1 ]; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "install.sh: installing npm packages"
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi

BUILD_DIR="${FAIRDIFF_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja "${CMAKE_ARGS[@]}"
cmake --build "$BUILD_DIR" --parallel "$(nproc)"

# PyTorch's wheels export their own std::filesystem from libtorch; fairdiff links libstdc++ first so the system's
# wins (CMakeLists.txt). A compiler that links libstdc++ statically defeats that, and fine-tuning can then crash.
if [ "$CUDA" = 1 ] && command -v readelf >/dev/null 2>&1 &&
  ! readelf -d "$BUILD_DIR/fairdiff" | grep -q 'NEEDED.*libstdc++'; then
  echo "install.sh: warning: $BUILD_DIR/fairdiff does not load libstdc++.so.6 (this compiler links it statically);" \
    "with PyTorch's LibTorch, fine-tuning can crash. Rebuild with the system compiler" \
    "(CXX=/usr/bin/g++ CC=/usr/bin/gcc CUDAHOSTCXX=/usr/bin/g++ bash scripts/install.sh --cuda) or run with" \
    "LD_PRELOAD=\$(/usr/bin/g++ -print-file-name=libstdc++.so.6)" >&2
fi
