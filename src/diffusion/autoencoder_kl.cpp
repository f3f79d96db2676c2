#include "diffusion/autoencoder_kl.h"

#include "core/error.h"
#include "core/fs.h"
#include "core/name_conversion.h"
#include "core/state_dict.h"
#include "diffusion/cuda/fused_ops.h"

namespace fairdiff {
namespace {

constexpr double kVaeEps = 1e-6;

ResnetBlock2D vae_resnet(int64_t in, int64_t out, int64_t groups) {
  ResnetOptions r;
  r.in_channels = in;
  r.out_channels = out;
  r.groups = groups;
  r.eps = kVaeEps;
  return ResnetBlock2D(r);
}

torch::nn::Conv2d conv3x3(int64_t in, int64_t out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1));
}

}  // namespace

AutoencoderKLConfig AutoencoderKLConfig::from_json(const Json& json, const std::string& where) {
  AutoencoderKLConfig c;
  c.in_channels = json_get<int64_t>(json, "in_channels", c.in_channels, where);
  c.out_channels = json_get<int64_t>(json, "out_channels", c.out_channels, where);
  c.latent_channels = json_get<int64_t>(json, "latent_channels", c.latent_channels, where);
  c.block_out_channels = json_get<std::vector<int64_t>>(json, "block_out_channels", c.block_out_channels, where);
  c.layers_per_block = json_get<int64_t>(json, "layers_per_block", c.layers_per_block, where);
  c.norm_num_groups = json_get<int64_t>(json, "norm_num_groups", c.norm_num_groups, where);
  c.sample_size = json_get<int64_t>(json, "sample_size", c.sample_size, where);
  c.scaling_factor = json_get<double>(json, "scaling_factor", c.scaling_factor, where);
  c.force_upcast = json_get<bool>(json, "force_upcast", c.force_upcast, where);
  c.use_quant_conv = json_get<bool>(json, "use_quant_conv", c.use_quant_conv, where);
  c.use_post_quant_conv = json_get<bool>(json, "use_post_quant_conv", c.use_post_quant_conv, where);
  c.mid_block_add_attention = json_get<bool>(json, "mid_block_add_attention", c.mid_block_add_attention, where);
  for (const char* key : {"down_block_types", "up_block_types"}) {
    for (const auto& t : json_get<std::vector<std::string>>(json, key, {}, where)) {
      if (t != "DownEncoderBlock2D" && t != "UpDecoderBlock2D") {
        throw InputError(where + ": block type '" + t +
                         "' is not supported (expected DownEncoderBlock2D/UpDecoderBlock2D)");
      }
    }
  }
  const ConfigCheck check(json, where);
  check.each_in_range("block_out_channels", c.block_out_channels, 1, 1 << 16);
  if (c.block_out_channels.size() > 8) {
    check.fail("block_out_channels", "has " + std::to_string(c.block_out_channels.size()) + " entries",
               "at most 8 blocks");
  }
  for (const char* key : {"down_block_types", "up_block_types"}) {
    if (check.has(key))
      check.same_length({{"block_out_channels", c.block_out_channels.size()}, {key, json[key].size()}});
  }
  check.in_range("in_channels", c.in_channels, 1, 1 << 16);
  check.in_range("out_channels", c.out_channels, 1, 1 << 16);
  check.in_range("latent_channels", c.latent_channels, 1, 1 << 16);
  check.in_range("layers_per_block", c.layers_per_block, 1, 64);
  check.in_range("sample_size", c.sample_size, 1, 1 << 16);
  check.in_range("norm_num_groups", c.norm_num_groups, 1, 1 << 16);
  check.divides_each("norm_num_groups", c.norm_num_groups, "block_out_channels", c.block_out_channels);
  check.in_range("scaling_factor", c.scaling_factor, 0, 1e6, true, false);
  return c;
}

Json AutoencoderKLConfig::to_json() const {
  return Json{{"_class_name", "AutoencoderKL"},
              {"_diffusers_version", "0.30.0"},
              {"act_fn", "silu"},
              {"block_out_channels", block_out_channels},
              {"down_block_types", std::vector<std::string>(block_out_channels.size(), "DownEncoderBlock2D")},
              {"up_block_types", std::vector<std::string>(block_out_channels.size(), "UpDecoderBlock2D")},
              {"force_upcast", force_upcast},
              {"in_channels", in_channels},
              {"latent_channels", latent_channels},
              {"layers_per_block", layers_per_block},
              {"norm_num_groups", norm_num_groups},
              {"out_channels", out_channels},
              {"sample_size", sample_size},
              {"scaling_factor", scaling_factor},
              {"use_quant_conv", use_quant_conv},
              {"use_post_quant_conv", use_post_quant_conv},
              {"mid_block_add_attention", mid_block_add_attention}};
}

VaeMidBlockImpl::VaeMidBlockImpl(int64_t channels, int64_t groups, bool add_attention) {
  resnets = register_module("resnets", torch::nn::ModuleList(vae_resnet(channels, channels, groups)));
  if (add_attention) {
    AttentionOptions a;
    a.query_dim = channels;
    a.heads = 1;
    a.dim_head = channels;
    a.qkv_bias = true;
    a.upcast = true;
    a.group_norm_groups = groups;
    a.group_norm_eps = kVaeEps;
    attentions = register_module("attentions", torch::nn::ModuleList(Attention(a)));
  }
  resnets->push_back(vae_resnet(channels, channels, groups));
}

torch::Tensor VaeMidBlockImpl::forward(torch::Tensor x) {
  x = resnets[0]->as<ResnetBlock2D>()->forward(x);
  if (attentions) x = attentions[0]->as<Attention>()->forward_spatial(x);
  return resnets[1]->as<ResnetBlock2D>()->forward(x);
}

VaeBlockImpl::VaeBlockImpl(int64_t in_channels, int64_t out_channels, int64_t num_layers, int64_t groups, bool down,
                           bool add_sampler) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i)
    resnets->push_back(vae_resnet(i == 0 ? in_channels : out_channels, out_channels, groups));
  if (add_sampler && down)
    downsamplers = register_module("downsamplers", torch::nn::ModuleList(Downsample2D(out_channels, 0)));
  if (add_sampler && !down) upsamplers = register_module("upsamplers", torch::nn::ModuleList(Upsample2D(out_channels)));
}

torch::Tensor VaeBlockImpl::forward(torch::Tensor x) {
  for (const auto& resnet : *resnets) x = resnet->as<ResnetBlock2D>()->forward(x);
  if (downsamplers) x = downsamplers[0]->as<Downsample2D>()->forward(x);
  if (upsamplers) x = upsamplers[0]->as<Upsample2D>()->forward(x);
  return x;
}

VaeEncoderImpl::VaeEncoderImpl(const AutoencoderKLConfig& c) {
  const auto& boc = c.block_out_channels;
  conv_in = register_module("conv_in", conv3x3(c.in_channels, boc[0]));
  down_blocks = register_module("down_blocks", torch::nn::ModuleList());
  int64_t out = boc[0];
  for (size_t i = 0; i < boc.size(); ++i) {
    int64_t in = out;
    out = boc[i];
    down_blocks->push_back(VaeBlock(in, out, c.layers_per_block, c.norm_num_groups, true, i + 1 != boc.size()));
  }
  mid_block = register_module("mid_block", VaeMidBlock(boc.back(), c.norm_num_groups, c.mid_block_add_attention));
  conv_norm_out = register_module(
      "conv_norm_out", torch::nn::GroupNorm(torch::nn::GroupNormOptions(c.norm_num_groups, boc.back()).eps(kVaeEps)));
  conv_out = register_module("conv_out", conv3x3(boc.back(), 2 * c.latent_channels));
}

torch::Tensor VaeEncoderImpl::forward(const torch::Tensor& image) {
  torch::Tensor x = conv_in(image);
  for (const auto& block : *down_blocks) x = block->as<VaeBlock>()->forward(x);
  x = mid_block(x);
  return conv_out(is_training() ? torch::silu(conv_norm_out(x)) : group_norm_act(x, *conv_norm_out, /*silu=*/true));
}

VaeDecoderImpl::VaeDecoderImpl(const AutoencoderKLConfig& c) {
  std::vector<int64_t> reversed(c.block_out_channels.rbegin(), c.block_out_channels.rend());
  conv_in = register_module("conv_in", conv3x3(c.latent_channels, reversed[0]));
  mid_block = register_module("mid_block", VaeMidBlock(reversed[0], c.norm_num_groups, c.mid_block_add_attention));
  up_blocks = register_module("up_blocks", torch::nn::ModuleList());
  int64_t out = reversed[0];
  for (size_t i = 0; i < reversed.size(); ++i) {
    int64_t in = out;
    out = reversed[i];
    up_blocks->push_back(VaeBlock(in, out, c.layers_per_block + 1, c.norm_num_groups, false, i + 1 != reversed.size()));
  }
  conv_norm_out = register_module(
      "conv_norm_out",
      torch::nn::GroupNorm(torch::nn::GroupNormOptions(c.norm_num_groups, c.block_out_channels[0]).eps(kVaeEps)));
  conv_out = register_module("conv_out", conv3x3(c.block_out_channels[0], c.out_channels));
}

torch::Tensor VaeDecoderImpl::forward(const torch::Tensor& z) {
  torch::Tensor x = conv_in(z);
  x = mid_block(x);
  for (const auto& block : *up_blocks) x = block->as<VaeBlock>()->forward(x);
  return conv_out(is_training() ? torch::silu(conv_norm_out(x)) : group_norm_act(x, *conv_norm_out, /*silu=*/true));
}

AutoencoderKLImpl::AutoencoderKLImpl(const AutoencoderKLConfig& c) : config_(c) {
  encoder = register_module("encoder", VaeEncoder(c));
  decoder = register_module("decoder", VaeDecoder(c));
  if (c.use_quant_conv) {
    quant_conv = register_module(
        "quant_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(2 * c.latent_channels, 2 * c.latent_channels, 1)));
  }
  if (c.use_post_quant_conv) {
    post_quant_conv = register_module(
        "post_quant_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.latent_channels, c.latent_channels, 1)));
  }
}

LatentDistribution AutoencoderKLImpl::encode(const torch::Tensor& image) {
  torch::Tensor moments = encoder(image);
  if (quant_conv) moments = quant_conv(moments);
  auto parts = moments.chunk(2, 1);  // [B, 2 Cl, h, w] -> mean, log-variance
  torch::Tensor logvar = parts[1].clamp(-30.0, 20.0);
  return {parts[0], torch::exp(0.5 * logvar)};
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& latents) {
  torch::Tensor z = post_quant_conv ? post_quant_conv(latents) : latents;
  return decoder(z);
}

AutoencoderKL load_vae(const std::filesystem::path& dir, torch::Dtype dtype) {
  require_directory(dir, "vae folder");
  require_file(dir / "config.json", "vae config");
  auto config = AutoencoderKLConfig::from_json(read_json_file(dir / "config.json"), (dir / "config.json").string());
  AutoencoderKL model(config);
  std::filesystem::path weights = find_component_weights(dir, "diffusion_pytorch_model");
  load_state_dict_strict(*model, convert_vae_keys(read_safetensors(weights).tensors), weights.string());
  model->to(dtype);
  model->eval();
  return model;
}

}  // namespace fairdiff
