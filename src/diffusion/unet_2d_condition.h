// UNet2DConditionModel (diffusers models/unets/unet_2d_condition.py) for Stable Diffusion 1.x/2.x:
// sinusoidal time embedding -> conv_in -> down blocks -> mid block -> up blocks (with skips) -> conv_out.
//
// Shape legend: B batch, Cl latent channels (4), H/W latent size, L text tokens, E cross_attention_dim.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/json.h"
#include "diffusion/unet_2d_blocks.h"

namespace fairdiff {

struct UNet2DConditionConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t sample_size = 64;
  std::vector<std::string> down_block_types{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                            "DownBlock2D"};
  std::vector<std::string> up_block_types{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                          "CrossAttnUpBlock2D"};
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";
  std::vector<int64_t> block_out_channels{320, 640, 1280, 1280};
  int64_t layers_per_block = 2;
  int64_t downsample_padding = 1;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  int64_t cross_attention_dim = 768;
  // Heads per block. diffusers names this `attention_head_dim` (a historical misnomer) unless the config
  // gives `num_attention_heads`; an int applies to every block.
  std::vector<int64_t> num_attention_heads{8, 8, 8, 8};
  bool use_linear_projection = false;
  bool upcast_attention = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;

  static UNet2DConditionConfig from_json(const Json& json, const std::string& where);
  Json to_json() const;
};

class TimestepEmbeddingImpl : public torch::nn::Module {
 public:
  TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

// Sinusoidal embedding of (possibly fractional) timesteps [B] -> [B, dim] in float32.
torch::Tensor timestep_embedding(const torch::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift);

class UNet2DConditionModelImpl : public torch::nn::Module {
 public:
  explicit UNet2DConditionModelImpl(const UNet2DConditionConfig& config);
  // sample [B, Cl, H, W], timesteps [B] or [1] (int or float), context [B, L, E] -> noise prediction [B, Cl, H, W]
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timesteps, const torch::Tensor& context);
  const UNet2DConditionConfig& config() const { return config_; }

  TimestepEmbedding time_embedding{nullptr};
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr}, up_blocks{nullptr};
  UNetMidBlock2DCrossAttn mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};

 private:
  UNet2DConditionConfig config_;
};
TORCH_MODULE(UNet2DConditionModel);

UNet2DConditionModel load_unet(const std::filesystem::path& dir, torch::Dtype dtype);

}  // namespace fairdiff
