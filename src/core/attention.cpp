#include "core/attention.h"

#include <torch/version.h>

#include <atomic>
#include <cmath>

namespace fairdiff {
namespace {

std::atomic<bool> g_fused_enabled{true};

torch::Tensor plain_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const std::optional<torch::Tensor>& mask, bool upcast) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  torch::Tensor qs = upcast ? q.to(torch::kFloat32) : q;
  torch::Tensor ks = upcast ? k.to(torch::kFloat32) : k;
  torch::Tensor scores = torch::matmul(qs, ks.transpose(-1, -2)) * scale;  // [B, H, Lq, Lk]
  if (mask) scores = scores + mask->to(scores.scalar_type());
  torch::Tensor probs = torch::softmax(scores, -1).to(v.scalar_type());
  return torch::matmul(probs, v);
}

}  // namespace

void set_fused_attention_enabled(bool enabled) {
  g_fused_enabled = enabled;
}

torch::Tensor dot_product_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const std::optional<torch::Tensor>& mask, bool upcast) {
#if TORCH_VERSION_MAJOR >= 2
  // The fused kernels accumulate in float32 internally, which is what upcasting asks for.
  if (g_fused_enabled && q.is_cuda()) {
    return at::scaled_dot_product_attention(
        q, k, v, mask ? c10::optional<at::Tensor>(mask->to(q.scalar_type())) : c10::optional<at::Tensor>());
  }
#endif
  return plain_attention(q, k, v, mask, upcast);
}

torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return torch::linear(x, layer->weight, layer->bias);
}

}  // namespace fairdiff
