#include "diffusion/attention_blocks.h"

#include <tuple>

#include "core/attention.h"
#include "diffusion/cuda/fused_ops.h"

namespace fairdiff {

namespace {

// proj_in / proj_out: a Linear (use_linear_projection) through linear(), else the 1x1 convolution's forward.
torch::Tensor projection(torch::nn::AnyModule& module, const torch::Tensor& x) {
  if (module.type_info() == typeid(torch::nn::LinearImpl)) {
    return linear(torch::nn::Linear(module.ptr<torch::nn::LinearImpl>()), x);
  }
  return module.forward(x);
}

}  // namespace

AttentionImpl::AttentionImpl(const AttentionOptions& options) : options_(options) {
  const int64_t inner = options.heads * options.dim_head;
  const int64_t context_dim = options.cross_attention_dim > 0 ? options.cross_attention_dim : options.query_dim;
  if (options.group_norm_groups > 0) {
    group_norm = register_module(
        "group_norm",
        torch::nn::GroupNorm(
            torch::nn::GroupNormOptions(options.group_norm_groups, options.query_dim).eps(options.group_norm_eps)));
  }
  to_q = register_module("to_q",
                         torch::nn::Linear(torch::nn::LinearOptions(options.query_dim, inner).bias(options.qkv_bias)));
  to_k =
      register_module("to_k", torch::nn::Linear(torch::nn::LinearOptions(context_dim, inner).bias(options.qkv_bias)));
  to_v =
      register_module("to_v", torch::nn::Linear(torch::nn::LinearOptions(context_dim, inner).bias(options.qkv_bias)));
  out_linear_ = torch::nn::Linear(inner, options.query_dim);
  to_out = register_module("to_out", torch::nn::ModuleList(out_linear_, torch::nn::Dropout(0.0)));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const torch::Tensor& source = context.defined() ? context : x;
  const int64_t b = x.size(0), n = x.size(1), l = source.size(1);
  const int64_t h = options_.heads, d = options_.dim_head;
  torch::Tensor q = linear(to_q, x).view({b, n, h, d}).transpose(1, 2);       // [B, heads, N, Dh]
  torch::Tensor k = linear(to_k, source).view({b, l, h, d}).transpose(1, 2);  // [B, heads, L, Dh]
  torch::Tensor v = linear(to_v, source).view({b, l, h, d}).transpose(1, 2);
  torch::Tensor out = dot_product_attention(q, k, v, std::nullopt, options_.upcast);
  out = out.transpose(1, 2).reshape({b, n, h * d});  // [B, N, inner]
  return linear(out_linear_, out);
}

torch::Tensor AttentionImpl::forward_spatial(const torch::Tensor& x) {
  if (!is_training() && fused_op_active(FusedOp::kTokens, x)) {
    return add_tokens_to_nchw(x, forward(group_norm_tokens(x, *group_norm)));  // tokens [B, N, C]
  }
  const int64_t b = x.size(0), c = x.size(1), height = x.size(2), width = x.size(3);
  torch::Tensor h = group_norm(x).view({b, c, height * width}).transpose(1, 2);  // [B, N, C]
  h = forward(h);
  h = h.transpose(1, 2).reshape({b, c, height, width});
  return h + x;
}

GegluImpl::GegluImpl(int64_t dim_in, int64_t dim_out) {
  proj = register_module("proj", torch::nn::Linear(dim_in, dim_out * 2));
}

torch::Tensor GegluImpl::forward(const torch::Tensor& x) {
  if (!is_training()) return geglu(linear(proj, x));
  auto parts = linear(proj, x).chunk(2, -1);
  return parts[0] * torch::gelu(parts[1]);
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t mult) {
  geglu_ = Geglu(dim, dim * mult);
  out_ = torch::nn::Linear(dim * mult, dim);
  net = register_module("net", torch::nn::ModuleList(geglu_, torch::nn::Dropout(0.0), out_));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  return linear(out_, geglu_(x));
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t dim_head,
                                                     int64_t cross_attention_dim, bool upcast) {
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)));
  attn1 = register_module("attn1", Attention(AttentionOptions{dim, 0, heads, dim_head, false, upcast}));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)));
  attn2 =
      register_module("attn2", Attention(AttentionOptions{dim, cross_attention_dim, heads, dim_head, false, upcast}));
  norm3 = register_module("norm3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)));
  ff = register_module("ff", FeedForward(dim));
}

torch::Tensor BasicTransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  if (!is_training() && fused_op_active(FusedOp::kLayerNorm, x)) {
    // Inference on CUDA: each residual add runs in the kernel of the LayerNorm that reads its sum.
    torch::Tensor h, normed;
    std::tie(h, normed) = add_layer_norm(x, {}, *norm1);
    std::tie(h, normed) = add_layer_norm(h, attn1(normed), *norm2);
    std::tie(h, normed) = add_layer_norm(h, attn2(normed, context), *norm3);
    return h + ff(normed);
  }
  torch::Tensor h = x + attn1(norm1(x));
  h = h + attn2(norm2(h), context);
  return h + ff(norm3(h));
}

Transformer2DModelImpl::Transformer2DModelImpl(const Transformer2DOptions& options) : options_(options) {
  const int64_t inner = options.heads * options.dim_head;
  norm = register_module(
      "norm", torch::nn::GroupNorm(torch::nn::GroupNormOptions(options.norm_groups, options.in_channels).eps(1e-6)));
  if (options.use_linear_projection) {
    proj_in = torch::nn::AnyModule(torch::nn::Linear(options.in_channels, inner));
    proj_out = torch::nn::AnyModule(torch::nn::Linear(inner, options.in_channels));
  } else {
    proj_in = torch::nn::AnyModule(torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels, inner, 1)));
    proj_out = torch::nn::AnyModule(torch::nn::Conv2d(torch::nn::Conv2dOptions(inner, options.in_channels, 1)));
  }
  register_module("proj_in", proj_in.ptr());
  transformer_blocks = register_module("transformer_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.num_layers; ++i) {
    transformer_blocks->push_back(BasicTransformerBlock(inner, options.heads, options.dim_head,
                                                        options.cross_attention_dim, options.upcast_attention));
  }
  register_module("proj_out", proj_out.ptr());
}

torch::Tensor Transformer2DModelImpl::forward(const torch::Tensor& x, const torch::Tensor& context) {
  const int64_t b = x.size(0), height = x.size(2), width = x.size(3);
  // Inference on CUDA: the norm writes tokens and the residual reads them back, each in one kernel.
  const bool fused = !is_training() && options_.use_linear_projection && fused_op_active(FusedOp::kTokens, x);
  int64_t inner = options_.heads * options_.dim_head;
  torch::Tensor h;
  if (fused) {
    h = projection(proj_in, group_norm_tokens(x, *norm));  // [B, N, C]
  } else if (options_.use_linear_projection) {
    h = norm(x).permute({0, 2, 3, 1}).reshape({b, height * width, x.size(1)});  // [B, C, H, W] -> [B, N, C]
    h = projection(proj_in, h);
  } else {
    h = projection(proj_in, is_training() ? norm(x) : group_norm_act(x, *norm, /*silu=*/false));
    h = h.permute({0, 2, 3, 1}).reshape({b, height * width, inner});
  }
  for (const auto& block : *transformer_blocks) h = block->as<BasicTransformerBlock>()->forward(h, context);
  if (fused) return add_tokens_to_nchw(x, projection(proj_out, h));
  if (options_.use_linear_projection) {
    h = projection(proj_out, h);
    h = h.reshape({b, height, width, x.size(1)}).permute({0, 3, 1, 2});  // [B, N, C] -> [B, C, H, W]
  } else {
    h = h.reshape({b, height, width, inner}).permute({0, 3, 1, 2});
    h = projection(proj_out, h);
  }
  return h + x;
}

}  // namespace fairdiff
