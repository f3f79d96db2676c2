#include "train/flat_adamw.h"

#include <cmath>
#include <stdexcept>

#include "core/error.h"
#include "diffusion/cuda/fused_ops.h"

namespace fairdiff::train {
namespace {

// Elements per chunk of the fp32 temporaries in the update (256 MiB), so a lower compute dtype never needs a
// second full-size fp32 gradient.
constexpr int64_t kChunk = int64_t{1} << 26;

}  // namespace

FlatAdamW::FlatAdamW(NamedTensors params, const AdamWConfig& config, torch::Dtype compute_dtype, bool accumulate_fp32)
    : params_(std::move(params)), config_(config) {
  if (params_.empty()) throw std::invalid_argument("FlatAdamW: no trainable tensors");
  const torch::Tensor& first = params_.front().second;
  const auto options = first.options().dtype(compute_dtype);
  for (const auto& [name, p] : params_) {
    if (!p.requires_grad() || p.scalar_type() != torch::kFloat32 || p.device() != first.device()) {
      throw std::invalid_argument("FlatAdamW: '" + name +
                                  "' must be an fp32 tensor that requires grad, on the "
                                  "others' device");
    }
    if (!p.is_non_overlapping_and_dense()) throw std::invalid_argument("FlatAdamW: '" + name + "' is not dense");
    offsets_.push_back(numel_);
    numel_ += p.numel();
  }
  torch::NoGradGuard no_grad;
  master_ = torch::empty({numel_}, options.dtype(torch::kFloat32).requires_grad(false));
  model_buffer_ = compute_dtype == torch::kFloat32 ? master_ : torch::empty({numel_}, options.requires_grad(false));
  grad_buffer_ = torch::zeros({numel_}, options.requires_grad(false));
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i].second;
    // Views keep each tensor's own memory layout (channels-last convolutions stay channels-last).
    master_.as_strided(p.sizes(), p.strides(), offsets_[i]).copy_(p.detach());
    torch::Tensor data = model_buffer_.as_strided(p.sizes(), p.strides(), offsets_[i]);
    if (!model_buffer_.is_same(master_)) data.copy_(p.detach());
    p.set_data(data);
    p.mutable_grad() = grad_buffer_.as_strided(p.sizes(), p.strides(), offsets_[i]);
  }
  exp_avg_ = torch::zeros_like(master_);
  exp_avg_sq_ = torch::zeros_like(master_);
  if (accumulate_fp32 && compute_dtype != torch::kFloat32) grad_sum_ = torch::zeros_like(master_);
}

torch::Tensor FlatAdamW::view_of(const torch::Tensor& flat, size_t index) const {
  const torch::Tensor& p = params_[index].second;
  return flat.as_strided(p.sizes(), p.strides(), offsets_[index]);
}

void FlatAdamW::zero_grad() {
  grad_buffer_.zero_();
  if (grad_sum_.defined()) grad_sum_.zero_();
}

void FlatAdamW::accumulate() {
  for (const auto& [name, p] : params_) {
    // Autograd accumulates in place into an existing gradient; anything else would silently lose updates.
    if (!p.grad().defined() || !p.grad().is_alias_of(grad_buffer_)) {
      throw std::logic_error("FlatAdamW: the gradient of '" + name + "' was replaced instead of accumulated");
    }
  }
  if (grad_sum_.defined()) {
    grad_sum_.add_(grad_buffer_);
    grad_buffer_.zero_();
  }
}

torch::Tensor FlatAdamW::flat_grad() const {
  return grad_sum_.defined() ? grad_sum_ : grad_buffer_;
}

torch::Tensor FlatAdamW::grad_of(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].first == name) return view_of(flat_grad(), i);
  }
  throw std::invalid_argument("FlatAdamW: no trainable tensor named '" + name + "'");
}

torch::Tensor FlatAdamW::grad_norm(double grad_multiplier) const {
  torch::NoGradGuard no_grad;
  const torch::Tensor grad = flat_grad();
  torch::Tensor norm;
  if (grad.scalar_type() == torch::kFloat32) {
    norm = grad.norm();
  } else {
    torch::Tensor squares = torch::zeros({}, grad.options().dtype(torch::kFloat32));
    for (int64_t begin = 0; begin < numel_; begin += kChunk) {
      squares += grad.narrow(0, begin, std::min(kChunk, numel_ - begin)).to(torch::kFloat32).square().sum();
    }
    norm = squares.sqrt();
  }
  return norm * grad_multiplier;
}

void FlatAdamW::step(double lr, const torch::Tensor& grad_multiplier) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bias_correction1 = 1.0 - std::pow(config_.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(config_.beta2, static_cast<double>(step_));
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  const torch::Tensor grad = flat_grad();
  FusedAdamWStep fused;  // one CUDA kernel for the whole update where it is compiled in
  fused.master = master_;
  fused.exp_avg = exp_avg_;
  fused.exp_avg_sq = exp_avg_sq_;
  fused.grad = grad;
  if (!model_buffer_.is_same(master_)) fused.model = model_buffer_;
  fused.grad_multiplier = grad_multiplier;
  fused.lr = lr;
  fused.weight_decay = config_.weight_decay;
  fused.beta1 = config_.beta1;
  fused.beta2 = config_.beta2;
  fused.eps = config_.eps;
  fused.step_size = step_size;
  fused.bias_correction2_sqrt = bias_correction2_sqrt;
  if (fused_adamw_step(fused)) return;
  const torch::Tensor multiplier = grad_multiplier.to(master_.device(), torch::kFloat32);
  for (int64_t begin = 0; begin < numel_; begin += kChunk) {
    const int64_t n = std::min(kChunk, numel_ - begin);
    torch::Tensor g = grad.narrow(0, begin, n).to(torch::kFloat32) * multiplier;
    torch::Tensor param = master_.narrow(0, begin, n);
    torch::Tensor exp_avg = exp_avg_.narrow(0, begin, n);
    torch::Tensor exp_avg_sq = exp_avg_sq_.narrow(0, begin, n);
    // The same sequence of operations as torch.optim.AdamW (single-tensor and foreach paths agree).
    param.mul_(1.0 - lr * config_.weight_decay);
    exp_avg.lerp_(g, 1.0 - config_.beta1);
    exp_avg_sq.mul_(config_.beta2).addcmul_(g, g, 1.0 - config_.beta2);
    torch::Tensor denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(config_.eps);
    param.addcdiv_(exp_avg, denom, -step_size);
  }
  refresh_model_weights();
}

void FlatAdamW::refresh_model_weights() {
  torch::NoGradGuard no_grad;
  if (!model_buffer_.is_same(master_)) model_buffer_.copy_(master_);
}

TensorMap FlatAdamW::master_weights() const {
  TensorMap out;
  for (size_t i = 0; i < params_.size(); ++i) out[params_[i].first] = view_of(master_, i);
  return out;
}

TensorMap FlatAdamW::state() const {
  return {{"optimizer.master", master_.to(torch::kCPU).clone()},
          {"optimizer.exp_avg", exp_avg_.to(torch::kCPU).clone()},
          {"optimizer.exp_avg_sq", exp_avg_sq_.to(torch::kCPU).clone()},
          {"optimizer.step", torch::tensor({step_}, torch::kInt64)}};
}

void FlatAdamW::load_state(const TensorMap& state, const std::string& source) {
  torch::NoGradGuard no_grad;
  for (const char* key : {"optimizer.master", "optimizer.exp_avg", "optimizer.exp_avg_sq"}) {
    auto it = state.find(key);
    if (it == state.end()) throw InputError(source + ": missing '" + key + "'");
    if (it->second.scalar_type() != torch::kFloat32 || it->second.dim() != 1 || it->second.numel() != numel_) {
      throw InputError(source + ": '" + key + "' holds " + std::to_string(it->second.numel()) + " values, expected " +
                       std::to_string(numel_) +
                       " fp32 values (a checkpoint of another model "
                       "or of other trainable parts)");
    }
  }
  auto step = state.find("optimizer.step");
  if (step == state.end() || step->second.numel() != 1) throw InputError(source + ": missing 'optimizer.step'");
  master_.copy_(state.at("optimizer.master"));
  exp_avg_.copy_(state.at("optimizer.exp_avg"));
  exp_avg_sq_.copy_(state.at("optimizer.exp_avg_sq"));
  step_ = step->second.to(torch::kInt64).item<int64_t>();
  refresh_model_weights();
}

torch::Tensor clip_coefficient(const torch::Tensor& total_norm, double max_norm) {
  return (max_norm / (total_norm.to(torch::kFloat32) + 1e-6)).clamp_max(1.0);
}

}  // namespace fairdiff::train
