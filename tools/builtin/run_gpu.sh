#!/usr/bin/env bash
# Trains fairdiff's built-in model on a CUDA host in one or a few calls (docs/toy-model.md). Runs on a host without a package
# registry: the header/library dependencies travel as .deb files in .deps/debs (bench/run_gpu.sh lists them), the
# CLIP tokenizer files in .deps/tokenizer, the training data (`fairdiff builtin-data` output) in .deps/builtin-data.
# A binary built by an earlier call can travel as .deps/bin/fairdiff (FAIRDIFF_BIN names another). FAIRDIFF_SRC
# builds another source tree, FAIRDIFF_SRC_TAR a .tar.gz of one (e.g. `git archive --format=tar.gz HEAD`, when the
# checkout holds others' unfinished work).
#
# Usage: bash tools/builtin/run_gpu.sh OUT PHASE  (large outputs come back split: cat NAME.tar.* | tar -x)
#   all:    build (unless a binary is there), train the VAE, then the UNet (and the text encoder) from a random
#           `model init --arch builtin`, convert to fp16 (OUT/model.tar.*, written as soon as it exists), then the
#           evaluation images (EVAL_IMAGES per prompt at guidance 7.5 and 1, OUT/eval.tar.*).
#   build:  the binary and a copy of the data in $WORK only (kept while the machine stays warm, 30 s after a call).
#   warm:   the UNet/text encoder trained further from WARM_MODEL (e.g. an earlier model after `model convert
#           --max-length 24`), with the binary and data of an earlier `build` call; then convert and evaluate.
#   resume: finish an interrupted UNet run (same UNET_STEPS) on the still-warm machine; then convert and evaluate.
#   speed:  throughput of train-vae and finetune (a few steps each) and nothing else.
# Without VAE_STEPS/UNET_STEPS the counts follow from a time budget: short calibration runs measure each trainer's
# steps/s, the VAE gets VAE_SHARE of the time left, the UNet the rest; the UNet stops at DEADLINE - RESERVE seconds
# (SIGINT: the trainer keeps a checkpoint) and the call exits 3 asking for `resume`.
# Measured on the H200 (2026-12-02): engine-only build 83-92 s; train-vae 21.2 step/s at batch 128; finetune
# --train-text-encoder at batch 256, bf16: 12-13 step/s with the 77-token context, 15.5 with 24 tokens. The trainer
# crashed (SIGSEGV) there each time it pruned an older checkpoint; the loop below resumes from the newest one.
# The shipped model (models/builtin/README.md): VAE_STEPS=1500 UNET_STEPS=4000 TRAIN_TEXT_ENCODER=1 ... all, then
# `model convert --max-length 24`, then warm (UNET_STEPS=6500 UNET_LR=2e-4) and warm (UNET_STEPS=3000 UNET_LR=1e-4).
# Settings (environment): DEADLINE (540), RESERVE (75: seconds kept for conversion + evaluation images),
# VAE_SHARE (0.3), VAE_BATCH (128), UNET_BATCH (256), UNET_LR (3e-4), UNET_SEED (0), TRAIN_TEXT_ENCODER (0),
# CKPT_STEPS (500), EVAL_IMAGES (100), DEVICE (cuda; cpu for a dry run of this script), VAE_DIR (a trained vae/
# folder: no VAE training; then UNET_STEPS must be given), WARM_MODEL, RESUME.
set -euo pipefail
cd "$(dirname "$0")/../.."
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
OUT="${1:?usage: tools/builtin/run_gpu.sh OUT all|speed}"
PHASE="${2:?usage: tools/builtin/run_gpu.sh OUT all|speed}"
DEADLINE="${DEADLINE:-540}"
RESERVE="${RESERVE:-75}"
DEVICE="${DEVICE:-cuda}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="${WORK:-/tmp/builtin-run}"
rm -rf "$WORK/logs"
mkdir -p "$WORK"
LOG="$WORK/logs"  # packed into OUT/logs.tar at exit: at most 8 files come back from the device
mkdir -p "$LOG"
ROOT="$PWD/.deps/root"
if [ -d .deps/debs ] && [ ! -f "$ROOT/.unpacked" ]; then
  for f in .deps/debs/*.deb; do dpkg -x "$f" "$ROOT"; done
  touch "$ROOT/.unpacked"
fi
export LD_LIBRARY_PATH="$ROOT/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
DATA="${DATA:-$PWD/.deps/builtin-data/train.csv}"
FD="${FAIRDIFF_BIN:-$PWD/.deps/bin/fairdiff}"
# warm / resume run on a machine kept warm since an earlier call: its binary is in $WORK.
if [ "$PHASE" = warm ] || [ "$PHASE" = resume ]; then
  if [ -x "$WORK/bin/fairdiff" ]; then FD="$WORK/bin/fairdiff"; elif [ -x "$WORK/build/fairdiff" ]; then FD="$WORK/build/fairdiff"; fi
fi
if [ ! -x "$FD" ]; then
  SRC="${FAIRDIFF_SRC:-.}"
  if [ -n "${FAIRDIFF_SRC_TAR:-}" ]; then
    SRC="$WORK/src"
    rm -rf "$SRC" && mkdir -p "$SRC" && tar -xzf "$FAIRDIFF_SRC_TAR" -C "$SRC"
  fi
  TORCH_PREFIX="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  # -isystem: the host's compiler does not look in the unpacked multiarch include folder by itself.
  cmake -S "$SRC" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFAIRDIFF_ENGINE_ONLY=ON \
    -DFAIRDIFF_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$ROOT/usr" -DICU_ROOT="$ROOT/usr" \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0 -DFAIRDIFF_WERROR=OFF \
    -DCMAKE_CXX_FLAGS="-isystem $ROOT/usr/include/x86_64-linux-gnu" > "$LOG/cmake.log" 2>&1 ||
    { tail -40 "$LOG/cmake.log"; exit 1; }
  cmake --build "$WORK/build" -j "$(nproc)" --target fairdiff > "$LOG/build.log" 2>&1 ||
    { grep -E "error" -A5 "$LOG/build.log" | head -60; exit 1; }
  FD="$WORK/build/fairdiff"
  echo "build: $(elapsed) s"
fi
[ "$DEVICE" = cpu ] || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# The last progress line's rate ("label 40/40 (100%) 12.34 step/s ...") of a log.
rate_of() { grep -E "^$1 [0-9]+/[0-9]+ " "$2" | tail -1 | awk '{print $4}'; }
# steps = rate * seconds, at least MIN.
steps_for() { awk -v r="$1" -v s="$2" -v m="$3" 'BEGIN { n = int(r * s); print (n < m ? m : n) }'; }

train_vae() {  # OUT_DIR STEPS LOG
  rm -rf "$1" "$1.work"
  "$FD" train-vae --data "$DATA" --out "$1" --arch builtin --resolution 64 --batch-size "${VAE_BATCH:-128}" \
    --max-train-steps "$2" --learning-rate 5e-4 --lr-warmup-steps $(($2 / 20 + 1)) --kl-weight 1e-6 \
    --checkpointing-steps 0 --seed 0 --device "$DEVICE" 2>&1 | tr '\r' '\n' | grep -v "reading" > "$3" || true
  tail -2 "$3"
  [ -f "$1/diffusion_pytorch_model.safetensors" ]
}

# The base model: the builtin architecture, random text encoder and UNet (seed 0), the trained VAE.
make_base() {  # VAE_DIR
  rm -rf "$WORK/base"
  "$FD" model init --arch builtin --tokenizer-from .deps/tokenizer --out "$WORK/base" --seed 0 > /dev/null
  rm -rf "$WORK/base/vae" && mkdir -p "$WORK/base/vae"
  cp "$1"/config.json "$1"/diffusion_pytorch_model.safetensors "$WORK/base/vae/"
  if [ -f "$1/vae_training.json" ]; then cp "$1/vae_training.json" "$WORK/base/vae/"; fi
}

finetune() {  # OUT_DIR STEPS LOG [SECONDS]: with SECONDS, Ctrl-C (SIGINT) after that long keeps a checkpoint
  local out="$1" steps="$2" log="$3" limit="${4:-0}" te=() resume=() guard=()
  [ "${TRAIN_TEXT_ENCODER:-0}" = 1 ] && te=(--train-text-encoder)
  if [ "${RESUME:-0}" = 1 ] && [ -d "$out.work" ]; then
    resume=(--resume)
  else
    rm -rf "$out" "$out.work"
  fi
  [ "$limit" -gt 0 ] && guard=(timeout -s INT "$limit")
  "${guard[@]}" "$FD" finetune --model "$WORK/base" --instance-data "$DATA" --resolution 64 --train-batch-size "${UNET_BATCH:-256}" \
    --learning-rate "${UNET_LR:-3e-4}" --lr-scheduler cosine --lr-warmup-steps $((steps / 20)) \
    --max-train-steps "$steps" --mixed-precision bf16 --caption-dropout 0.1 --adam-weight-decay 0.01 \
    --checkpointing-steps "${CKPT_STEPS:-500}" --seed "${UNET_SEED:-0}" --device "$DEVICE" "${te[@]}" "${resume[@]}" \
    --out "$out" 2>&1 | tr '\r' '\n' >> "$log" || true
  tail -2 "$log"
  # The process has been seen to crash at exit after publishing its output; the output is complete when
  # finetune_settings.json is there (it is written last).
  [ -f "$out/finetune_settings.json" ]
}

timed() {  # NAME COMMAND...: runs it, prints and records its seconds; returns the command's status
  local name="$1" s rc=0
  shift
  s=$(date +%s)
  "$@" || rc=$?
  echo "$name: $(($(date +%s) - s)) s (at $(elapsed) s), status $rc" | tee -a "$LOG/timings.txt"
  return $rc
}

calibrate() {  # sets VAE_RATE, UNET_RATE (steps/s), VAE_STARTUP and UNET_STARTUP (s)
  local s=$(date +%s)
  timed calibrate-vae train_vae "$WORK/vae_cal" "${CAL_STEPS:-60}" "$LOG/vae_cal.log"
  VAE_RATE=$(rate_of train-vae "$LOG/vae_cal.log")
  VAE_STARTUP=$(awk -v w=$(($(date +%s) - s)) -v n="${CAL_STEPS:-60}" -v r="$VAE_RATE" 'BEGIN { print int(w - n / r + 1) }')
  make_base "$WORK/vae_cal"
  s=$(date +%s)
  timed calibrate-unet finetune "$WORK/unet_cal" "${CAL_STEPS:-60}" "$LOG/unet_cal.log"
  UNET_RATE=$(rate_of finetune "$LOG/unet_cal.log")
  UNET_STARTUP=$(awk -v w=$(($(date +%s) - s)) -v n="${CAL_STEPS:-60}" -v r="$UNET_RATE" 'BEGIN { print int(w - n / r + 1) }')
  echo "rates: train-vae $VAE_RATE step/s (start-up ${VAE_STARTUP} s), finetune $UNET_RATE step/s (start-up ${UNET_STARTUP} s)" |
    tee -a "$LOG/timings.txt"
}

pack_logs() { tar -C "$WORK" -cf "$OUT/logs.tar" logs; }
trap pack_logs EXIT

# build: the binary and a copy of the training data in $WORK (kept while the machine stays warm), nothing else.
if [ "$PHASE" = build ]; then
  rm -rf "$WORK/data" && cp -r "$(dirname "$DATA")" "$WORK/data"
  mkdir -p "$WORK/bin" && cp "$FD" "$WORK/bin/fairdiff"
  echo "built; data in $WORK/data ($(wc -l < "$WORK/data/train.csv") lines)"
  exit 0
fi
# warm: the UNet (and text encoder) trained further from WARM_MODEL (a model folder, e.g. an earlier run's
# builtin/ after `model convert --max-length`), on a machine kept warm since the phase build.
if [ "$PHASE" = warm ]; then
  [ -d "$WORK/data" ] && DATA="$WORK/data/train.csv"
  UNET_STEPS="${UNET_STEPS:?warm needs UNET_STEPS}"
  if [ "${RESUME:-0}" != 1 ]; then
    rm -rf "$WORK/base" && cp -r "${WARM_MODEL:?warm needs WARM_MODEL}" "$WORK/base"
  fi
fi
# resume: a second call on the still-warm machine (within its 30 s) finishes a UNet run that the first call's
# deadline interrupted (its checkpoint is in $WORK/trained.work), then converts and evaluates as `all` does.
if [ "$PHASE" = resume ]; then
  RESUME=1
  UNET_STEPS="${UNET_STEPS:?resume needs the UNET_STEPS of the interrupted run}"
fi
if [ "$PHASE" = speed ]; then
  calibrate
  exit 0
fi
case "$PHASE" in all | resume | warm) ;; *) echo "unknown phase $PHASE (expected all, build, warm, resume or speed)" >&2; exit 2 ;; esac

if [ "$PHASE" = resume ] || [ "$PHASE" = warm ]; then
  :
elif [ -z "${VAE_DIR:-}${VAE_STEPS:-}" ] || [ -z "${UNET_STEPS:-}" ]; then
  calibrate
  left=$((DEADLINE - $(elapsed) - RESERVE - VAE_STARTUP - UNET_STARTUP - 10))
  vae_seconds=$(awk -v l="$left" -v f="${VAE_SHARE:-0.3}" 'BEGIN { print int(l * f) }')
  VAE_STEPS=${VAE_STEPS:-$(steps_for "$VAE_RATE" "$vae_seconds" "${MIN_STEPS:-100}")}
  UNET_STEPS=${UNET_STEPS:-$(steps_for "$UNET_RATE" $((left - vae_seconds)) "${MIN_STEPS:-100}")}
fi
echo "plan at $(elapsed) s: VAE_STEPS=${VAE_STEPS:-} UNET_STEPS=$UNET_STEPS" | tee -a "$LOG/timings.txt"
if [ "$PHASE" = resume ] || [ "$PHASE" = warm ]; then
  :  # the base model is in $WORK/base
elif [ -n "${VAE_DIR:-}" ]; then
  make_base "$VAE_DIR"  # a VAE trained by an earlier call (fp32 weights)
else
  timed train-vae train_vae "$WORK/vae" "$VAE_STEPS" "$LOG/train_vae.log"
  make_base "$WORK/vae"
fi
# The UNet gets what is left before the deadline, less RESERVE. The trainer has been seen to crash (SIGSEGV) right
# after writing a checkpoint; each crash or interruption resumes from the last checkpoint while time is left.
while [ ! -f "$WORK/trained/finetune_settings.json" ]; do
  unet_limit=$((DEADLINE - $(elapsed) - RESERVE))
  if [ "$unet_limit" -lt 40 ]; then
    echo "finetune stopped at the deadline ($(grep -o 'checkpoint of step [0-9]*' "$LOG/finetune.log" | tail -1)): run the phase resume next" |
      tee -a "$LOG/timings.txt"
    exit 3
  fi
  timed finetune finetune "$WORK/trained" "$UNET_STEPS" "$LOG/finetune.log" "$unet_limit" || true
  RESUME=1
done
cp "$WORK/trained/loss_curve.csv" "$LOG/loss_curve.csv"
rm -rf "$WORK/builtin"
"$FD" model convert --model "$WORK/trained" --out "$WORK/builtin" --weights-dtype fp16
rm -f "$WORK/builtin/loss_curve.csv"
tar -C "$WORK" -cf - builtin | split -b 15M - "$OUT/model.tar."  # files of at most 16 MiB come back
echo "model written at $(elapsed) s" | tee -a "$LOG/timings.txt"
for g in 7.5 1; do
  rm -rf "$WORK/eval_g$g"  # generate keeps images already present: an earlier model's would stay
  timed "generate g$g" "$FD" generate --model "$WORK/builtin" --prompts data/seed/prompts_info.csv \
    --images-per-prompt "${EVAL_IMAGES:-100}" --guidance "$g" --seed 1000 --batch-size 250 --device "$DEVICE" \
    --out "$WORK/eval_g$g" > "$LOG/generate_g$g.log" 2>&1
done
tar -C "$WORK" -cf - eval_g7.5 eval_g1 | split -b 15M - "$OUT/eval.tar."
echo "done at $(elapsed) s" | tee -a "$LOG/timings.txt"
ls -la "$OUT"
