// The output of a fine-tuning run. A full model is written in the diffusers layout: the trained components
// (unet/, and text_encoder/ with --train-text-encoder) get their config and new fp32 weights, every other file
// of the base model is hard-linked (copied where linking fails). A LoRA run writes pytorch_lora_weights.safetensors.
// Both get loss_curve.csv and finetune_settings.json. Everything is assembled in a staging folder and renamed to
// the output path at the end, so a partial output never looks finished.
#pragma once

#include <filesystem>
#include <set>
#include <string>

#include "core/json.h"
#include "core/safetensors.h"

namespace fairdiff::train {

inline constexpr const char* kLoraWeightsName = "pytorch_lora_weights.safetensors";

// Links (or copies) the base model into `staging`, leaving out the weight files of `trained` components and
// single-file checkpoints at the top level (they hold the base weights, not the fine-tuned ones).
void link_base_model(const std::filesystem::path& base_dir, const std::filesystem::path& staging,
                     const std::set<std::string>& trained);
// Writes a trained component's weights (diffusers/transformers key names) into staging/<component>/.
void write_component_weights(const std::filesystem::path& staging, const std::string& component,
                             const TensorMap& weights);
// Renames the finished staging folder to `out` (an empty `out` folder is replaced).
void publish_output(const std::filesystem::path& staging, const std::filesystem::path& out);

}  // namespace fairdiff::train
