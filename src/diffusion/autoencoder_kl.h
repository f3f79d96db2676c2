// AutoencoderKL (diffusers models/autoencoders/autoencoder_kl.py + vae.py): the Stable Diffusion VAE.
// encode: image [B, 3, H, W] in [-1, 1] -> latent distribution (mean, std) [B, Cl, H/f, W/f];
// decode: latents (already divided by scaling_factor) -> image in [-1, 1] (not clamped).
// f = 2^(number of blocks - 1): 8 for the real SD VAEs (4 blocks).
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/json.h"
#include "diffusion/attention_blocks.h"
#include "diffusion/resnet.h"

namespace fairdiff {

struct AutoencoderKLConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};
  int64_t layers_per_block = 2;
  int64_t norm_num_groups = 32;
  int64_t sample_size = 512;
  double scaling_factor = 0.18215;
  bool force_upcast = true;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  int64_t latent_scale_factor() const { return int64_t{1} << (block_out_channels.size() - 1); }
  static AutoencoderKLConfig from_json(const Json& json, const std::string& where);
  Json to_json() const;
};

// UNetMidBlock2D without time embedding: resnet, (spatial attention, resnet).
class VaeMidBlockImpl : public torch::nn::Module {
 public:
  VaeMidBlockImpl(int64_t channels, int64_t groups, bool add_attention);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr};
};
TORCH_MODULE(VaeMidBlock);

// DownEncoderBlock2D / UpDecoderBlock2D: resnets, then an optional down- or upsampler.
class VaeBlockImpl : public torch::nn::Module {
 public:
  VaeBlockImpl(int64_t in_channels, int64_t out_channels, int64_t num_layers, int64_t groups, bool down,
               bool add_sampler);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::ModuleList resnets{nullptr}, downsamplers{nullptr}, upsamplers{nullptr};
};
TORCH_MODULE(VaeBlock);

class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const AutoencoderKLConfig& config);
  torch::Tensor forward(const torch::Tensor& x);  // [B, 3, H, W] -> [B, 2 Cl, H/f, W/f]
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  VaeMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const AutoencoderKLConfig& config);
  torch::Tensor forward(const torch::Tensor& z);  // [B, Cl, h, w] -> [B, 3, h f, w f]
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  VaeMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VaeDecoder);

struct LatentDistribution {
  torch::Tensor mean;
  torch::Tensor std;
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const AutoencoderKLConfig& config);
  LatentDistribution encode(const torch::Tensor& image);
  torch::Tensor decode(const torch::Tensor& latents);
  const AutoencoderKLConfig& config() const { return config_; }

  VaeEncoder encoder{nullptr};
  VaeDecoder decoder{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};

 private:
  AutoencoderKLConfig config_;
};
TORCH_MODULE(AutoencoderKL);

AutoencoderKL load_vae(const std::filesystem::path& dir, torch::Dtype dtype);

}  // namespace fairdiff
