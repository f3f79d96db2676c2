// Training checkpoints: `<work>/checkpoint-<step>/` holds the optimizer state (fp32 master weights, AdamW
// moments, step), the fp16 loss scale, the loss curve so far and the run's settings. Randomness is derived
// from (seed, micro-batch index), so the step count is the whole random-generator state. A checkpoint is
// written under a temporary name and renamed when complete.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "train/finetune_config.h"
#include "train/flat_adamw.h"

namespace fairdiff::train {

struct LossRecord {
  int64_t step = 0;  // optimizer steps done after this one (1-based)
  double loss = 0, loss_instance = 0, loss_prior = 0, lr = 0, grad_norm = 0;
};

struct TrainingState {
  int64_t step = 0;               // optimizer steps done
  double loss_scale = 1.0;        // fp16 dynamic loss scale (1 otherwise)
  int64_t loss_scale_growth = 0;  // steps since the scale last changed
  std::vector<LossRecord> curve;
};

std::string loss_curve_csv(const std::vector<LossRecord>& curve);

// Writes checkpoint-<state.step> and deletes the oldest ones beyond config.checkpoints_total_limit.
std::filesystem::path save_checkpoint(const FinetuneConfig& config, const FlatAdamW& optimizer,
                                      const TrainingState& state);
// The complete checkpoint with the highest step in the work folder, if any.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& work_dir);
// Restores the optimizer and returns the training state; InputError naming the checkpoint when it was written
// with other settings or for other trainable tensors.
TrainingState load_checkpoint(const std::filesystem::path& dir, const FinetuneConfig& config, FlatAdamW& optimizer);

}  // namespace fairdiff::train
