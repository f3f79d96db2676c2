#!/usr/bin/env bash
# Checks the README's GPU install on a CUDA host without a package registry (the device host of
# bench/RESULTS.md): the Debian packages that host lacks travel as .deb files in .gl/debs (unpacked here with
# dpkg -x), the face models in .gl/human-models; then `scripts/install.sh --cuda` builds the full product against
# the host PyTorch's LibTorch and the main job runs on the GPU.
# Usage: bash tools/gpu/install_check.sh OUT_DIR [build|study|all] [STUDY_CONFIG]
# (STUDY_CONFIG: default data/studies/builtin.toml, the main job)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:?usage: tools/gpu/install_check.sh OUT_DIR [build|study|all] [STUDY_CONFIG]}"
WHAT="${2:-all}"
CONFIG="${3:-data/studies/builtin.toml}"
mkdir -p "$OUT"
ROOT="$PWD/.gl/root"
if [ ! -d "$ROOT/usr/include/unicode" ]; then
  for f in .gl/debs/*.deb; do dpkg -x "$f" "$ROOT"; done
  # Only libcurl's headers come from the .deb: the host has its own libcurl.so.4 (the .deb's libcurl.so points at
  # a runtime package not carried, and its static archive would need OpenSSL's libraries spelled out).
  rm -f "$ROOT"/usr/lib/x86_64-linux-gnu/libcurl.so "$ROOT"/usr/lib/x86_64-linux-gnu/libcurl.a
fi
# The product without the test suites (their HTTP test server, libcpp-httplib, is not carried).
export FAIRDIFF_SKIP_APT=1 FAIRDIFF_SKIP_NPM=1 FAIRDIFF_DEPS_ROOT="$ROOT" FAIRDIFF_BUILD_TESTS=OFF
export FAIRDIFF_HUMAN_MODELS="$PWD/.gl/human-models" FAIRDIFF_NODE_MODULES="$PWD/.gl/node_modules"
# libicuuc.so.72 (found by RPATH) needs its libicudata.so.72 beside it: transitive libraries follow LD_LIBRARY_PATH.
export LD_LIBRARY_PATH="$ROOT/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
if [ "$WHAT" = build ] || [ "$WHAT" = all ]; then
  start=$(date +%s)
  bash scripts/install.sh --cuda > "$OUT/install.log" 2>&1 || { grep -E "error|Error" -A5 "$OUT/install.log" | head -60; exit 1; }
  echo "install.sh --cuda: $(( $(date +%s) - start )) s"
  grep -E "CUDA|Torch|OpenCV|HDF5" "$OUT/install.log" | grep -v "^\[" | head -20
  ./build/fairdiff --help | head -3
fi
if [ "$WHAT" = study ] || [ "$WHAT" = all ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
  rm -rf /tmp/gpu-study
  start=$(date +%s)
  ./build/fairdiff mitigate --config "$CONFIG" --dir /tmp/gpu-study > "$OUT/study.log" 2>&1 ||
    { tail -40 "$OUT/study.log"; exit 1; }
  echo "study $CONFIG on the GPU: $(( $(date +%s) - start )) s"
  ./build/fairdiff status /tmp/gpu-study | tee "$OUT/status.txt" | tail -25
  cp /tmp/gpu-study/report/report.html /tmp/gpu-study/report/*.csv /tmp/gpu-study/report/*.json "$OUT/" 2>/dev/null || true
  tail -5 "$OUT/study.log"
fi
