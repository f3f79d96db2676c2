#!/usr/bin/env bash
# Trains fairdiff's built-in model on a CUDA host (docs/toy-model.md). Runs on a host without a package registry:
# the header/library dependencies travel as .deb files in .deps/debs (bench/run_gpu.sh lists them), the CLIP
# tokenizer files in .deps/tokenizer, the training data (`fairdiff builtin-data` output) in .deps/builtin-data.
# A binary built by an earlier call can travel as .deps/bin/fairdiff, a trained VAE as .deps/vae/.
#
# Usage: bash tools/builtin/run_gpu.sh OUT PHASE  (large outputs come back split: cat NAME.tar.* | tar -x)
#   vae:     build fairdiff (unless .deps/bin/fairdiff exists), train the VAE, a short UNet probe with samples;
#            OUT gets the binary, vae.tar, the probe's samples and logs.
#   unet:    the UNet run (UNET_STEPS steps, default 3000) on .deps/vae, then the evaluation images (100 per prompt
#            at guidance 7.5 and 1) and the model in fp16; OUT gets model.tar (fp16), unet weights, images.
# Settings (environment): VAE_STEPS (3000), VAE_BATCH (64), UNET_STEPS, UNET_BATCH (256), UNET_LR (3e-4),
# PROBE_STEPS (300), EVAL_IMAGES (100).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:?usage: tools/builtin/run_gpu.sh OUT vae|unet}"
PHASE="${2:?usage: tools/builtin/run_gpu.sh OUT vae|unet}"
mkdir -p "$OUT"
ROOT="$PWD/.deps/root"
if [ ! -d "$ROOT/usr/include/unicode" ]; then
  for f in .deps/debs/*.deb; do dpkg -x "$f" "$ROOT"; done
fi
export LD_LIBRARY_PATH="$ROOT/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
DATA=.deps/builtin-data/train.csv
FD=.deps/bin/fairdiff
if [ ! -x "$FD" ]; then
  TORCH_PREFIX="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  start=$(date +%s)
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DFAIRDIFF_ENGINE_ONLY=ON -DFAIRDIFF_BUILD_TESTS=OFF \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/usr" -DICU_ROOT="$ROOT/usr" -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DTORCH_CUDA_ARCH_LIST=9.0 > "$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
  cmake --build build-gpu -j "$(nproc)" --target fairdiff > "$OUT/build.log" 2>&1 ||
    { grep -E "error" -A5 "$OUT/build.log" | head -60; exit 1; }
  mkdir -p .deps/bin && cp build-gpu/fairdiff "$FD" && cp "$FD" "$OUT/fairdiff"
  echo "build: $(( $(date +%s) - start )) s"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# The base model: the builtin architecture, random text encoder and UNet (seed 0), the trained VAE.
make_base() {
  rm -rf /tmp/base
  $FD model init --arch builtin --tokenizer-from .deps/tokenizer --out /tmp/base --seed 0
  rm -rf /tmp/base/vae
  mkdir -p /tmp/base/vae
  cp "$1"/config.json "$1"/diffusion_pytorch_model.safetensors /tmp/base/vae/
}

finetune() {  # OUT_DIR STEPS [extra flags]
  local out="$1" steps="$2"
  shift 2
  $FD finetune --model /tmp/base --instance-data "$DATA" --resolution 64 --train-batch-size "${UNET_BATCH:-256}" \
    --learning-rate "${UNET_LR:-3e-4}" --lr-scheduler cosine --lr-warmup-steps $(( steps / 20 )) \
    --max-train-steps "$steps" --mixed-precision bf16 --caption-dropout 0.1 --adam-weight-decay 0.01 \
    --checkpointing-steps 0 --seed 0 --device cuda --out "$out" "$@"
}

if [ "$PHASE" = vae ]; then
  start=$(date +%s)
  $FD train-vae --data "$DATA" --out /tmp/vae --arch builtin --resolution 64 --batch-size "${VAE_BATCH:-64}" \
    --max-train-steps "${VAE_STEPS:-3000}" --learning-rate 5e-4 --lr-warmup-steps 100 --kl-weight 1e-6 \
    --checkpointing-steps 0 --device cuda 2>&1 | tee "$OUT/train_vae.log" | grep -v "^train-vae: reading" | tail -5
  echo "train-vae: $(( $(date +%s) - start )) s"
  tar -C /tmp -cf "$OUT/vae.tar" vae
  make_base /tmp/vae
  start=$(date +%s)
  finetune /tmp/probe "${PROBE_STEPS:-300}" 2>&1 | tr '\r' '\n' | tail -6
  echo "probe finetune: $(( $(date +%s) - start )) s"
  cp /tmp/probe/loss_curve.csv "$OUT/probe_loss_curve.csv"
  $FD generate --model /tmp/probe --prompts data/seed/prompts_info.csv --images-per-prompt 8 --guidance 7.5 \
    --batch-size 80 --device cuda --out /tmp/probe_images > /dev/null
  tar -C /tmp -cf "$OUT/probe_images.tar" probe_images/images
elif [ "$PHASE" = unet ]; then
  make_base .deps/vae
  start=$(date +%s)
  finetune /tmp/trained "${UNET_STEPS:-3000}" 2>&1 | tr '\r' '\n' | tail -25
  echo "unet finetune: $(( $(date +%s) - start )) s"
  cp /tmp/trained/loss_curve.csv "$OUT/loss_curve.csv"
  $FD model convert --model /tmp/trained --out /tmp/builtin --weights-dtype fp16
  rm -f /tmp/builtin/loss_curve.csv
  tar -C /tmp -cf - builtin | split -b 15M - "$OUT/model.tar."  # files of at most 16 MiB come back
  for g in 7.5 1; do
    start=$(date +%s)
    $FD generate --model /tmp/builtin --prompts data/seed/prompts_info.csv --images-per-prompt "${EVAL_IMAGES:-100}" \
      --guidance "$g" --seed 1000 --batch-size 250 --device cuda --out "/tmp/eval_g$g" > /dev/null
    echo "generate g$g: $(( $(date +%s) - start )) s"
    tar -C /tmp -cf - "eval_g$g" | split -b 15M - "$OUT/eval_g$g.tar."
  done
else
  echo "unknown phase $PHASE (expected vae or unet)" >&2
  exit 2
fi
ls -la "$OUT"
