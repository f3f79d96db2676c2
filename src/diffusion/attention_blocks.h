// Attention, FeedForward (GEGLU), BasicTransformerBlock and Transformer2DModel (diffusers
// models/attention_processor.py, models/attention.py, models/transformers/transformer_2d.py).
//
// Shape legend: B batch, N = H*W image tokens, L text tokens, C query channels, E cross-attention
// channels, heads x Dh = inner channels.
#pragma once

#include <torch/torch.h>

namespace fairdiff {

struct AttentionOptions {
  int64_t query_dim = 0;
  int64_t cross_attention_dim = 0;  // 0: self-attention
  int64_t heads = 1;
  int64_t dim_head = 0;
  bool qkv_bias = false;
  bool upcast = false;            // scores and softmax in float32
  int64_t group_norm_groups = 0;  // > 0: the VAE's spatial attention, with its own group norm + residual
  double group_norm_eps = 1e-6;
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& options);
  // Sequence form: x [B, N, C], context [B, L, E] or undefined -> [B, N, C].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context = {});
  // Spatial form (VAE): x [B, C, H, W] -> group norm, single-head attention over H*W, residual.
  torch::Tensor forward_spatial(const torch::Tensor& x);

  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  torch::nn::ModuleList to_out{nullptr};  // [Linear, Dropout]
  torch::nn::GroupNorm group_norm{nullptr};

 private:
  AttentionOptions options_;
  torch::nn::Linear out_linear_{nullptr};
};
TORCH_MODULE(Attention);

class GegluImpl : public torch::nn::Module {
 public:
  GegluImpl(int64_t dim_in, int64_t dim_out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(Geglu);

class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t mult = 4);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::ModuleList net{nullptr};  // [GEGLU, Dropout, Linear]

 private:
  Geglu geglu_{nullptr};
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(FeedForward);

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head, int64_t cross_attention_dim, bool upcast);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  Attention attn1{nullptr}, attn2{nullptr};
  FeedForward ff{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

struct Transformer2DOptions {
  int64_t heads = 1;
  int64_t dim_head = 0;
  int64_t in_channels = 0;
  int64_t num_layers = 1;
  int64_t cross_attention_dim = 0;
  int64_t norm_groups = 32;
  bool use_linear_projection = false;
  bool upcast_attention = false;
};

class Transformer2DModelImpl : public torch::nn::Module {
 public:
  explicit Transformer2DModelImpl(const Transformer2DOptions& options);
  // x [B, C, H, W], context [B, L, E] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& context);

  torch::nn::GroupNorm norm{nullptr};
  torch::nn::AnyModule proj_in, proj_out;  // Linear (use_linear_projection) or 1x1 Conv2d
  torch::nn::ModuleList transformer_blocks{nullptr};

 private:
  Transformer2DOptions options_;
};
TORCH_MODULE(Transformer2DModel);

}  // namespace fairdiff
