// Fine-tuning throughput and memory on synthetic data: DreamBooth steps with prior preservation (batch of
// instance + class images) on a real model directory, timed after warm-up steps.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/json.h"
#include "train/finetune_config.h"

namespace fairdiff::train {

struct FinetuneBenchmarkConfig {
  FinetuneConfig training;  // model_dir, resolution, mixed_precision, use_lora, gradient_checkpointing, device...
  int64_t steps = 20;
  int64_t warmup_steps = 3;
  // When set, one extra training step after the warm-up runs inside it (`bench finetune --profile-kernels`
  // passes a profiler); that step is not timed.
  std::function<void(const std::function<void()>& step)> around_profiled_step;
};

struct FinetuneBenchmarkResult {
  int64_t steps = 0;
  double seconds = 0;
  double steps_per_second = 0;
  int64_t trainable_parameters = 0;
  bool memory_measured = false;  // CUDA builds on a CUDA device only
  double peak_allocated_gib = 0;
  double peak_reserved_gib = 0;
  double final_loss = 0;
  Json to_json() const;
};

FinetuneBenchmarkResult run_finetune_benchmark(const FinetuneBenchmarkConfig& config);

}  // namespace fairdiff::train
