// Every foreign key-naming scheme of model weights is converted to fairdiff's (= diffusers') names here, in one
// place. Two exceptions: LoRA adapters, whose diffusers/PEFT/kohya key names map onto layers rather than tensors
// (src/train/lora_keys.h), and the original single-file layout of SD 1.x/2.x checkpoints, whose UNet indices only
// mean something given the architecture's configs (src/diffusion/single_file_keys.h).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace fairdiff {

// transformers CLIPTextModel: older exports prefix every key with "text_model." and carry the
// "embeddings.position_ids" buffer; both are normalised away.
TensorMap convert_clip_text_keys(TensorMap weights);
// diffusers AutoencoderKL: checkpoints saved before diffusers 0.14 name the mid-block attention
// query/key/value/proj_attn (and store them as 1x1 conv weights in some exports); renamed to
// to_q/to_k/to_v/to_out.0 with linear weights.
TensorMap convert_vae_keys(TensorMap weights);

// The weights file of a component folder: `<base>.safetensors`, else `<base>.fp16.safetensors`.
// InputError naming the folder (and pointing at .bin files, which are not read) when none is there.
std::filesystem::path find_component_weights(const std::filesystem::path& dir, const std::string& base);

}  // namespace fairdiff
