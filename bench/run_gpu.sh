#!/usr/bin/env bash
# Builds fairdiff's engine against the host PyTorch's LibTorch (CUDA) and runs the generation benchmarks of
# bench/RESULTS.md. Runs on a CUDA host without a package registry: the header/library dependencies travel
# as Debian .deb files in .deps/debs (apt-get download nlohmann-json3-dev libicu-dev libicu72 libpng-dev
# libpng16-16 libjpeg62-turbo-dev libjpeg62-turbo zlib1g-dev) and the CLIP tokenizer files in .deps/tokenizer.
# libgtest-dev joins them for the `faces` mode, libgloo-dev for data-parallel fine-tuning (bench/data_parallel_gpu.sh).
# Usage: bash bench/run_gpu.sh OUT_DIR [build|generate|finetune|tests|all]
#   generate: the generation rows; finetune: the DreamBooth rows (full / LoRA, with and without gradient
#   checkpointing); tests (or faces): a full build's GPU test cases: the fused CUDA kernels (test_diffusion)
#   and the FairFace ResNet-34 against torchvision (test_faces).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: bench/run_gpu.sh OUT_DIR [build|generate|finetune|tests|all]}"
WHAT="${2:-all}"
mkdir -p "$OUT"
source bench/gpu_deps.sh  # ROOT, TORCH_PREFIX, LD_LIBRARY_PATH
if [ "$WHAT" = faces ] || [ "$WHAT" = tests ]; then
  # Everything but OpenCV (absent there), with the tests (GoogleTest from .deps/debs/libgtest-dev): the fused
  # CUDA kernels' GoogleTest cases, and the FairFace ResNet-34 against torchvision.
  cmake -S . -B build-gpu-full -G Ninja -DCMAKE_BUILD_TYPE=Release -DFAIRDIFF_WITH_OPENCV=OFF \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/usr" -DICU_ROOT="$ROOT/usr" -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DTORCH_CUDA_ARCH_LIST=9.0 > "$OUT/cmake-full.log" 2>&1 || { tail -40 "$OUT/cmake-full.log"; exit 1; }
  cmake --build build-gpu-full -j "$(nproc)" --target test_faces test_diffusion > "$OUT/build-full.log" 2>&1 ||
    { grep -E "error" -A5 "$OUT/build-full.log" | head -60; exit 1; }
  build-gpu-full/tests/test_diffusion --gtest_filter='FusedOps*' 2>&1 | tee "$OUT/fused_ops_tests.txt" | tail -3
  fused_rc=${PIPESTATUS[0]}
  python3 tools/faces/fairface_torchvision_check.py --build-dir build-gpu-full --out /tmp/fairface_check 2>&1 |
    tee "$OUT/fairface_check.txt"
  fairface_rc=${PIPESTATUS[0]}
  exit $((fused_rc || fairface_rc))
fi
if [ "$WHAT" = build ] || [ "$WHAT" = all ] || [ ! -x build-gpu/fairdiff ]; then
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DFAIRDIFF_ENGINE_ONLY=ON -DFAIRDIFF_BUILD_TESTS=OFF \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/usr" -DICU_ROOT="$ROOT/usr" -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DTORCH_CUDA_ARCH_LIST=9.0 > "$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
  cmake --build build-gpu -j "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -E "error" -A5 "$OUT/build.log" | head -60; exit 1; }
  echo "build ok"
fi
FD=build-gpu/fairdiff
MODEL=/tmp/sd21-base
if [ ! -f "$MODEL/model_index.json" ]; then
  $FD model init --arch sd21-base --tokenizer-from .deps/tokenizer --out "$MODEL" --weights-dtype fp16
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "$WHAT" = generate ] || [ "$WHAT" = all ]; then
  $FD bench generate --model "$MODEL" --device cuda --dtype fp16 --scheduler pndm --steps 50 --batch-size 1 --iterations 5 --json "$OUT/pndm50_b1.json"
  $FD bench generate --model "$MODEL" --device cuda --dtype fp16 --scheduler pndm --steps 50 --batch-size 32 --iterations 2 --json "$OUT/pndm50_b32.json"
  $FD bench generate --model "$MODEL" --device cuda --dtype fp16 --scheduler dpmpp2m --steps 25 --batch-size 32 --iterations 2 --json "$OUT/dpm25_b32.json"
fi
if [ "$WHAT" = finetune ] || [ "$WHAT" = all ]; then
  BF="$FD bench finetune --model $MODEL --resolution 512 --mixed-precision bf16 --iterations 30 --device cuda"
  $BF --no-cache-latents --json "$OUT/ft_full.json"
  $BF --json "$OUT/ft_full_cached.json"
  $BF --no-cache-latents --gradient-checkpointing --json "$OUT/ft_full_ckpt.json"
  $BF --no-cache-latents --use-lora --json "$OUT/ft_lora.json"
  $BF --use-lora --json "$OUT/ft_lora_cached.json"
  $BF --no-cache-latents --use-lora --gradient-checkpointing --json "$OUT/ft_lora_ckpt.json"
fi
