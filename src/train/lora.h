// LoRA (low-rank adaptation) for Stable Diffusion: training adapters on the attention projections, saving
// them in the diffusers format, and applying a LoRA file to a loaded model.
//
// A LoRA on a linear layer W [out, in] is W + (alpha / rank) * up @ down, down [rank, in], up [out, rank].
// Training substitutes that sum for the layer's weight before every forward pass (the layer's registered
// parameter stays the frozen base weight), so the model's code needs no LoRA hooks.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "diffusion/stable_diffusion.h"
#include "train/flat_adamw.h"
#include "train/lora_keys.h"

namespace fairdiff::train {

struct LoraConfig {
  int64_t rank = 4;
  double alpha = 4.0;
  bool text_encoder = false;  // also adapt the text encoder's self-attention projections
};

// Trainable adapters on UNet attn1/attn2 to_q, to_k, to_v, to_out.0 (and text encoder q/k/v/out_proj), as
// diffusers' train_dreambooth_lora.py targets. down ~ N(0, 1/rank) from `generator`, up = 0.
class LoraAdapters {
 public:
  LoraAdapters(StableDiffusionModel& model, const LoraConfig& config, at::Generator generator);
  ~LoraAdapters();
  LoraAdapters(const LoraAdapters&) = delete;
  LoraAdapters& operator=(const LoraAdapters&) = delete;

  // The factors, named by their diffusers keys (the optimizer re-points them into its buffers).
  NamedTensors trainable() const;
  // Sets every adapted layer's weight to base + scale * up @ down (call before each forward pass).
  void refresh();
  // Puts the frozen base weights back into the layers.
  void restore();
  // The LoRA file's tensors from the factors' fp32 values (`master`, by trainable() name); alpha / rank is
  // folded into `up`, so loaders that assume alpha = rank reproduce the same update.
  TensorMap export_weights(const TensorMap& master) const;
  size_t size() const { return adapters_.size(); }

 private:
  struct Adapter {
    LoraComponent component;
    std::string module;
    torch::nn::LinearImpl* linear;
    torch::Tensor base;  // [out, in], frozen
    torch::Tensor down;  // [rank, in]
    torch::Tensor up;    // [out, rank]
  };
  LoraConfig config_;
  double scale_;
  std::vector<Adapter> adapters_;
};

// Merges the LoRA in `file` into the model's weights: W += scale * (alpha / rank) * up @ down (alpha / rank = 1
// when the file has no alpha). Reads the diffusers, PEFT and kohya-ss key schemes. Checks every entry before
// changing any weight; InputError naming the file and the offending keys for unknown keys, a module the model
// does not have or a shape that does not fit (a LoRA trained for another architecture). Returns the number
// of layers changed.
size_t apply_lora(StableDiffusionModel& model, const std::filesystem::path& file, double scale = 1.0);

}  // namespace fairdiff::train
