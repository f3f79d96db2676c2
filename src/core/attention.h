// Scaled dot-product attention over [B, heads, L, D] tensors: the fused kernel where this LibTorch has it
// (PyTorch >= 2.0: flash / memory-efficient on CUDA), otherwise the plain softmax(QK^T / sqrt(D)) V.
#pragma once

#include <torch/torch.h>

#include <optional>

namespace fairdiff {

// q [B, H, Lq, D], k/v [B, H, Lk, D]; `mask` is additive and broadcastable to [B, H, Lq, Lk].
// `upcast` computes the scores and softmax in float32 (diffusers' upcast_attention / upcast_softmax).
torch::Tensor dot_product_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const std::optional<torch::Tensor>& mask = std::nullopt, bool upcast = false);

// Forces the plain implementation everywhere (tests comparing against the reference on CPU use it).
void set_fused_attention_enabled(bool enabled);

// x [..., in] -> [..., out] through ATen's linear, which folds the leading dimensions of a contiguous input and
// adds the bias inside the GEMM (cuBLASLt's epilogue on CUDA), as PyTorch's F.linear does. torch::nn::Linear's
// own forward (the C++ frontend's functional::linear) fuses only 2-d inputs and adds a 3-d input's bias in a
// separate broadcast pass: at batch 32 those passes were a fifth of a UNet step's kernel time (bench/RESULTS.md).
torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x);

}  // namespace fairdiff
