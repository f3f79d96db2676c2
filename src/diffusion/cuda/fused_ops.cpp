#include "diffusion/cuda/fused_ops.h"

#include <atomic>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "core/error.h"

#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "diffusion/cuda/fused_kernels.h"
#endif

namespace fairdiff {
namespace {

constexpr unsigned kAllOps = 0x7F;
const char* const kOpNames[] = {"groupnorm", "residual", "geglu", "tokens", "adamw", "layernorm", "upsample"};

unsigned op_bit(FusedOp op) {
  return 1u << static_cast<unsigned>(op);
}

unsigned parse_spec(const std::string& spec) {
  if (spec.empty() || spec == "all") return kAllOps;
  if (spec == "none") return 0;
  unsigned mask = 0;
  std::stringstream stream(spec);
  std::string name;
  while (std::getline(stream, name, ',')) {
    unsigned bit = 0;
    for (unsigned i = 0; i < sizeof(kOpNames) / sizeof(kOpNames[0]); ++i) {
      if (name == kOpNames[i]) bit = 1u << i;
    }
    if (bit == 0) {
      throw UsageError(
          "fused ops: unknown op '" + name +
          "' (expected all, none or a comma list of groupnorm, residual, geglu, tokens, adamw, layernorm, upsample)");
    }
    mask |= bit;
  }
  return mask;
}

std::atomic<unsigned>& enabled_ops() {
  static std::atomic<unsigned> mask{[] {
    const char* env = std::getenv("FAIRDIFF_FUSED_OPS");
    return parse_spec(env ? env : "all");
  }()};
  return mask;
}

torch::Tensor per_channel(const torch::Tensor& v) {
  return v.view({1, -1, 1, 1});
}  // [C] -> [1, C, 1, 1]

#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
namespace ck = cuda_kernels;

bool any_requires_grad(std::initializer_list<const torch::Tensor*> tensors) {
  for (const torch::Tensor* t : tensors) {
    if (t->defined() && t->requires_grad()) return true;
  }
  return false;
}

// The kernel runs: compiled, enabled, on CUDA, and autograd does not record any of the inputs.
bool use_kernel(FusedOp op, std::initializer_list<const torch::Tensor*> inputs) {
  const torch::Tensor& x = **inputs.begin();
  return fused_op_active(op, x) && !(torch::GradMode::is_enabled() && any_requires_grad(inputs));
}

bool kernel_dtype(torch::ScalarType type, ck::DType* out) {
  switch (type) {
    case torch::kFloat32:
      *out = ck::DType::kFloat32;
      return true;
    case torch::kFloat16:
      *out = ck::DType::kFloat16;
      return true;
    case torch::kBFloat16:
      *out = ck::DType::kBFloat16;
      return true;
    default:
      return false;
  }
}

void* current_stream(const torch::Tensor& x) {
  return c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
}

bool aligned16(const torch::Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

// Vector width in elements of a 16-byte access.
int64_t vector_width(const torch::Tensor& t) {
  return 16 / static_cast<int64_t>(t.element_size());
}

// Channels-last activations (NHWC memory), which the kernels read and write as they are; other layouts are made
// NCHW-contiguous first.
bool is_nhwc(const torch::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(torch::MemoryFormat::ChannelsLast);
}

void check_kernel(const char* error, const char* op) {
  if (error) throw std::runtime_error(std::string(op) + ": CUDA kernel failed: " + error);
}

// A [C] or [B, C] parameter in x's dtype, contiguous, or undefined.
torch::Tensor kernel_param(const torch::Tensor& p, const torch::Tensor& x) {
  return p.defined() ? p.to(x.scalar_type()).contiguous() : p;
}

bool group_norm_kernel_fits(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                            const torch::Tensor& bias, const torch::Tensor& shift) {
  ck::DType dtype = ck::DType::kFloat32;
  if (x.dim() < 3 || !kernel_dtype(x.scalar_type(), &dtype) || !weight.defined() || !bias.defined()) return false;
  const int64_t n = x.size(0), c = x.size(1);
  if (groups <= 0 || c % groups != 0 || x.numel() == 0 || n * groups > (int64_t{1} << 31) - 1) return false;
  if (weight.numel() != c || bias.numel() != c) return false;
  if (shift.defined() && !(shift.numel() == c || (shift.dim() == 2 && shift.size(0) == n && shift.size(1) == c))) {
    return false;
  }
  return x.numel() / (n * c) <= std::numeric_limits<int32_t>::max();
}

torch::Tensor group_norm_kernel(const torch::Tensor& input, int64_t groups, const torch::Tensor& weight,
                                const torch::Tensor& bias, double eps, bool silu, const torch::Tensor& shift,
                                bool tokens_out) {
  c10::cuda::CUDAGuard guard(input.device());
  const int64_t c = input.size(1);
  // NHWC read as it is when a pixel's channels fit one block's threads (C / W <= 512).
  const int64_t width = c % vector_width(input) == 0 && aligned16(input) ? vector_width(input) : 1;
  const bool channels_last = is_nhwc(input) && c / width <= 512;
  const torch::Tensor x = channels_last ? input : input.contiguous();
  const int64_t n = x.size(0), hw = x.numel() / (n * c);
  torch::Tensor out = tokens_out      ? torch::empty({n, hw, c}, x.options())
                      : channels_last ? torch::empty_like(x, x.options(), torch::MemoryFormat::ChannelsLast)
                                      : torch::empty_like(x, x.options(), torch::MemoryFormat::Contiguous);
  const torch::Tensor w = kernel_param(weight, x), b = kernel_param(bias, x), s = kernel_param(shift, x);
  torch::Tensor workspace =
      torch::empty({ck::group_norm_workspace_floats(n, c, groups, channels_last)}, x.options().dtype(torch::kFloat32));
  ck::GroupNormArgs args;
  args.x = x.data_ptr();
  args.out = out.data_ptr();
  args.weight = w.data_ptr();
  args.bias = b.data_ptr();
  args.channel_shift = s.defined() ? s.data_ptr() : nullptr;
  args.shift_batch_stride = s.defined() && s.dim() == 2 ? c : 0;
  args.n = n;
  args.c = c;
  args.hw = hw;
  args.groups = groups;
  args.eps = static_cast<float>(eps);
  args.silu = silu;
  args.tokens_out = tokens_out;
  args.channels_last = channels_last;
  args.vectorized =
      channels_last ? width > 1 && aligned16(out) : hw % vector_width(x) == 0 && aligned16(x) && aligned16(out);
  kernel_dtype(x.scalar_type(), &args.dtype);
  args.workspace = workspace.data_ptr<float>();
  args.stream = current_stream(x);
  check_kernel(ck::group_norm(args), "group_norm");
  return out;
}
#endif

}  // namespace

bool fused_kernels_compiled() {
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

void set_fused_ops(const std::string& spec) {
  enabled_ops() = parse_spec(spec);
}

std::string fused_ops_spec() {
  const unsigned mask = enabled_ops();
  if (mask == kAllOps) return "all";
  if (mask == 0) return "none";
  std::string spec;
  for (unsigned i = 0; i < sizeof(kOpNames) / sizeof(kOpNames[0]); ++i) {
    if (mask & (1u << i)) spec += (spec.empty() ? "" : ",") + std::string(kOpNames[i]);
  }
  return spec;
}

bool fused_op_active(FusedOp op, const torch::Tensor& x) {
  return fused_kernels_compiled() && (enabled_ops() & op_bit(op)) && x.defined() && x.is_cuda() &&
         !(torch::GradMode::is_enabled() && x.requires_grad());
}

torch::Tensor group_norm_act(const torch::Tensor& x, int64_t groups, const torch::Tensor& weight,
                             const torch::Tensor& bias, double eps, bool silu, const torch::Tensor& channel_shift) {
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  if (use_kernel(FusedOp::kGroupNorm, {&x, &weight, &bias, &channel_shift}) &&
      group_norm_kernel_fits(x, groups, weight, bias, channel_shift)) {
    return group_norm_kernel(x, groups, weight, bias, eps, silu, channel_shift, /*tokens_out=*/false);
  }
#endif
  torch::Tensor input = x;
  if (channel_shift.defined()) {
    input = x + (channel_shift.dim() == 1 ? per_channel(channel_shift) : channel_shift.unsqueeze(-1).unsqueeze(-1));
  }
  torch::Tensor y = torch::group_norm(input, groups, weight, bias, eps);
  return silu ? torch::silu(y) : y;
}

torch::Tensor group_norm_act(const torch::Tensor& x, const torch::nn::GroupNormImpl& norm, bool silu,
                             const torch::Tensor& channel_shift) {
  return group_norm_act(x, norm.options.num_groups(), norm.weight, norm.bias, norm.options.eps(), silu, channel_shift);
}

torch::Tensor group_norm_tokens(const torch::Tensor& x, const torch::nn::GroupNormImpl& norm) {
  const int64_t groups = norm.options.num_groups();
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  if (x.dim() == 4 && use_kernel(FusedOp::kTokens, {&x, &norm.weight, &norm.bias}) &&
      group_norm_kernel_fits(x, groups, norm.weight, norm.bias, {}) && x.size(0) <= 65535 &&
      (x.size(1) + 31) / 32 <= 65535) {
    return group_norm_kernel(x, groups, norm.weight, norm.bias, norm.options.eps(), false, {}, /*tokens_out=*/true);
  }
#endif
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  return torch::group_norm(x, groups, norm.weight, norm.bias, norm.options.eps())
      .permute({0, 2, 3, 1})
      .reshape({b, h * w, c});  // [B, C, H, W] -> [B, N, C]
}

torch::Tensor geglu(const torch::Tensor& proj) {
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  ck::DType dtype = ck::DType::kFloat32;
  if (use_kernel(FusedOp::kGeglu, {&proj}) && kernel_dtype(proj.scalar_type(), &dtype) && proj.numel() > 0 &&
      proj.size(-1) % 2 == 0) {
    c10::cuda::CUDAGuard guard(proj.device());
    const torch::Tensor p = proj.contiguous();
    const int64_t features = p.size(-1) / 2, rows = p.numel() / p.size(-1);
    std::vector<int64_t> shape = p.sizes().vec();
    shape.back() = features;
    torch::Tensor out = torch::empty(shape, p.options());
    const bool vectorized = features % vector_width(p) == 0 && aligned16(p) && aligned16(out);
    check_kernel(ck::geglu(p.data_ptr(), out.data_ptr(), rows, features, vectorized, dtype, current_stream(p)),
                 "geglu");
    return out;
  }
#endif
  auto parts = proj.chunk(2, -1);
  return parts[0] * torch::gelu(parts[1]);
}

torch::Tensor bias_residual_add(const torch::Tensor& shortcut, const torch::Tensor& h, const torch::Tensor& h_bias,
                                const torch::Tensor& shortcut_bias, double output_scale_factor) {
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  ck::DType dtype = ck::DType::kFloat32;
  if (use_kernel(FusedOp::kResidual, {&h, &shortcut, &h_bias, &shortcut_bias}) && h.dim() >= 3 &&
      kernel_dtype(h.scalar_type(), &dtype) && shortcut.sizes() == h.sizes() &&
      shortcut.scalar_type() == h.scalar_type() && h.numel() > 0 &&
      (!h_bias.defined() || h_bias.numel() == h.size(1)) &&
      (!shortcut_bias.defined() || shortcut_bias.numel() == h.size(1))) {
    c10::cuda::CUDAGuard guard(h.device());
    // Both channels-last: read and written as they are; otherwise NCHW.
    const bool channels_last = is_nhwc(h) && is_nhwc(shortcut);
    const torch::Tensor a = channels_last ? shortcut : shortcut.contiguous(), b = channels_last ? h : h.contiguous();
    const torch::Tensor hb = kernel_param(h_bias, b), sb = kernel_param(shortcut_bias, b);
    torch::Tensor out = torch::empty_like(
        b, b.options(), channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous);
    const int64_t n = b.size(0), c = b.size(1), hw = b.numel() / (n * c);
    const int64_t row = channels_last ? c : hw;  // the contiguous run a 16-byte access must not cross
    const bool vectorized = row % vector_width(b) == 0 && aligned16(a) && aligned16(b) && aligned16(out);
    check_kernel(ck::bias_residual_add(a.data_ptr(), b.data_ptr(), hb.defined() ? hb.data_ptr() : nullptr,
                                       sb.defined() ? sb.data_ptr() : nullptr, out.data_ptr(), n, c, hw,
                                       static_cast<float>(output_scale_factor), vectorized, dtype, current_stream(b),
                                       channels_last),
                 "bias_residual_add");
    return out;
  }
#endif
  torch::Tensor hb = h_bias.defined() ? h + per_channel(h_bias) : h;
  torch::Tensor sc = shortcut_bias.defined() ? shortcut + per_channel(shortcut_bias) : shortcut;
  torch::Tensor out = sc + hb;
  return output_scale_factor == 1.0 ? out : out / output_scale_factor;
}

std::pair<torch::Tensor, torch::Tensor> add_layer_norm(const torch::Tensor& x, const torch::Tensor& delta,
                                                       const torch::Tensor& weight, const torch::Tensor& bias,
                                                       double eps) {
  const int64_t c = x.size(-1);
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  ck::DType dtype = ck::DType::kFloat32;
  if (use_kernel(FusedOp::kLayerNorm, {&x, &delta, &weight, &bias}) && kernel_dtype(x.scalar_type(), &dtype) &&
      x.numel() > 0 && weight.defined() && bias.defined() && weight.numel() == c && bias.numel() == c &&
      (!delta.defined() || (delta.sizes() == x.sizes() && delta.scalar_type() == x.scalar_type()))) {
    c10::cuda::CUDAGuard guard(x.device());
    const torch::Tensor a = x.contiguous(), d = delta.defined() ? delta.contiguous() : delta;
    const torch::Tensor w = kernel_param(weight, a), b = kernel_param(bias, a);
    torch::Tensor sum = d.defined() ? torch::empty_like(a) : a;
    torch::Tensor out = torch::empty_like(a);
    bool vectorized = c % vector_width(a) == 0;
    for (const torch::Tensor* t : std::initializer_list<const torch::Tensor*>{&a, &d, &w, &b, &sum, &out})
      vectorized = vectorized && (!t->defined() || aligned16(*t));
    if (c <= ck::layer_norm_max_channels(vectorized, dtype)) {
      ck::LayerNormArgs args;
      args.x = a.data_ptr();
      args.delta = d.defined() ? d.data_ptr() : nullptr;
      args.sum_out = d.defined() ? sum.data_ptr() : nullptr;
      args.weight = w.data_ptr();
      args.bias = b.data_ptr();
      args.out = out.data_ptr();
      args.rows = a.numel() / c;
      args.c = c;
      args.eps = static_cast<float>(eps);
      args.vectorized = vectorized;
      args.dtype = dtype;
      args.stream = current_stream(a);
      check_kernel(ck::layer_norm(args), "layer_norm");
      return {sum, out};
    }
  }
#endif
  torch::Tensor sum = delta.defined() ? x + delta : x;
  return {sum, torch::layer_norm(sum, {c}, weight, bias, eps)};
}

std::pair<torch::Tensor, torch::Tensor> add_layer_norm(const torch::Tensor& x, const torch::Tensor& delta,
                                                       const torch::nn::LayerNormImpl& norm) {
  return add_layer_norm(x, delta, norm.weight, norm.bias, norm.options.eps());
}

bool upsample_nearest2x_fits(const torch::Tensor& x) {
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  return use_kernel(FusedOp::kUpsample, {&x}) && is_nhwc(x) && (x.element_size() == 2 || x.element_size() == 4) &&
         x.numel() > 0;
#else
  (void)x;
  return false;
#endif
}

torch::Tensor upsample_nearest2x(const torch::Tensor& x) {
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  if (upsample_nearest2x_fits(x)) {
    c10::cuda::CUDAGuard guard(x.device());
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    torch::Tensor out =
        torch::empty({n, c, 2 * h, 2 * w}, x.options().memory_format(torch::MemoryFormat::ChannelsLast));
    check_kernel(ck::upsample_nearest2x_nhwc(x.data_ptr(), out.data_ptr(), n, c, h, w, x.element_size(),
                                             aligned16(x) && aligned16(out), current_stream(x)),
                 "upsample_nearest2x");
    return out;
  }
#endif
  namespace F = torch::nn::functional;
  return F::interpolate(x,
                        F::InterpolateFuncOptions().mode(torch::kNearest).scale_factor(std::vector<double>{2.0, 2.0}));
}

torch::Tensor add_tokens_to_nchw(const torch::Tensor& x, const torch::Tensor& tokens) {
  const int64_t b = x.size(0), c = x.size(1), height = x.size(2), width = x.size(3);
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  ck::DType dtype = ck::DType::kFloat32;
  // Channels-last x has the tokens' memory order: LibTorch's add below is one coalesced pass (no transpose).
  if (!is_nhwc(x) && use_kernel(FusedOp::kTokens, {&x, &tokens}) && kernel_dtype(x.scalar_type(), &dtype) &&
      tokens.scalar_type() == x.scalar_type() && tokens.numel() == x.numel() && x.numel() > 0 && b <= 65535 &&
      (c + 31) / 32 <= 65535) {
    c10::cuda::CUDAGuard guard(x.device());
    const torch::Tensor xc = x.contiguous(), t = tokens.contiguous();
    torch::Tensor out = torch::empty_like(xc);
    check_kernel(ck::add_tokens_to_nchw(xc.data_ptr(), t.data_ptr(), out.data_ptr(), b, c, height * width, dtype,
                                        current_stream(xc)),
                 "add_tokens_to_nchw");
    return out;
  }
#endif
  return tokens.reshape({b, height, width, c}).permute({0, 3, 1, 2}) + x;  // [B, N, C] -> [B, C, H, W]
}

bool fused_adamw_step(const FusedAdamWStep& step) {
#ifdef FAIRDIFF_HAVE_CUDA_KERNELS
  const torch::Tensor& master = step.master;
  ck::DType grad_dtype, model_dtype = ck::DType::kFloat32;
  if (!fused_op_active(FusedOp::kAdamW, master) || !kernel_dtype(step.grad.scalar_type(), &grad_dtype) ||
      (step.model.defined() && !kernel_dtype(step.model.scalar_type(), &model_dtype))) {
    return false;
  }
  for (const torch::Tensor* t : {&step.master, &step.exp_avg, &step.exp_avg_sq, &step.grad, &step.model}) {
    if (!t->defined()) continue;
    if (t->device() != master.device() || !t->is_contiguous() || t->numel() != master.numel()) return false;
  }
  if (step.master.scalar_type() != torch::kFloat32 || step.exp_avg.scalar_type() != torch::kFloat32 ||
      step.exp_avg_sq.scalar_type() != torch::kFloat32) {
    return false;
  }
  const c10::cuda::CUDAGuard guard(master.device());
  const torch::Tensor multiplier = step.grad_multiplier.to(master.device(), torch::kFloat32).contiguous();
  ck::AdamWStepArgs a;
  a.master = master.data_ptr();
  a.exp_avg = step.exp_avg.data_ptr();
  a.exp_avg_sq = step.exp_avg_sq.data_ptr();
  a.grad = step.grad.data_ptr();
  a.model = step.model.defined() ? step.model.data_ptr() : nullptr;
  a.multiplier = multiplier.data_ptr();
  a.n = master.numel();
  // The scalars as LibTorch passes them to its kernels: computed in double, rounded to float once.
  a.decay = static_cast<float>(1.0 - step.lr * step.weight_decay);
  a.one_minus_beta1 = static_cast<float>(1.0 - step.beta1);
  a.beta2 = static_cast<float>(step.beta2);
  a.one_minus_beta2 = static_cast<float>(1.0 - step.beta2);
  a.bias_correction2_sqrt = static_cast<float>(step.bias_correction2_sqrt);
  a.eps = static_cast<float>(step.eps);
  a.neg_step_size = static_cast<float>(-step.step_size);
  a.grad_dtype = grad_dtype;
  a.model_dtype = model_dtype;
  a.stream = current_stream(master);
  check_kernel(ck::adamw_step(a), "adamw_step");
  return true;
#else
  (void)step;
  return false;
#endif
}

}  // namespace fairdiff
