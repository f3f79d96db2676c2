// From-scratch training of an AutoencoderKL (the `fairdiff train-vae` run): reconstruction L1 (+ optional L2)
// of a posterior sample's decoding plus a small KL term to N(0, 1), AdamW with a warm-up + cosine schedule,
// horizontal flips; resumable checkpoints; the result is a `vae/` component in the diffusers layout whose
// config carries a measured scaling_factor (1 / std of the latents, as Stable Diffusion's 0.18215 was chosen).
//
// Randomness: step k draws its batch, flips and posterior noise from a CPU generator seeded with (seed, k), so a
// resumed run draws what an uninterrupted one does.
//
// Shape legend: N images, B batch, R resolution, Cl latent channels, h = w = R / f latent size.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/json.h"
#include "diffusion/autoencoder_kl.h"

namespace fairdiff::train {

struct VaeTrainConfig {
  std::filesystem::path data;  // a folder of images, or a CSV with a `file` column (repeated files count once)
  std::filesystem::path out;   // the vae component folder to write (must not exist)
  AutoencoderKLConfig vae;     // architecture (sample_size is set to the resolution)
  std::string arch = "builtin";
  std::filesystem::path init;  // optional: a vae folder whose weights start the run (same architecture)
  int64_t resolution = 64;
  int64_t batch_size = 64;
  int64_t max_train_steps = 2000;
  double learning_rate = 4e-4;
  int64_t lr_warmup_steps = 100;  // then cosine to 0
  double kl_weight = 1e-6;        // per latent element, against the per-pixel reconstruction loss
  double l2_weight = 0.0;         // added to the L1 term
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;
  bool flip = true;
  uint64_t seed = 0;
  int64_t checkpointing_steps = 500;  // 0: only on interrupt
  bool resume = false;
  int64_t eval_images = 512;    // first images of the data: PSNR and the latent scale
  std::string device = "auto";  // "auto": CUDA when present
  torch::Dtype weights_dtype = torch::kFloat32;

  std::filesystem::path work_dir() const;  // "<out>.work"
  Json fingerprint() const;                // the settings that determine the numbers
};

// FieldError naming the field of a bad value (no file access).
void validate_vae_flags(const VaeTrainConfig& config);
// The distinct image files of the data (a folder's PNG/JPEG files sorted, or a CSV's `file` column in first-seen
// order, relative to the CSV's folder); InputError for a missing folder/CSV/file or no images.
std::vector<std::filesystem::path> vae_training_files(const std::filesystem::path& data);

struct VaeTrainResult {
  std::filesystem::path out;
  int64_t images = 0;
  int64_t resumed_from = 0;
  int64_t steps_run = 0;
  double seconds = 0;
  double final_loss = 0;
  double psnr = 0;            // dB, of the posterior means' reconstructions of the eval images
  double mean_abs_error = 0;  // per pixel, in [0, 255] units
  double scaling_factor = 0;
};

// The whole run; throws InterruptedError after saving a checkpoint on Ctrl-C (or once
// FAIRDIFF_TRAIN_VAE_INTERRUPT_AFTER_STEP=k steps are done: a test hook).
VaeTrainResult run_vae_training(const VaeTrainConfig& config);

}  // namespace fairdiff::train
