// Test helper: writes a diffusers-layout model folder (the tiny fixtures) as one single-file checkpoint in the
// original layout, the way the CompVis / Stability AI code saves them. Written from the original module layout on
// its own, not from diffusion/single_file_keys.h, so a mistake there cannot cancel itself out. Used by the
// diffusion and cli suites.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/safetensors.h"
#include "core/strings.h"

namespace fairdiff::test {

namespace original_layout {

// "a.b.c" -> {"a", "b", "c"}
inline std::vector<std::string> parts(const std::string& key) {
  return split(key, '.');
}
inline std::string tail(const std::vector<std::string>& p, size_t from) {
  std::vector<std::string> rest(p.begin() + static_cast<std::ptrdiff_t>(from), p.end());
  return join(rest, ".");
}

// diffusers ResnetBlock2D -> LDM ResBlock (UNet) names.
inline std::string unet_resnet(const std::vector<std::string>& p, size_t at) {
  const std::string& layer = p[at];
  const std::string rest = tail(p, at + 1);
  if (layer == "norm1") return "in_layers.0." + rest;
  if (layer == "conv1") return "in_layers.2." + rest;
  if (layer == "time_emb_proj") return "emb_layers.1." + rest;
  if (layer == "norm2") return "out_layers.0." + rest;
  if (layer == "conv2") return "out_layers.3." + rest;
  if (layer == "conv_shortcut") return "skip_connection." + rest;
  throw std::logic_error("unknown resnet layer " + layer);
}

inline std::string unet_key(const std::string& key, const Json& config) {
  const int64_t layers = config.at("layers_per_block").get<int64_t>();
  const auto up_types = config.at("up_block_types").get<std::vector<std::string>>();
  const auto p = parts(key);
  const std::string rest1 = tail(p, 1);
  if (p[0] == "conv_in") return "input_blocks.0.0." + rest1;
  if (p[0] == "conv_norm_out") return "out.0." + rest1;
  if (p[0] == "conv_out") return "out.2." + rest1;
  if (p[0] == "time_embedding") return (p[1] == "linear_1" ? "time_embed.0." : "time_embed.2.") + tail(p, 2);
  if (p[0] == "mid_block") {
    if (p[1] == "attentions") return "middle_block.1." + tail(p, 3);
    return "middle_block." + std::string(p[2] == "0" ? "0." : "2.") + unet_resnet(p, 3);
  }
  const int64_t block = std::stoll(p[1]);
  if (p[0] == "down_blocks") {
    const int64_t first = 1 + block * (layers + 1);
    if (p[2] == "downsamplers") return "input_blocks." + std::to_string(first + layers) + ".0.op." + tail(p, 5);
    const int64_t index = first + std::stoll(p[3]);
    if (p[2] == "attentions") return "input_blocks." + std::to_string(index) + ".1." + tail(p, 4);
    return "input_blocks." + std::to_string(index) + ".0." + unet_resnet(p, 4);
  }
  const int64_t first = block * (layers + 1);
  const bool attention = up_types.at(static_cast<size_t>(block)).find("CrossAttn") != std::string::npos;
  if (p[2] == "upsamplers") {
    return "output_blocks." + std::to_string(first + layers) + (attention ? ".2." : ".1.") + tail(p, 4);
  }
  const int64_t index = first + std::stoll(p[3]);
  if (p[2] == "attentions") return "output_blocks." + std::to_string(index) + ".1." + tail(p, 4);
  return "output_blocks." + std::to_string(index) + ".0." + unet_resnet(p, 4);
}

// diffusers VAE -> LDM Encoder / Decoder names; `conv` is set for attention weights stored as 1x1 convolutions.
inline std::string vae_key(const std::string& key, int64_t blocks, bool& conv) {
  conv = false;
  const auto p = parts(key);
  if (p[0] == "quant_conv" || p[0] == "post_quant_conv") return key;
  const std::string part = p[0] + ".";
  auto resnet = [&](size_t at) {
    return (p[at] == "conv_shortcut" ? std::string("nin_shortcut") : p[at]) + "." + tail(p, at + 1);
  };
  if (p[1] == "conv_norm_out") return part + "norm_out." + tail(p, 2);
  if (p[1] == "conv_in" || p[1] == "conv_out") return key;
  if (p[1] == "mid_block") {
    if (p[2] == "resnets") return part + (p[3] == "0" ? "mid.block_1." : "mid.block_2.") + resnet(4);
    const std::string layer = p[4];
    const std::string rest = layer == "to_out" ? tail(p, 6) : tail(p, 5);
    conv = layer != "group_norm" && p.back() == "weight";
    const std::string name = layer == "group_norm" ? "norm" : layer == "to_out" ? "proj_out" : layer.substr(3);
    return part + "mid.attn_1." + name + "." + rest;
  }
  const int64_t block = std::stoll(p[2]);
  if (p[1] == "down_blocks") {
    if (p[3] == "downsamplers") return part + "down." + std::to_string(block) + ".downsample." + tail(p, 5);
    return part + "down." + std::to_string(block) + ".block." + p[4] + "." + resnet(5);
  }
  const std::string up = part + "up." + std::to_string(blocks - 1 - block) + ".";
  if (p[3] == "upsamplers") return up + "upsample." + tail(p, 5);
  return up + "block." + p[4] + "." + resnet(5);
}

// diffusers CLIPTextModel -> OpenCLIP (SD 2.x); q/k/v are fused in order into in_proj.
inline void add_open_clip(const TensorMap& text, int64_t layers, TensorMap& out) {
  const std::string p = "cond_stage_model.model.";
  for (const auto& [key, tensor] : text) {
    const auto k = parts(key);
    if (key == "embeddings.token_embedding.weight") {
      out[p + "token_embedding.weight"] = tensor;
    } else if (key == "embeddings.position_embedding.weight") {
      out[p + "positional_embedding"] = tensor;
    } else if (k[0] == "final_layer_norm") {
      out[p + "ln_final." + k[1]] = tensor;
    } else {
      const std::string block = p + "transformer.resblocks." + k[2] + ".";
      if (k[3] == "layer_norm1") out[block + "ln_1." + k[4]] = tensor;
      if (k[3] == "layer_norm2") out[block + "ln_2." + k[4]] = tensor;
      if (k[3] == "mlp") out[block + "mlp." + (k[4] == "fc1" ? "c_fc." : "c_proj.") + k[5]] = tensor;
      if (k[3] == "self_attn" && k[4] == "out_proj") out[block + "attn.out_proj." + k[5]] = tensor;
      if (k[3] == "self_attn" && k[4] == "q_proj") {
        const std::string self = "encoder.layers." + k[2] + ".self_attn.";
        out[block + "attn.in_proj_" + k[5]] =
            torch::cat({tensor, text.at(self + "k_proj." + k[5]), text.at(self + "v_proj." + k[5])}, 0);  // [3 D, ...]
      }
    }
  }
  // The last resblock, which SD 2 does not use, and OpenCLIP's projection: present in real checkpoints.
  torch::manual_seed(7);
  const std::string last = p + "transformer.resblocks." + std::to_string(layers) + ".";
  const std::string first = p + "transformer.resblocks.0.";
  for (const char* name : {"ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
                           "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",
                           "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"}) {
    out[last + name] = torch::randn_like(out.at(first + name));
  }
  const int64_t width = text.at("final_layer_norm.weight").size(0);
  out[p + "text_projection"] = torch::randn({width, width});
  out[p + "logit_scale"] = torch::tensor(4.6052f);
}

}  // namespace original_layout

// The tensors of `model_dir` (a diffusers folder) in the original layout; with `open_clip` the text encoder as
// SD 2.x's OpenCLIP, else as SD 1.x's CLIP. Training-only tensors (the schedule, EMA counters) are included, as in
// published checkpoints.
inline TensorMap original_layout_tensors(const std::filesystem::path& model_dir, bool open_clip) {
  using namespace original_layout;
  TensorMap out;
  const Json unet_config = read_json_file(model_dir / "unet" / "config.json");
  for (const auto& [key, t] : read_safetensors(model_dir / "unet" / "diffusion_pytorch_model.safetensors").tensors) {
    out["model.diffusion_model." + unet_key(key, unet_config)] = t;
  }
  const auto blocks =
      static_cast<int64_t>(read_json_file(model_dir / "vae" / "config.json").at("block_out_channels").size());
  for (const auto& [key, t] : read_safetensors(model_dir / "vae" / "diffusion_pytorch_model.safetensors").tensors) {
    bool conv = false;
    const std::string name = vae_key(key, blocks, conv);
    out["first_stage_model." + name] = conv ? t.reshape({t.size(0), t.size(1), 1, 1}) : t;  // [C, C] -> [C, C, 1, 1]
  }
  TensorMap text;
  for (const auto& [key, t] : read_safetensors(model_dir / "text_encoder" / "model.safetensors").tensors) {
    text[starts_with(key, "text_model.") ? key.substr(11) : key] = t;
  }
  if (open_clip) {
    const auto layers =
        read_json_file(model_dir / "text_encoder" / "config.json").at("num_hidden_layers").get<int64_t>();
    add_open_clip(text, layers, out);
  } else {
    for (const auto& [key, t] : text) out["cond_stage_model.transformer.text_model." + key] = t;
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] =
        torch::arange(77, torch::kInt64).unsqueeze(0);
  }
  out["betas"] = torch::linspace(0.00085, 0.012, 1000);
  out["alphas_cumprod"] = torch::cumprod(1 - out["betas"], 0);
  out["model_ema.decay"] = torch::tensor(0.9999f);
  out["model_ema.num_updates"] = torch::tensor(1000, torch::kInt32);
  return out;
}

inline void write_original_layout(const std::filesystem::path& model_dir, const std::filesystem::path& file,
                                  bool open_clip) {
  write_safetensors(file, original_layout_tensors(model_dir, open_clip));
}

}  // namespace fairdiff::test
