// The UNet's down, mid and up blocks (diffusers models/unets/unet_2d_blocks.py): CrossAttnDownBlock2D and
// DownBlock2D, UNetMidBlock2DCrossAttn, CrossAttnUpBlock2D and UpBlock2D. The plain and cross-attention
// variants share one class; `attentions` exists only in the cross-attention one, as in the checkpoints.
//
// Shape legend: B batch, C channels, H/W latent size, T time-embedding channels, L text tokens, E text channels.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <vector>

#include "diffusion/attention_blocks.h"
#include "diffusion/resnet.h"

namespace fairdiff {

struct UNetBlockOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t prev_output_channels = 0;  // up blocks: channels coming from the block below
  int64_t temb_channels = 0;
  int64_t num_layers = 2;
  bool cross_attention = false;
  int64_t heads = 8;
  int64_t cross_attention_dim = 768;
  int64_t norm_groups = 32;
  double norm_eps = 1e-5;
  bool use_linear_projection = false;
  bool upcast_attention = false;
  bool add_sampler = true;  // downsampler (down blocks) or upsampler (up blocks)
  int64_t downsample_padding = 1;
};

class UNetDownBlockImpl : public torch::nn::Module {
 public:
  explicit UNetDownBlockImpl(const UNetBlockOptions& options);
  // x [B, Cin, H, W] -> ([B, Cout, H', W'], the skip states it leaves for the up path)
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                        std::vector<torch::Tensor>& skips);

  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, downsamplers{nullptr};
};
TORCH_MODULE(UNetDownBlock);

class UNetMidBlock2DCrossAttnImpl : public torch::nn::Module {
 public:
  explicit UNetMidBlock2DCrossAttnImpl(const UNetBlockOptions& options);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context);

  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr};
};
TORCH_MODULE(UNetMidBlock2DCrossAttn);

class UNetUpBlockImpl : public torch::nn::Module {
 public:
  explicit UNetUpBlockImpl(const UNetBlockOptions& options);
  // Consumes num_layers skip states from the back of `skips`.
  torch::Tensor forward(torch::Tensor x, std::vector<torch::Tensor>& skips, const torch::Tensor& temb,
                        const torch::Tensor& context, const std::optional<std::vector<int64_t>>& upsample_size);
  int64_t num_layers() const { return static_cast<int64_t>(resnets->size()); }

  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, upsamplers{nullptr};
};
TORCH_MODULE(UNetUpBlock);

}  // namespace fairdiff
