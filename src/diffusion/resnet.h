// ResnetBlock2D, Downsample2D and Upsample2D (diffusers models/resnet.py, models/downsampling.py,
// models/upsampling.py), shared by the UNet and the VAE.
//
// Shape legend: B batch, C channels, H/W spatial size, T time-embedding channels.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <vector>

namespace fairdiff {

struct ResnetOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t temb_channels = 0;  // 0: no time embedding (VAE)
  int64_t groups = 32;
  double eps = 1e-5;
  double output_scale_factor = 1.0;
};

class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  explicit ResnetBlock2DImpl(const ResnetOptions& options);
  // x [B, Cin, H, W], temb [B, T] or undefined -> [B, Cout, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb = {});

  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  torch::nn::Linear time_emb_proj{nullptr};

 private:
  // Inference on CUDA: the same computation through the fused kernels of diffusion/cuda/fused_ops.h.
  torch::Tensor forward_fused(const torch::Tensor& x, const torch::Tensor& temb);

  ResnetOptions options_;
};
TORCH_MODULE(ResnetBlock2D);

class Downsample2DImpl : public torch::nn::Module {
 public:
  // padding 1: a 3x3 stride-2 convolution padded on every side (UNet); padding 0: the VAE's asymmetric
  // (0, 1, 0, 1) padding before an unpadded stride-2 convolution.
  Downsample2DImpl(int64_t channels, int64_t padding);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv{nullptr};

 private:
  int64_t padding_;
};
TORCH_MODULE(Downsample2D);

class Upsample2DImpl : public torch::nn::Module {
 public:
  explicit Upsample2DImpl(int64_t channels);
  // Nearest 2x (or to `output_size` when the skip connection's size is odd), then a 3x3 convolution.
  torch::Tensor forward(const torch::Tensor& x, const std::optional<std::vector<int64_t>>& output_size = std::nullopt);

  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

}  // namespace fairdiff
