#include "train/lora_keys.h"

#include <vector>

#include "core/strings.h"

namespace fairdiff::train {
namespace {

struct Suffix {
  const char* text;
  LoraPart part;
};

// Longest first, so ".lora_linear_layer.down.weight" is not mistaken for a shorter form.
const std::vector<Suffix>& suffixes() {
  static const std::vector<Suffix> list = {{".lora_linear_layer.down.weight", LoraPart::down},
                                           {".lora_linear_layer.up.weight", LoraPart::up},
                                           {".lora.down.weight", LoraPart::down},
                                           {".lora.up.weight", LoraPart::up},
                                           {".lora_down.weight", LoraPart::down},
                                           {".lora_up.weight", LoraPart::up},
                                           {".lora_A.weight", LoraPart::down},
                                           {".lora_B.weight", LoraPart::up},
                                           {"_lora.down.weight", LoraPart::down},
                                           {"_lora.up.weight", LoraPart::up},  // processor style
                                           {".alpha", LoraPart::alpha}};
  return list;
}

std::string strip_prefix(const std::string& text, const std::string& prefix) {
  return text.substr(prefix.size());
}

}  // namespace

std::string component_name(LoraComponent component) {
  return component == LoraComponent::unet ? "unet" : "text_encoder";
}

std::optional<LoraKey> parse_lora_key(const std::string& key) {
  LoraKey out;
  std::string stem;
  bool found = false;
  for (const auto& suffix : suffixes()) {
    if (ends_with(key, suffix.text)) {
      stem = key.substr(0, key.size() - std::string(suffix.text).size());
      out.part = suffix.part;
      found = true;
      break;
    }
  }
  if (!found || stem.empty()) return std::nullopt;
  if (starts_with(stem, "lora_unet_")) {
    out.module = strip_prefix(stem, "lora_unet_");
    out.underscored = true;
  } else if (starts_with(stem, "lora_te_")) {
    out.component = LoraComponent::text_encoder;
    out.module = strip_prefix(stem, "lora_te_");
    if (starts_with(out.module, "text_model_")) out.module = strip_prefix(out.module, "text_model_");
    out.underscored = true;
  } else if (starts_with(stem, "unet.")) {
    out.module = strip_prefix(stem, "unet.");
  } else if (starts_with(stem, "text_encoder.")) {
    out.component = LoraComponent::text_encoder;
    out.module = strip_prefix(stem, "text_encoder.");
    if (starts_with(out.module, "text_model.")) out.module = strip_prefix(out.module, "text_model.");
  } else if (starts_with(stem, "base_model.model.")) {
    out.module = strip_prefix(stem, "base_model.model.");  // a bare PEFT adapter of the UNet
  } else {
    return std::nullopt;
  }
  // Processor-style names of old diffusers files (attn1.processor.to_q_lora) map onto the projections.
  for (const char* proj : {"to_q", "to_k", "to_v", "to_out"}) {
    const std::string old = std::string(".processor.") + proj;
    if (ends_with(out.module, old)) {
      out.module = out.module.substr(0, out.module.size() - old.size()) + "." + proj +
                   (std::string(proj) == "to_out" ? ".0" : "");
    }
  }
  if (out.module.empty()) return std::nullopt;
  return out;
}

std::string lora_key_name(LoraComponent component, const std::string& module, LoraPart part) {
  if (component == LoraComponent::unet) {
    return "unet." + module + (part == LoraPart::down ? ".lora.down.weight" : ".lora.up.weight");
  }
  return "text_encoder.text_model." + module +
         (part == LoraPart::down ? ".lora_linear_layer.down.weight" : ".lora_linear_layer.up.weight");
}

}  // namespace fairdiff::train
