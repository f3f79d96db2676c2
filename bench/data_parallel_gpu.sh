#!/usr/bin/env bash
# Data-parallel fine-tuning on the GPU host (one H200): builds fairdiff's engine against the host PyTorch's
# LibTorch (its NCCL process group compiled in, Gloo from the carried libgloo-dev), runs the data-parallel test
# cases (Gloo, CPU), then fine-tunes the built-in model on CUDA in one process and as two ranks sharing the GPU
# (Gloo staging CUDA gradients through the CPU: NCCL refuses two ranks on one device), and compares the loss
# curves. Carried: .deps (bench/run_gpu.sh's .deb files and libgloo-dev).
# Usage: bash bench/data_parallel_gpu.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: bench/data_parallel_gpu.sh OUT_DIR}"
mkdir -p "$OUT"
source bench/gpu_deps.sh  # ROOT, TORCH_PREFIX, LD_LIBRARY_PATH
if [ -x /usr/bin/g++ ]; then export CXX=/usr/bin/g++ CC=/usr/bin/gcc CUDAHOSTCXX=/usr/bin/g++; fi
start=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DFAIRDIFF_ENGINE_ONLY=ON -DFAIRDIFF_BUILD_TESTS=ON \
  -DFAIRDIFF_WERROR=OFF -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/usr" -DICU_ROOT="$ROOT/usr" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0 > "$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
grep -E "Gloo|NCCL" "$OUT/cmake.log" || true
grep -o "FAIRDIFF_\(GLOO\|NCCL\)=1" build-gpu/build.ninja | sort -u || true
cmake --build build-gpu -j "$(nproc)" --target fairdiff test_train > "$OUT/build.log" 2>&1 ||
  { grep -E "error" -A5 "$OUT/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
FD=build-gpu/fairdiff
$FD finetune --help | grep -E "gpus|workers" || true

# Instance images: the built-in model's own, of one prompt.
$FD generate --model models/builtin --prompt "a photo of a nurse" --images-per-prompt 8 --device cuda \
  --out "$OUT/instance" > "$OUT/generate.log" 2>&1 || { tail -20 "$OUT/generate.log"; exit 1; }
FLAGS=(--model models/builtin --instance-data "$OUT/instance/manifest.csv" --with-prior-preservation
  --class-prompt "a photo of a person" --class-data "$OUT/classes" --num-class-images 8 --train-batch-size 4
  --max-train-steps 30 --learning-rate 1e-5 --mixed-precision no --adam-epsilon 1e-4 --seed 5)
/usr/bin/time -f "one process: %e s" $FD finetune "${FLAGS[@]}" --device cuda --out "$OUT/one" 2>&1 | tail -3
FAIRDIFF_DIST_BACKEND=gloo /usr/bin/time -f "two ranks on one GPU (gloo): %e s" \
  $FD finetune "${FLAGS[@]}" --device cuda --workers 2 --out "$OUT/two" 2>&1 | tail -4
python3 - "$OUT" <<'PY'
import csv, sys, json
out = sys.argv[1]
a = list(csv.DictReader(open(f"{out}/one/loss_curve.csv")))
b = list(csv.DictReader(open(f"{out}/two/loss_curve.csv")))
worst = max(abs(float(x[k]) - float(y[k])) / max(abs(float(x[k])), 1e-12)
            for x, y in zip(a, b) for k in ("loss", "grad_norm"))
print(f"loss curves: {len(a)} and {len(b)} steps; worst relative difference of loss/grad_norm: {worst:.2e}")
print("two:", json.load(open(f"{out}/two/finetune_settings.json"))["data_parallel"])
try:
    import torch
    from safetensors.torch import load_file
    x = load_file(f"{out}/one/unet/diffusion_pytorch_model.safetensors")
    y = load_file(f"{out}/two/unet/diffusion_pytorch_model.safetensors")
    d = max((x[k] - y[k]).abs().max().item() for k in x)
    s = max(x[k].abs().max().item() for k in x)
    print(f"unet weights: max |one - two| = {d:.3e} of max |w| = {s:.3e} ({d / s:.2e} relative)")
except Exception as e:  # safetensors may be missing on the host
    print("weights not compared:", e)
PY
build-gpu/tests/test_train --gtest_filter='DataParallel.RowSlices*:DataParallel.Collectives*:DataParallel.Environment*' 2>&1 | grep -E "OK|FAIL|SKIP" | tee "$OUT/tests.txt"
