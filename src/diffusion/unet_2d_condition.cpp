#include "diffusion/unet_2d_condition.h"

#include <cmath>

#include "core/error.h"
#include "core/fs.h"
#include "core/name_conversion.h"
#include "core/state_dict.h"
#include "core/strings.h"
#include "diffusion/cuda/fused_ops.h"

namespace fairdiff {
namespace {

// Generous bounds: they only keep a malformed config from asking for absurd allocations.
constexpr int64_t kMaxChannels = 1 << 16;
constexpr int64_t kMaxBlocks = 8;

std::vector<int64_t> int_or_list(const Json& json, const std::string& key, size_t count, const std::string& where) {
  const Json& value = json.at(key);
  if (value.is_number_integer()) {
    return std::vector<int64_t>(count, json_value<int64_t>(value, where + ": key '" + key + "'"));
  }
  if (value.is_array()) {
    auto list = json_get<std::vector<int64_t>>(json, key, {}, where);
    if (list.size() != count) {
      throw InputError(where + ": '" + key + "' has " + std::to_string(list.size()) +
                       " entries, expected one per block (" + std::to_string(count) + ")");
    }
    return list;
  }
  throw InputError(where + ": '" + key + "' must be an integer or a list of integers");
}

}  // namespace

UNet2DConditionConfig UNet2DConditionConfig::from_json(const Json& json, const std::string& where) {
  UNet2DConditionConfig c;
  c.in_channels = json_get<int64_t>(json, "in_channels", c.in_channels, where);
  c.out_channels = json_get<int64_t>(json, "out_channels", c.out_channels, where);
  c.sample_size = json_get<int64_t>(json, "sample_size", c.sample_size, where);
  c.down_block_types = json_get<std::vector<std::string>>(json, "down_block_types", c.down_block_types, where);
  c.up_block_types = json_get<std::vector<std::string>>(json, "up_block_types", c.up_block_types, where);
  c.mid_block_type = json_get<std::string>(json, "mid_block_type", c.mid_block_type, where);
  c.block_out_channels = json_get<std::vector<int64_t>>(json, "block_out_channels", c.block_out_channels, where);
  c.layers_per_block = json_get<int64_t>(json, "layers_per_block", c.layers_per_block, where);
  c.downsample_padding = json_get<int64_t>(json, "downsample_padding", c.downsample_padding, where);
  c.norm_num_groups = json_get<int64_t>(json, "norm_num_groups", c.norm_num_groups, where);
  c.norm_eps = json_get<double>(json, "norm_eps", c.norm_eps, where);
  c.use_linear_projection = json_get<bool>(json, "use_linear_projection", c.use_linear_projection, where);
  c.upcast_attention = json_get<bool>(json, "upcast_attention", c.upcast_attention, where);
  c.flip_sin_to_cos = json_get<bool>(json, "flip_sin_to_cos", c.flip_sin_to_cos, where);
  c.freq_shift = json_get<double>(json, "freq_shift", c.freq_shift, where);
  const size_t blocks = c.block_out_channels.size();
  const ConfigCheck check(json, where);
  check.each_in_range("block_out_channels", c.block_out_channels, 1, kMaxChannels);
  if (blocks > kMaxBlocks) {
    check.fail("block_out_channels", "has " + std::to_string(blocks) + " entries",
               "at most " + std::to_string(kMaxBlocks) + " blocks");
  }
  check.same_length({{"block_out_channels", blocks},
                     {"down_block_types", c.down_block_types.size()},
                     {"up_block_types", c.up_block_types.size()}});
  check.in_range("in_channels", c.in_channels, 1, kMaxChannels);
  check.in_range("out_channels", c.out_channels, 1, kMaxChannels);
  check.in_range("sample_size", c.sample_size, 1, 1 << 16);
  check.in_range("layers_per_block", c.layers_per_block, 1, 64);
  check.in_range("downsample_padding", c.downsample_padding, 0, 1);
  check.in_range("norm_num_groups", c.norm_num_groups, 1, kMaxChannels);
  check.divides_each("norm_num_groups", c.norm_num_groups, "block_out_channels", c.block_out_channels);
  check.in_range("norm_eps", c.norm_eps, 0, 1, true, false);
  check.in_range("freq_shift", c.freq_shift, -1e6, 1e6, false, false);
  if (json.contains("cross_attention_dim") && json["cross_attention_dim"].is_array()) {
    throw InputError(where +
                     ": a per-block cross_attention_dim list is not supported (Stable Diffusion 1.x/2.x use one int)");
  }
  c.cross_attention_dim = json_get<int64_t>(json, "cross_attention_dim", c.cross_attention_dim, where);
  check.in_range("cross_attention_dim", c.cross_attention_dim, 1, kMaxChannels);
  if (json.contains("num_attention_heads") && !json["num_attention_heads"].is_null()) {
    c.num_attention_heads = int_or_list(json, "num_attention_heads", blocks, where);
  } else if (json.contains("attention_head_dim") && !json["attention_head_dim"].is_null()) {
    c.num_attention_heads = int_or_list(json, "attention_head_dim", blocks, where);
  } else {
    c.num_attention_heads = std::vector<int64_t>(blocks, 8);
  }
  for (const auto& t : c.down_block_types) {
    if (t != "CrossAttnDownBlock2D" && t != "DownBlock2D") {
      throw InputError(where + ": down block type '" + t +
                       "' is not supported (expected CrossAttnDownBlock2D or DownBlock2D)");
    }
  }
  for (const auto& t : c.up_block_types) {
    if (t != "CrossAttnUpBlock2D" && t != "UpBlock2D") {
      throw InputError(where + ": up block type '" + t +
                       "' is not supported (expected CrossAttnUpBlock2D or UpBlock2D)");
    }
  }
  if (c.mid_block_type != "UNetMidBlock2DCrossAttn") {
    throw InputError(where + ": mid_block_type '" + c.mid_block_type +
                     "' is not supported (expected UNetMidBlock2DCrossAttn)");
  }
  for (const char* key : {"class_embed_type", "addition_embed_type", "encoder_hid_dim", "time_cond_proj_dim"}) {
    if (json.contains(key) && !json[key].is_null()) {
      throw InputError(where + ": '" + std::string(key) +
                       "' is set; only Stable Diffusion 1.x/2.x UNets are supported");
    }
  }
  check.each_in_range(check.has("num_attention_heads") ? "num_attention_heads" : "attention_head_dim",
                      c.num_attention_heads, 1, kMaxChannels);
  for (size_t i = 0; i < blocks; ++i) {
    if (c.block_out_channels[i] % c.num_attention_heads[i] != 0) {
      throw InputError(where + ": block " + std::to_string(i) + " has " + std::to_string(c.block_out_channels[i]) +
                       " channels, not divisible by its " + std::to_string(c.num_attention_heads[i]) + " heads");
    }
  }
  return c;
}

Json UNet2DConditionConfig::to_json() const {
  return Json{{"_class_name", "UNet2DConditionModel"},
              {"_diffusers_version", "0.30.0"},
              {"act_fn", "silu"},
              {"attention_head_dim", num_attention_heads},
              {"block_out_channels", block_out_channels},
              {"center_input_sample", false},
              {"cross_attention_dim", cross_attention_dim},
              {"down_block_types", down_block_types},
              {"downsample_padding", downsample_padding},
              {"flip_sin_to_cos", flip_sin_to_cos},
              {"freq_shift", freq_shift},
              {"in_channels", in_channels},
              {"layers_per_block", layers_per_block},
              {"mid_block_scale_factor", 1},
              {"mid_block_type", mid_block_type},
              {"norm_eps", norm_eps},
              {"norm_num_groups", norm_num_groups},
              {"out_channels", out_channels},
              {"sample_size", sample_size},
              {"up_block_types", up_block_types},
              {"upcast_attention", upcast_attention},
              {"use_linear_projection", use_linear_projection}};
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim) {
  linear_1 = register_module("linear_1", torch::nn::Linear(in_channels, time_embed_dim));
  linear_2 = register_module("linear_2", torch::nn::Linear(time_embed_dim, time_embed_dim));
}

torch::Tensor TimestepEmbeddingImpl::forward(const torch::Tensor& x) {
  return linear_2(torch::silu(linear_1(x)));
}

torch::Tensor timestep_embedding(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift) {
  const int64_t half = dim / 2;
  auto options = torch::TensorOptions().dtype(torch::kFloat32).device(timesteps.device());
  torch::Tensor exponent =
      -std::log(10000.0) * torch::arange(0, half, options) / (static_cast<double>(half) - freq_shift);
  torch::Tensor angles = timesteps.to(torch::kFloat32).unsqueeze(1) * torch::exp(exponent).unsqueeze(0);  // [B, half]
  torch::Tensor emb = flip_sin_to_cos ? torch::cat({torch::cos(angles), torch::sin(angles)}, -1)
                                      : torch::cat({torch::sin(angles), torch::cos(angles)}, -1);
  if (dim % 2 == 1) emb = torch::nn::functional::pad(emb, torch::nn::functional::PadFuncOptions({0, 1}));
  return emb;
}

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const UNet2DConditionConfig& c) : config_(c) {
  const auto& boc = c.block_out_channels;
  const int64_t blocks = static_cast<int64_t>(boc.size());
  const int64_t time_embed_dim = boc[0] * 4;
  conv_in =
      register_module("conv_in", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.in_channels, boc[0], 3).padding(1)));
  time_embedding = register_module("time_embedding", TimestepEmbedding(boc[0], time_embed_dim));

  UNetBlockOptions base;
  base.temb_channels = time_embed_dim;
  base.cross_attention_dim = c.cross_attention_dim;
  base.norm_groups = c.norm_num_groups;
  base.norm_eps = c.norm_eps;
  base.use_linear_projection = c.use_linear_projection;
  base.upcast_attention = c.upcast_attention;
  base.downsample_padding = c.downsample_padding;

  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  int64_t output_channels = boc[0];
  for (int64_t i = 0; i < blocks; ++i) {
    UNetBlockOptions o = base;
    o.in_channels = output_channels;
    output_channels = boc[i];
    o.out_channels = output_channels;
    o.num_layers = c.layers_per_block;
    o.cross_attention = c.down_block_types[i] == "CrossAttnDownBlock2D";
    o.heads = c.num_attention_heads[i];
    o.add_sampler = i != blocks - 1;
    down_blocks->push_back(UNetDownBlock(o));
  }

  UNetBlockOptions mid = base;
  mid.in_channels = boc.back();
  mid.out_channels = boc.back();
  mid.num_layers = 1;
  mid.heads = c.num_attention_heads.back();
  mid_block = register_module("mid_block", UNetMidBlock2DCrossAttn(mid));

  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  std::vector<int64_t> reversed_channels(boc.rbegin(), boc.rend());
  std::vector<int64_t> reversed_heads(c.num_attention_heads.rbegin(), c.num_attention_heads.rend());
  output_channels = reversed_channels[0];
  for (int64_t i = 0; i < blocks; ++i) {
    UNetBlockOptions o = base;
    o.prev_output_channels = output_channels;
    output_channels = reversed_channels[i];
    o.out_channels = output_channels;
    o.in_channels = reversed_channels[std::min(i + 1, blocks - 1)];
    o.num_layers = c.layers_per_block + 1;
    o.cross_attention = c.up_block_types[i] == "CrossAttnUpBlock2D";
    o.heads = reversed_heads[i];
    o.add_sampler = i != blocks - 1;
    up_blocks->push_back(UNetUpBlock(o));
  }

  conv_norm_out = register_module(
      "conv_norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(c.norm_num_groups, boc[0]).eps(c.norm_eps)));
  conv_out =
      register_module("conv_out", torch::nn::Conv2d(torch::nn::Conv2dOptions(boc[0], c.out_channels, 3).padding(1)));
}

torch::Tensor UNet2DConditionModelImpl::forward(const torch::Tensor& sample, const torch::Tensor& timesteps,
                                                const torch::Tensor& context) {
  const int64_t b = sample.size(0);
  torch::Tensor t = timesteps.dim() == 0 ? timesteps.reshape({1}) : timesteps;
  t = t.to(sample.device()).expand({b});
  torch::Tensor temb =
      timestep_embedding(t, config_.block_out_channels[0], config_.flip_sin_to_cos, config_.freq_shift);
  temb = time_embedding(temb.to(sample.scalar_type()));  // [B, T]

  // Sizes not divisible by 2^(number of upsamplers) need explicit upsample sizes from the skips.
  const int64_t factor = int64_t{1} << (config_.block_out_channels.size() - 1);
  const bool explicit_upsample_size = sample.size(2) % factor != 0 || sample.size(3) % factor != 0;

  torch::Tensor x = conv_in(sample);
  std::vector<torch::Tensor> skips{x};
  for (const auto& block : *down_blocks) x = block->as<UNetDownBlock>()->forward(x, temb, context, skips);
  x = mid_block(x, temb, context);
  for (size_t i = 0; i < up_blocks->size(); ++i) {
    auto* up = up_blocks[i]->as<UNetUpBlock>();
    std::optional<std::vector<int64_t>> upsample_size;
    const bool is_final = i + 1 == up_blocks->size();
    if (!is_final && explicit_upsample_size) {
      const torch::Tensor& next_skip = skips[skips.size() - static_cast<size_t>(up->num_layers()) - 1];
      upsample_size = std::vector<int64_t>{next_skip.size(2), next_skip.size(3)};
    }
    x = up->forward(x, skips, temb, context, upsample_size);
  }
  return conv_out(is_training() ? torch::silu(conv_norm_out(x)) : group_norm_act(x, *conv_norm_out, /*silu=*/true));
}

UNet2DConditionModel load_unet(const std::filesystem::path& dir, torch::Dtype dtype) {
  require_directory(dir, "unet folder");
  require_file(dir / "config.json", "unet config");
  auto config = UNet2DConditionConfig::from_json(read_json_file(dir / "config.json"), (dir / "config.json").string());
  UNet2DConditionModel model(config);
  std::filesystem::path weights = find_component_weights(dir, "diffusion_pytorch_model");
  load_state_dict_strict(*model, read_safetensors(weights).tensors, weights.string());
  model->to(dtype);
  model->eval();
  return model;
}

}  // namespace fairdiff
