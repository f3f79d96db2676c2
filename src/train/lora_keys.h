// LoRA key names: fairdiff writes the diffusers format that diffusers' DreamBooth LoRA trainer writes
// (unet.<module>.lora.down.weight / .lora.up.weight, text_encoder.text_model.<module>.lora_linear_layer.down.weight)
// and reads that, PEFT (lora_A / lora_B, optionally under base_model.model.) and kohya-ss
// (lora_unet_<module_with_underscores>.lora_down.weight, .lora_up.weight, .alpha). This is the one place
// these schemes are converted (core/name_conversion.h covers full checkpoints).
#pragma once

#include <optional>
#include <string>

namespace fairdiff::train {

enum class LoraComponent { unet, text_encoder };
enum class LoraPart { down, up, alpha };

struct LoraKey {
  LoraComponent component = LoraComponent::unet;
  // The module's name in fairdiff's tree (diffusers names; the text encoder without "text_model."). For kohya
  // keys this is the underscore form, resolved against the model's modules by the caller.
  std::string module;
  bool underscored = false;  // kohya: `module` uses '_' for '.'
  LoraPart part = LoraPart::down;
};

// Parses one key of a LoRA file; nullopt when the key is not a LoRA weight of a known scheme.
std::optional<LoraKey> parse_lora_key(const std::string& key);
// The key fairdiff writes for a module's down or up factor (diffusers format).
std::string lora_key_name(LoraComponent component, const std::string& module, LoraPart part);
std::string component_name(LoraComponent component);

}  // namespace fairdiff::train
