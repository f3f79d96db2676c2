#include "diffusion/single_file_keys.h"

#include <optional>

#include "core/strings.h"

namespace fairdiff {
namespace {

// Reads "<head><N>." off the front of `rest`: ("input_blocks.", "input_blocks.4.0.in_layers.0.weight") -> 4 and
// rest = "0.in_layers.0.weight".
bool take_index(std::string& rest, const std::string& head, int64_t& index) {
  if (!starts_with(rest, head)) return false;
  size_t at = head.size(), end = at;
  while (end < rest.size() && rest[end] >= '0' && rest[end] <= '9') ++end;
  if (end == at || end >= rest.size() || rest[end] != '.' || end - at > 6) return false;
  index = std::stoll(rest.substr(at, end - at));
  rest = rest.substr(end + 1);
  return true;
}

// Renames the first matching prefix of `rest`; nullopt when none matches.
std::optional<std::string> rename_prefix(const std::string& rest,
                                         const std::vector<std::pair<std::string, std::string>>& renames) {
  for (const auto& [from, to] : renames) {
    if (starts_with(rest, from)) return to + rest.substr(from.size());
  }
  return std::nullopt;
}

// The UNet's ResBlock names its layers by position in nn.Sequential.
std::optional<std::string> unet_resnet(const std::string& rest) {
  return rename_prefix(rest, {{"in_layers.0.", "norm1."},
                              {"in_layers.2.", "conv1."},
                              {"emb_layers.1.", "time_emb_proj."},
                              {"out_layers.0.", "norm2."},
                              {"out_layers.3.", "conv2."},
                              {"skip_connection.", "conv_shortcut."}});
}

std::optional<std::string> vae_resnet(const std::string& rest) {
  return rename_prefix(rest, {{"norm1.", "norm1."},
                              {"conv1.", "conv1."},
                              {"norm2.", "norm2."},
                              {"conv2.", "conv2."},
                              {"nin_shortcut.", "conv_shortcut."}});
}

bool has_attention(const std::string& block_type) {
  return block_type.find("CrossAttn") != std::string::npos;
}

std::string with(const std::string& head, const std::optional<std::string>& tail) {
  return head + *tail;
}

// The diffusers name of a UNet key (prefix removed), or nullopt.
std::optional<std::string> unet_name(std::string rest, const UNet2DConditionConfig& config) {
  const int64_t layers = config.layers_per_block;
  const auto blocks = static_cast<int64_t>(config.block_out_channels.size());
  if (auto top = rename_prefix(rest, {{"time_embed.0.", "time_embedding.linear_1."},
                                      {"time_embed.2.", "time_embedding.linear_2."},
                                      {"out.0.", "conv_norm_out."},
                                      {"out.2.", "conv_out."}})) {
    return top;
  }
  int64_t i = 0, j = 0;
  if (take_index(rest, "input_blocks.", i) && take_index(rest, "", j)) {
    if (i == 0) return j == 0 ? std::optional<std::string>("conv_in." + rest) : std::nullopt;
    const int64_t block = (i - 1) / (layers + 1), layer = (i - 1) % (layers + 1);
    if (block >= blocks) return std::nullopt;
    const std::string head = "down_blocks." + std::to_string(block) + ".";
    if (layer < layers && j == 0 && unet_resnet(rest))
      return with(head + "resnets." + std::to_string(layer) + ".", unet_resnet(rest));
    if (layer < layers && j == 1 && has_attention(config.down_block_types[block])) {
      return head + "attentions." + std::to_string(layer) + "." + rest;
    }
    if (layer == layers && block + 1 < blocks && j == 0 && starts_with(rest, "op.")) {
      return head + "downsamplers.0.conv." + rest.substr(3);
    }
    return std::nullopt;
  }
  if (take_index(rest, "middle_block.", j)) {
    if ((j == 0 || j == 2) && unet_resnet(rest))
      return with("mid_block.resnets." + std::to_string(j / 2) + ".", unet_resnet(rest));
    if (j == 1) return "mid_block.attentions.0." + rest;
    return std::nullopt;
  }
  if (take_index(rest, "output_blocks.", i) && take_index(rest, "", j)) {
    const int64_t block = i / (layers + 1), layer = i % (layers + 1);
    if (block >= blocks) return std::nullopt;
    const std::string head = "up_blocks." + std::to_string(block) + ".";
    const bool attention = has_attention(config.up_block_types[block]);
    if (j == 0 && unet_resnet(rest)) return with(head + "resnets." + std::to_string(layer) + ".", unet_resnet(rest));
    if (j == 1 && attention) return head + "attentions." + std::to_string(layer) + "." + rest;
    // The upsampler follows the last layer's resnet (and transformer, when the block has one).
    if (j == (attention ? 2 : 1) && layer == layers && block + 1 < blocks && starts_with(rest, "conv.")) {
      return head + "upsamplers.0." + rest;
    }
  }
  return std::nullopt;
}

// The diffusers name of a VAE key (prefix removed), or nullopt; `squeeze` is set for the mid-block attention's
// 1x1 convolution weights, which diffusers stores as linear weights.
std::optional<std::string> vae_name(std::string rest, const AutoencoderKLConfig& config, bool& squeeze) {
  squeeze = false;
  const auto blocks = static_cast<int64_t>(config.block_out_channels.size());
  if (auto same = rename_prefix(rest, {{"quant_conv.", "quant_conv."}, {"post_quant_conv.", "post_quant_conv."}})) {
    return same;
  }
  std::string part;
  if (starts_with(rest, "encoder.")) part = "encoder";
  if (starts_with(rest, "decoder.")) part = "decoder";
  if (part.empty()) return std::nullopt;
  rest = rest.substr(part.size() + 1);
  const std::string head = part + ".";
  if (auto top = rename_prefix(
          rest, {{"conv_in.", "conv_in."}, {"conv_out.", "conv_out."}, {"norm_out.", "conv_norm_out."}})) {
    return head + *top;
  }
  if (starts_with(rest, "mid.block_1.") && vae_resnet(rest.substr(12)))
    return with(head + "mid_block.resnets.0.", vae_resnet(rest.substr(12)));
  if (starts_with(rest, "mid.block_2.") && vae_resnet(rest.substr(12)))
    return with(head + "mid_block.resnets.1.", vae_resnet(rest.substr(12)));
  if (starts_with(rest, "mid.attn_1.")) {
    auto name = rename_prefix(
        rest.substr(11),
        {{"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."}});
    if (!name) return std::nullopt;
    squeeze = !starts_with(*name, "group_norm.");
    return head + "mid_block.attentions.0." + *name;
  }
  int64_t block = 0, layer = 0;
  const bool encoder = part == "encoder";
  if (!take_index(rest, encoder ? "down." : "up.", block) || block >= blocks) return std::nullopt;
  // The decoder's up.0 is the block nearest the image: diffusers' last up block.
  const std::string target =
      head + (encoder ? "down_blocks." + std::to_string(block) : "up_blocks." + std::to_string(blocks - 1 - block)) +
      ".";
  if (take_index(rest, "block.", layer) && vae_resnet(rest))
    return with(target + "resnets." + std::to_string(layer) + ".", vae_resnet(rest));
  const std::string sampler = encoder ? "downsample.conv." : "upsample.conv.";
  if (starts_with(rest, sampler)) {
    return target + (encoder ? "downsamplers" : "upsamplers") + ".0.conv." + rest.substr(sampler.size());
  }
  return std::nullopt;
}

void place(ConvertedComponent& out, const std::string& name, const torch::Tensor& tensor, const std::string& key) {
  out.weights[name] = tensor;
  out.source[name] = key;
}

}  // namespace

ConvertedComponent convert_ldm_unet(const TensorMap& checkpoint, const UNet2DConditionConfig& config) {
  ConvertedComponent out;
  const std::string prefix = kLdmUnetPrefix;
  for (const auto& [key, tensor] : checkpoint) {
    if (!starts_with(key, prefix)) continue;
    auto name = unet_name(key.substr(prefix.size()), config);
    if (name) {
      place(out, *name, tensor, key);
    } else {
      out.unplaced.push_back(key);
    }
  }
  return out;
}

ConvertedComponent convert_ldm_vae(const TensorMap& checkpoint, const AutoencoderKLConfig& config) {
  ConvertedComponent out;
  const std::string prefix = kLdmVaePrefix;
  for (const auto& [key, tensor] : checkpoint) {
    if (!starts_with(key, prefix)) continue;
    bool squeeze = false;
    auto name = vae_name(key.substr(prefix.size()), config, squeeze);
    if (!name) {
      out.unplaced.push_back(key);
      continue;
    }
    // [C, C, 1, 1] -> [C, C]
    const bool conv_1x1 = tensor.dim() == 4 && tensor.size(2) == 1 && tensor.size(3) == 1;
    place(out, *name, squeeze && conv_1x1 ? tensor.flatten(1) : tensor, key);
  }
  return out;
}

ConvertedComponent convert_ldm_clip_text(const TensorMap& checkpoint) {
  ConvertedComponent out;
  const std::string prefix = kLdmClipPrefix;
  for (const auto& [key, tensor] : checkpoint) {
    if (!starts_with(key, prefix)) continue;
    std::string name = key.substr(prefix.size());
    // transformers 4.x saves "text_model.*"; checkpoints from older versions have the names without it.
    if (starts_with(name, "text_model.")) name = name.substr(11);
    if (name == "embeddings.position_ids") continue;  // a constant arange buffer
    place(out, name, tensor, key);
  }
  return out;
}

ConvertedComponent convert_ldm_open_clip_text(const TensorMap& checkpoint, const ClipTextConfig& config) {
  ConvertedComponent out;
  const std::string prefix = kLdmOpenClipPrefix;
  const int64_t layers = config.num_hidden_layers;
  for (const auto& [key, tensor] : checkpoint) {
    if (!starts_with(key, prefix)) continue;
    std::string rest = key.substr(prefix.size());
    if (rest == "text_projection" || rest == "logit_scale" || rest == "attn_mask") continue;  // not CLIPTextModel's
    if (rest == "token_embedding.weight") {
      place(out, "embeddings.token_embedding.weight", tensor, key);
      continue;
    }
    if (rest == "positional_embedding") {
      place(out, "embeddings.position_embedding.weight", tensor, key);
      continue;
    }
    if (starts_with(rest, "ln_final.")) {
      place(out, "final_layer_norm." + rest.substr(9), tensor, key);
      continue;
    }
    int64_t layer = 0;
    if (!take_index(rest, "transformer.resblocks.", layer) || layer > layers) {
      out.unplaced.push_back(key);
      continue;
    }
    if (layer == layers) continue;  // the unused last layer (SD 2 takes the penultimate layer's output)
    const std::string head = "encoder.layers." + std::to_string(layer) + ".";
    if (rest == "attn.in_proj_weight" || rest == "attn.in_proj_bias") {
      const std::string suffix = rest == "attn.in_proj_weight" ? "weight" : "bias";
      if (tensor.dim() < 1 || tensor.size(0) % 3 != 0) {
        out.unplaced.push_back(key);
        continue;
      }
      auto qkv = tensor.chunk(3, 0);  // [3 D, ...] -> 3 x [D, ...], stacked q, k, v
      place(out, head + "self_attn.q_proj." + suffix, qkv[0], key);
      place(out, head + "self_attn.k_proj." + suffix, qkv[1], key);
      place(out, head + "self_attn.v_proj." + suffix, qkv[2], key);
      continue;
    }
    auto name = rename_prefix(rest, {{"ln_1.", "layer_norm1."},
                                     {"ln_2.", "layer_norm2."},
                                     {"attn.out_proj.", "self_attn.out_proj."},
                                     {"mlp.c_fc.", "mlp.fc1."},
                                     {"mlp.c_proj.", "mlp.fc2."}});
    if (name) {
      place(out, head + *name, tensor, key);
    } else {
      out.unplaced.push_back(key);
    }
  }
  return out;
}

bool is_ldm_training_key(const std::string& key) {
  static const char* const schedule[] = {"betas",
                                         "alphas_cumprod",
                                         "alphas_cumprod_prev",
                                         "sqrt_alphas_cumprod",
                                         "sqrt_one_minus_alphas_cumprod",
                                         "log_one_minus_alphas_cumprod",
                                         "sqrt_recip_alphas_cumprod",
                                         "sqrt_recipm1_alphas_cumprod",
                                         "posterior_variance",
                                         "posterior_log_variance_clipped",
                                         "posterior_mean_coef1",
                                         "posterior_mean_coef2",
                                         "logvar",
                                         "lvlb_weights"};
  for (const char* name : schedule) {
    if (key == name) return true;
  }
  return starts_with(key, "model_ema.");
}

}  // namespace fairdiff
