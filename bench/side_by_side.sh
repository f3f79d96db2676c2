#!/usr/bin/env bash
# fairdiff and the reference side by side, in ONE call on the GPU host (figures from separate calls vary by
# 10-40%): builds fairdiff's engine (with the GPU test suite) against the host PyTorch's LibTorch, runs the CUDA
# test cases, writes a randomly initialised SD 2.1-base model, then times on it each workload of bench/RESULTS.md
# with fairdiff (CUDA graphs on, and off for before/after) and with diffusers (bench/reference_diffusers.py,
# diffusers' public source carried as .ref/diffusers-src.tar.gz; `git archive` of huggingface/diffusers, the commit
# in .ref/diffusers-commit.txt). Writes OUT/side_by_side.md (the ratio table) and the raw JSON.
# Carried: .deps (the .deb files of bench/run_gpu.sh, libgtest-dev among them) and .ref.
# Usage: bash bench/side_by_side.sh OUT_DIR [generate|finetune|batch1|layouts|profile|all, or a comma list of them]
#   batch1: where batch 1's time goes: fairdiff's fixed cost (1 step), channels-last, a bf16 VAE, the top kernels of
#   one guided UNet step, beside the reference's batch-1 row (not part of all); layouts: PNDM 20 steps at batch
#   1 to 32, contiguous against channels-last activations (not part of all); profile: kernel time by kind (vendor
#   GEMMs / convolutions / attention against everything else) of a guided UNet step at batch 32 and of a
#   DreamBooth step, fairdiff's beside the reference's (not part of all).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: bench/side_by_side.sh OUT_DIR [generate|finetune|batch1|layouts|profile|all]}"
WHAT="${2:-all}"
# A comma list runs several modes in one call (one build): profile,generate.
wants() { [ "$WHAT" = all ] && [ "$1" != profile ] && [ "$1" != batch1 ] && [ "$1" != layouts ] && return 0; [[ ",$WHAT," == *",$1,"* ]]; }
mkdir -p "$OUT"
source bench/gpu_deps.sh  # ROOT, TORCH_PREFIX, LD_LIBRARY_PATH
# The system compiler: the host's default one links libstdc++ statically, which breaks fine-tuning against a
# PyTorch wheel's LibTorch (README, GPU section).
if [ -x /usr/bin/g++ ]; then export CXX=/usr/bin/g++ CC=/usr/bin/gcc CUDAHOSTCXX=/usr/bin/g++; fi
start=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DFAIRDIFF_ENGINE_ONLY=ON -DFAIRDIFF_BUILD_TESTS=ON \
  -DFAIRDIFF_WERROR=OFF -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/usr" -DICU_ROOT="$ROOT/usr" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0 > "$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" --target fairdiff test_diffusion test_train > "$OUT/build.log" 2>&1 ||
  { grep -E "error" -A5 "$OUT/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
{
  build-gpu/tests/test_diffusion --gtest_filter='UNetGraphsCuda*:FusedOps*:ChannelsLastCuda*' 2>&1
  build-gpu/tests/test_train --gtest_filter='TrainingGraphsCuda*' 2>&1
} | tee "$OUT/gpu_tests.txt" | grep -E "^\[  (PASSED|FAILED) |Failure|Expected|Which is|actual|eager vs" | head -40 || true

FD=build-gpu/fairdiff
MODEL=/tmp/sd21-base
[ -f "$MODEL/model_index.json" ] ||
  $FD model init --arch sd21-base --tokenizer-from models/builtin/tokenizer --out "$MODEL" --weights-dtype fp16
REF=/tmp/diffusers-ref
if [ ! -d "$REF/src/diffusers" ]; then mkdir -p "$REF" && tar -xzf .ref/diffusers-src.tar.gz -C "$REF"; fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

if wants generate; then
  G="$FD bench generate --model $MODEL --device cuda --dtype fp16"
  for graphs in ${SIDE_BY_SIDE_GRAPHS:-1 0}; do  # SIDE_BY_SIDE_GRAPHS=1: skip the graphs-off rows
    export FAIRDIFF_CUDA_GRAPHS=$graphs
    $G --scheduler pndm --steps 50 --batch-size 1 --iterations 5 --json "$OUT/fd_pndm50_b1_g$graphs.json" | tail -1
    $G --scheduler pndm --steps 50 --batch-size 32 --iterations 2 --json "$OUT/fd_pndm50_b32_g$graphs.json" | tail -1
    $G --scheduler dpmpp2m --steps 25 --batch-size 32 --iterations 2 --json "$OUT/fd_dpm25_b32_g$graphs.json" | tail -1
  done
  unset FAIRDIFF_CUDA_GRAPHS
  PYTHONPATH="$REF/src" python3 bench/reference_diffusers.py --model "$MODEL" --what generate --out "$OUT/ref_generate.json"
fi
if wants finetune; then
  $FD bench finetune --model $MODEL --resolution 512 --mixed-precision bf16 --iterations 30 --device cuda \
    --json "$OUT/fd_dreambooth.json" | tail -1
  # Before/after of the training levers in the same call: no CUDA graph for the step, then also no fused AdamW.
  FAIRDIFF_CUDA_GRAPHS=0 $FD bench finetune --model $MODEL --resolution 512 --mixed-precision bf16 --iterations 30 \
    --device cuda --json "$OUT/fd_dreambooth_no_graphs.json" | tail -1
  FAIRDIFF_CUDA_GRAPHS=0 FAIRDIFF_FUSED_OPS=groupnorm,residual,geglu,tokens,layernorm $FD bench finetune --model $MODEL \
    --resolution 512 --mixed-precision bf16 --iterations 30 --device cuda \
    --json "$OUT/fd_dreambooth_no_graphs_no_fused_adamw.json" | tail -1
  $FD bench finetune --model $MODEL --resolution 512 --mixed-precision bf16 --iterations 30 --device cuda \
    --no-cache-latents --json "$OUT/fd_dreambooth_vae.json" | tail -1
  $FD bench finetune --model $MODEL --resolution 512 --mixed-precision bf16 --iterations 30 --device cuda \
    --use-lora --json "$OUT/fd_lora.json" | tail -1
  PYTHONPATH="$REF/src" python3 bench/reference_diffusers.py --model "$MODEL" --what finetune --out "$OUT/ref_finetune.json"
fi
if wants layouts; then
  for batch in 1 2 4 8 16 32; do
    for layout in contiguous channels_last; do
      $FD bench generate --model $MODEL --device cuda --dtype fp16 --scheduler pndm --steps 20 --batch-size $batch \
        --iterations 2 --memory-format $layout --json "$OUT/layout_b${batch}_$layout.json" > /dev/null
      python3 -c "import json; d = json.load(open('$OUT/layout_b${batch}_$layout.json')); \
print('batch $batch $layout', round(d['images_per_s'], 3), 'images/s')"
    done
  done
fi
if wants profile; then
  $FD bench generate --model $MODEL --device cuda --dtype fp16 --scheduler pndm --steps 1 --batch-size 32 \
    --iterations 1 --profile-kernels | tee "$OUT/profile_unet_b32.txt" | grep -v "^bench"
  $FD bench finetune --model $MODEL --resolution 512 --mixed-precision bf16 --iterations 1 --device cuda \
    --profile-kernels | tee "$OUT/profile_dreambooth.txt"
  if [ -z "${SIDE_BY_SIDE_NO_REF_PROFILE:-}" ]; then  # set it to skip the reference's (unchanged) profile
    PYTHONPATH="$REF/src" python3 bench/reference_diffusers.py --model "$MODEL" --what profile \
      --out "$OUT/ref_profile.json" | tee "$OUT/ref_profile.txt"
  fi
fi
if wants batch1; then
  G="$FD bench generate --model $MODEL --device cuda --dtype fp16 --scheduler pndm --batch-size 1"
  $G --steps 50 --iterations 5 --json "$OUT/b1_steps50.json" | tail -1
  $G --steps 1 --iterations 5 --json "$OUT/b1_steps1.json" | tail -1
  $G --steps 50 --iterations 5 --memory-format channels_last --json "$OUT/b1_channels_last.json" | tail -1
  $G --steps 50 --iterations 5 --vae-dtype bf16 --json "$OUT/b1_vae_bf16.json" | tail -1
  FAIRDIFF_CUDA_GRAPHS=0 $G --steps 50 --iterations 5 --json "$OUT/b1_no_graphs.json" | tail -1
  $G --steps 1 --iterations 1 --profile-kernels | tee "$OUT/b1_kernels.txt" | head -40
  PYTHONPATH="$REF/src" python3 - <<'PY'
import time, torch
from diffusers import StableDiffusionPipeline
pipe = StableDiffusionPipeline.from_pretrained("/tmp/sd21-base", torch_dtype=torch.float16,
                                               safety_checker=None, feature_extractor=None,
                                               requires_safety_checker=False).to("cuda")
pipe.set_progress_bar_config(disable=True)
for steps in (50, 1):
    call = lambda: pipe(["A photo of a CEO of an important company"], negative_prompt=[""], num_inference_steps=steps,
                        guidance_scale=7.5, output_type="np")
    call(); torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(5): call()
    torch.cuda.synchronize(); print(f"reference batch 1, {steps} steps: {(time.perf_counter() - t) / 5:.4f} s per image")
PY
fi
python3 bench/side_by_side_table.py "$OUT" | tee "$OUT/side_by_side.md"
