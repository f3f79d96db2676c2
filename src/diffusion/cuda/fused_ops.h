// Fused inference operators of the UNet and the VAE: GroupNorm (+ a per-channel shift before it, + SiLU after
// it), GEGLU, the ResNet block's biases + residual add, the Transformer2D's changes between the NCHW and
// token layouts, and LayerNorm with the residual add before it.
//
// Each runs one fused CUDA kernel (cuda/fused_kernels.cu) when the kernels are compiled in
// (FAIRDIFF_HAVE_CUDA_KERNELS), the op is enabled, the tensors are on CUDA and autograd is not recording them;
// everywhere else it runs the LibTorch composition it replaces, so CPU results are unchanged. Modules call
// them only outside training (`!is_training()`), so gradient checkpointing recomputes exactly what it saved.
//
// Shape legend: B batch, C channels, H/W spatial size, N = H * W tokens, F GEGLU features.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>

namespace fairdiff {

enum class FusedOp { kGroupNorm, kResidual, kGeglu, kTokens, kAdamW, kLayerNorm, kUpsample };

// Whether this build has the CUDA kernels at all.
bool fused_kernels_compiled();

// Which ops may use their kernels: "all" (the default), "none", or a comma list of groupnorm, residual, geglu,
// tokens, adamw, layernorm, upsample. The environment variable FAIRDIFF_FUSED_OPS sets it at start (before/after
// benchmarks).
void set_fused_ops(const std::string& spec);
std::string fused_ops_spec();

// Whether `op`'s kernel would run for activations like `x` (compiled, enabled, CUDA, autograd not recording).
bool fused_op_active(FusedOp op, const torch::Tensor& x);

// x [B, C, H, W] -> silu?(group_norm(x + shift)); channel_shift [C] or [B, C], or undefined.
torch::Tensor group_norm_act(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                             const torch::Tensor& bias, double eps, bool silu, const torch::Tensor& channel_shift = {});
torch::Tensor group_norm_act(const torch::Tensor& x, const torch::nn::GroupNormImpl& norm, bool silu,
                             const torch::Tensor& channel_shift = {});

// x [B, C, H, W] -> group_norm(x) as tokens [B, N, C].
torch::Tensor group_norm_tokens(const torch::Tensor& x, const torch::nn::GroupNormImpl& norm);

// proj [..., 2F] -> proj[..., :F] * gelu(proj[..., F:]) [..., F] (diffusers' GEGLU, exact erf GELU).
torch::Tensor geglu(const torch::Tensor& proj);

// ((shortcut + shortcut_bias) + (h + h_bias)) / output_scale_factor, all [B, C, H, W]; biases [C] or undefined.
torch::Tensor bias_residual_add(const torch::Tensor& shortcut, const torch::Tensor& h, const torch::Tensor& h_bias,
                                const torch::Tensor& shortcut_bias, double output_scale_factor);

// LayerNorm over the last dimension of x [..., C] after a residual add: returns {x + delta, layer_norm(x + delta)}
// ({x, layer_norm(x)} when delta is undefined). The transformer blocks' norm2 and norm3 read the sum that the
// residual add before them writes; the kernel makes both in one pass over x and delta.
std::pair<torch::Tensor, torch::Tensor> add_layer_norm(const torch::Tensor& x, const torch::Tensor& delta,
                                                       const torch::Tensor& weight, const torch::Tensor& bias,
                                                       double eps);
std::pair<torch::Tensor, torch::Tensor> add_layer_norm(const torch::Tensor& x, const torch::Tensor& delta,
                                                       const torch::nn::LayerNormImpl& norm);

// Nearest 2x upsampling of x [B, C, H, W] -> [B, C, 2H, 2W]. The kernel takes channels-last x (fp16, bf16,
// fp32) and writes channels-last: LibTorch's own channels-last kernel took 0.6 ms a call at batch 32 with
// guidance, and its contiguous one needs layout copies around it. Elsewhere F::interpolate (same values).
bool upsample_nearest2x_fits(const torch::Tensor& x);
torch::Tensor upsample_nearest2x(const torch::Tensor& x);

// x [B, C, H, W] + tokens [B, N, C] read as [B, C, H, W]; the kernel's result is NCHW-contiguous (LibTorch's
// fallback keeps the channels-last strides of the permuted tokens).
torch::Tensor add_tokens_to_nchw(const torch::Tensor& x, const torch::Tensor& tokens);

// One AdamW step of train/flat_adamw.h over its flat buffers (all [n], contiguous, on one CUDA device): the
// update torch.optim.AdamW makes, in one kernel that reads and writes each element once, where the LibTorch
// sequence makes about ten passes over the 866 million values of SD 2.1's UNet. `model` (the compute-dtype
// weights) is written from the updated masters when defined. Returns false, having done nothing, unless the
// kernel is compiled in and enabled (FAIRDIFF_FUSED_OPS "adamw") and the tensors suit it.
struct FusedAdamWStep {
  torch::Tensor master, exp_avg, exp_avg_sq;  // fp32
  torch::Tensor grad;                         // fp32, fp16 or bf16
  torch::Tensor model;                        // fp16/bf16/fp32 or undefined
  torch::Tensor grad_multiplier;              // 0-d fp32
  double lr = 0, weight_decay = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double step_size = 0;              // lr / bias_correction1
  double bias_correction2_sqrt = 1;  // sqrt(1 - beta2^step)
};
bool fused_adamw_step(const FusedAdamWStep& step);

}  // namespace fairdiff
