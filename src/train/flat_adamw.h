// AdamW over flat buffers, as the reference trainer's torch.optim.AdamW computes it (decoupled weight decay,
// bias-corrected moments), with fp32 master weights for mixed precision.
//
// The trainable tensors (the model's own parameters, or LoRA factors) are re-pointed into one flat buffer
// in the compute dtype, and their gradients into another, so clipping and the update are a handful of
// kernels over the whole model instead of a dozen per tensor. The fp32 master copy, both moments and the
// step count are the optimizer state a checkpoint stores.
//
// Shape legend: N total number of trainable elements.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"

namespace fairdiff::train {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double weight_decay = 1e-2;
  double eps = 1e-8;
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

class FlatAdamW {
 public:
  // `params` are fp32 leaf tensors with requires_grad on one device: their values become the fp32 masters,
  // and the tensors themselves are re-pointed into a flat buffer in `compute_dtype` (the forward and backward
  // run in it), their gradients into another. `accumulate_fp32` keeps an fp32 sum of micro-batch gradients
  // (gradient accumulation in a lower compute dtype).
  FlatAdamW(NamedTensors params, const AdamWConfig& config, torch::Dtype compute_dtype = torch::kFloat32,
            bool accumulate_fp32 = false);

  // Clears the gradient buffers before the first micro-batch of an optimizer step.
  void zero_grad();
  // After each micro-batch's backward: folds the compute-dtype gradient into the fp32 sum when there is one.
  void accumulate();
  // L2 norm of the whole (accumulated) gradient, times `grad_multiplier`, computed in fp32 on the device.
  torch::Tensor grad_norm(double grad_multiplier = 1.0) const;
  // One AdamW update with gradient g * grad_multiplier (unscaling and clipping fold into it), then the
  // compute-dtype weights are refreshed from the masters. `grad_multiplier` is a 0-d fp32 tensor on the device.
  void step(double lr, const torch::Tensor& grad_multiplier);

  int64_t numel() const { return numel_; }
  int64_t step_count() const { return step_; }
  const NamedTensors& params() const { return params_; }
  // Per-tensor views of the fp32 master weights, by name.
  TensorMap master_weights() const;
  // The flat gradient (compute dtype, or the fp32 sum) and a per-tensor view of it.
  torch::Tensor flat_grad() const;
  torch::Tensor grad_of(const std::string& name) const;

  // Optimizer state for checkpoints: master, exp_avg, exp_avg_sq (flat fp32 on the CPU) and step.
  TensorMap state() const;
  // Restores state(); InputError naming `source` when the sizes do not match this model.
  void load_state(const TensorMap& state, const std::string& source);

 private:
  torch::Tensor view_of(const torch::Tensor& flat, size_t index) const;
  void refresh_model_weights();

  NamedTensors params_;
  std::vector<int64_t> offsets_;
  AdamWConfig config_;
  int64_t numel_ = 0;
  int64_t step_ = 0;
  torch::Tensor model_buffer_;  // [N] compute dtype; the params are views of it (== master_ in fp32)
  torch::Tensor grad_buffer_;   // [N] compute dtype; the params' .grad are views of it
  torch::Tensor grad_sum_;      // [N] fp32, only with accumulate_fp32
  torch::Tensor master_;        // [N] fp32
  torch::Tensor exp_avg_;       // [N] fp32
  torch::Tensor exp_avg_sq_;    // [N] fp32
};

// torch.nn.utils.clip_grad_norm_'s factor: min(1, max_norm / (norm + 1e-6)), as a 0-d tensor.
torch::Tensor clip_coefficient(const torch::Tensor& total_norm, double max_norm);

}  // namespace fairdiff::train
