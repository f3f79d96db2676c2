#include "diffusion/resnet.h"

#include <limits>

#include "diffusion/cuda/fused_ops.h"

namespace fairdiff {

namespace F = torch::nn::functional;

ResnetBlock2DImpl::ResnetBlock2DImpl(const ResnetOptions& options) : options_(options) {
  norm1 = register_module(
      "norm1", torch::nn::GroupNorm(torch::nn::GroupNormOptions(options.groups, options.in_channels).eps(options.eps)));
  conv1 = register_module(
      "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels, options.out_channels, 3).padding(1)));
  if (options.temb_channels > 0) {
    time_emb_proj = register_module("time_emb_proj", torch::nn::Linear(options.temb_channels, options.out_channels));
  }
  norm2 = register_module(
      "norm2",
      torch::nn::GroupNorm(torch::nn::GroupNormOptions(options.groups, options.out_channels).eps(options.eps)));
  conv2 = register_module(
      "conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.out_channels, options.out_channels, 3).padding(1)));
  if (options.in_channels != options.out_channels) {
    conv_shortcut = register_module(
        "conv_shortcut", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels, options.out_channels, 1)));
  }
}

torch::Tensor ResnetBlock2DImpl::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  if (!is_training() && (fused_op_active(FusedOp::kGroupNorm, x) || fused_op_active(FusedOp::kResidual, x))) {
    return forward_fused(x, temb);
  }
  torch::Tensor h = torch::silu(norm1(x));
  if (time_emb_proj && temb.defined()) {
    // conv1's bias and the time embedding are both per-channel shifts: add them together, once, to the
    // bias-free convolution (saves a pass over the activations; same sum up to float rounding).
    torch::Tensor shift = time_emb_proj(torch::silu(temb)) + conv1->bias;               // [B, C]
    h = torch::conv2d(h, conv1->weight, {}, 1, 1) + shift.unsqueeze(-1).unsqueeze(-1);  // + [B, C, 1, 1]
  } else {
    h = conv1(h);
  }
  h = conv2(torch::silu(norm2(h)));
  torch::Tensor shortcut = conv_shortcut ? conv_shortcut(x) : x;
  torch::Tensor out = shortcut + h;
  return options_.output_scale_factor == 1.0 ? out : out / options_.output_scale_factor;
}

torch::Tensor ResnetBlock2DImpl::forward_fused(const torch::Tensor& x, const torch::Tensor& temb) {
  // Every bias joins a kernel that reads the activation anyway: conv1's (with the time embedding) is norm2's
  // per-channel shift, conv2's and conv_shortcut's are added in the residual kernel.
  torch::Tensor h = group_norm_act(x, *norm1, /*silu=*/true);
  torch::Tensor shift = conv1->bias;                                                            // [C]
  if (time_emb_proj && temb.defined()) shift = time_emb_proj(torch::silu(temb)) + conv1->bias;  // [B, C]
  h = torch::conv2d(h, conv1->weight, {}, 1, 1);
  h = group_norm_act(h, *norm2, /*silu=*/true, shift);
  h = torch::conv2d(h, conv2->weight, {}, 1, 1);
  torch::Tensor shortcut = conv_shortcut ? torch::conv2d(x, conv_shortcut->weight) : x;
  return bias_residual_add(shortcut, h, conv2->bias, conv_shortcut ? conv_shortcut->bias : torch::Tensor(),
                           options_.output_scale_factor);
}

Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t padding) : padding_(padding) {
  conv = register_module("conv",
                         torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 3).stride(2).padding(padding)));
}

torch::Tensor Downsample2DImpl::forward(const torch::Tensor& x) {
  if (padding_ == 0) return conv(F::pad(x, F::PadFuncOptions({0, 1, 0, 1}).mode(torch::kConstant).value(0)));
  return conv(x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 3).padding(1)));
}

torch::Tensor Upsample2DImpl::forward(const torch::Tensor& x, const std::optional<std::vector<int64_t>>& output_size) {
  // Channels-last inference on CUDA: fairdiff's kernel, which copies values as the interpolation does.
  if (!output_size && upsample_nearest2x_fits(x)) return conv(upsample_nearest2x(x));
  // Nearest upsampling of bfloat16 is missing in older LibTorch builds: go through float32 there.
  torch::Tensor h = x.scalar_type() == torch::kBFloat16 ? x.to(torch::kFloat32) : x;
  auto options = F::InterpolateFuncOptions().mode(torch::kNearest);
  int64_t out_h = 2 * h.size(2), out_w = 2 * h.size(3);
  if (output_size) {
    options.size(*output_size);
    out_h = (*output_size)[0];
    out_w = (*output_size)[1];
  } else {
    options.scale_factor(std::vector<double>{2.0, 2.0});
  }
  // LibTorch's channels-last nearest kernel on CUDA refuses outputs of INT_MAX elements or more (older releases) or
  // writes zeros past 2^31 (newer ones; pytorch issues 81665, 141831): such outputs go through NCHW. diffusers makes
  // every batch of 64 or more contiguous instead, which at batch 32 with guidance turns the UNet's three upsamplers
  // and every layer after them until the next convolution back to NCHW (16 layout copies, 3.7 ms of a 119 ms step).
  // Nearest upsampling copies values, so the layout changes no number.
  const int64_t out_numel = h.size(0) * h.size(1) * out_h * out_w;
  if (h.is_cuda() && out_numel >= std::numeric_limits<int32_t>::max()) h = h.contiguous();
  h = F::interpolate(h, options).to(x.scalar_type());
  return conv(h);
}

}  // namespace fairdiff
