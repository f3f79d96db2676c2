// The fused CUDA kernels (diffusion/cuda/fused_ops.h) on UNet- and VAE-sized shapes, the correctness harness
// that was `fairdiff bench fused-ops`: each kernel against LibTorch's composition in the same dtype and in
// float32, passing when the kernel is within twice LibTorch's own rounding error of the float32 result (plus a
// per-dtype tolerance). Skipped, with the reason, where the kernels are not compiled in or there is no CUDA
// device; bench/run_gpu.sh's tests mode runs it on the GPU host.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "diffusion/cuda/fused_ops.h"

namespace fairdiff {
namespace {

using Inputs = std::vector<torch::Tensor>;

struct Case {
  std::string name;
  std::function<torch::Tensor(const Inputs&)> op;
  Inputs inputs;
  bool large = false;  // a UNet-sized shape (batch 32 with guidance)
  // The output's layout: NHWC when the activations are channels-last (group_norm_tokens: [N, HW, C] always).
  torch::MemoryFormat format = torch::MemoryFormat::Contiguous;
};

// The case with its 4-d activations (every input shaped like the first) in channels-last memory.
Case channels_last(Case c, bool tokens_out = false) {
  const auto shape = c.inputs[0].sizes().vec();
  for (auto& t : c.inputs)
    if (t.defined() && t.sizes().vec() == shape) t = t.contiguous(torch::MemoryFormat::ChannelsLast);
  c.name += " channels-last";
  if (!tokens_out) c.format = torch::MemoryFormat::ChannelsLast;
  return c;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().max().item<double>();
}

Inputs to_float32(const Inputs& inputs) {
  Inputs out;
  for (const auto& t : inputs) out.push_back(t.defined() ? t.to(torch::kFloat32) : t);
  return out;
}

// Absolute tolerance per unit of output magnitude, beyond twice LibTorch's own rounding error.
double tolerance(torch::ScalarType type) {
  return type == torch::kFloat32 ? 2e-5 : type == torch::kFloat16 ? 1e-3 : 8e-3;
}

std::vector<Case> make_cases(torch::Device device) {
  auto opts = [&](torch::ScalarType t) { return torch::TensorOptions().device(device).dtype(t); };
  // Activations with a mean far from zero, as after a convolution: the statistics must not cancel.
  auto act = [&](std::vector<int64_t> shape, torch::ScalarType t) { return (torch::randn(shape, opts(t)) * 2 + 3); };
  auto weight = [&](int64_t c, torch::ScalarType t) { return torch::randn({c}, opts(t)) * 0.5 + 1; };
  auto small = [&](std::vector<int64_t> shape, torch::ScalarType t) { return torch::randn(shape, opts(t)) * 0.5; };
  const auto f16 = torch::kFloat16, f32 = torch::kFloat32, bf16 = torch::kBFloat16;

  auto gn = [](int64_t groups, double eps, bool silu) {
    return [=](const Inputs& in) { return group_norm_act(in[0], groups, in[1], in[2], eps, silu, in[3]); };
  };
  auto gn_case = [&](std::string name, std::vector<int64_t> shape, int64_t groups, bool silu, int shift_kind,
                     torch::ScalarType t, bool large, double eps = 1e-5) {
    const int64_t n = shape[0], c = shape[1];
    torch::Tensor shift = shift_kind == 0 ? torch::Tensor() : shift_kind == 1 ? small({c}, t) : small({n, c}, t);
    return Case{std::move(name), gn(groups, eps, silu), {act(shape, t), weight(c, t), small({c}, t), shift}, large};
  };
  std::vector<Case> cases;
  cases.push_back(gn_case("group_norm_silu fp16 [64,320,64,64] g32", {64, 320, 64, 64}, 32, true, 0, f16, true));
  cases.push_back(
      gn_case("group_norm_silu+shift[B,C] fp16 [64,640,32,32] g32", {64, 640, 32, 32}, 32, true, 2, f16, true));
  cases.push_back(
      gn_case("group_norm_silu fp16 [64,960,64,64] g32 (split)", {64, 960, 64, 64}, 32, true, 0, f16, true));
  cases.push_back(
      gn_case("group_norm_silu fp16 [2,320,64,64] g32 (batch 1)", {2, 320, 64, 64}, 32, true, 2, f16, true));
  cases.push_back(gn_case("group_norm_silu fp16 [3,96,7,9] g32", {3, 96, 7, 9}, 32, true, 0, f16, false));
  cases.push_back(gn_case("group_norm+shift[C] fp16 [1,30,7,9] g6", {1, 30, 7, 9}, 6, false, 1, f16, false));
  cases.push_back(gn_case("group_norm_silu+shift[B,C] bf16 [3,64,9,7] g32", {3, 64, 9, 7}, 32, true, 2, bf16, false));
  cases.push_back(
      gn_case("group_norm_silu fp16 [1,64,127,127] g2 (split, scalar)", {1, 64, 127, 127}, 2, true, 2, f16, false));
  cases.push_back(gn_case("group_norm_silu fp32 [4,128,256,256] g32 (VAE, split)", {4, 128, 256, 256}, 32, true, 1, f32,
                          true, 1e-6));
  cases.push_back(gn_case("group_norm fp32 [3,30,7,9] g6", {3, 30, 7, 9}, 6, false, 0, f32, false));
  // Channels-last (batch 1 runs the UNet in NHWC): the NHWC kernels, vectorised and not, with both shifts.
  cases.push_back(channels_last(
      gn_case("group_norm_silu+shift[B,C] fp16 [2,320,64,64] g32", {2, 320, 64, 64}, 32, true, 2, f16, true)));
  cases.push_back(
      channels_last(gn_case("group_norm_silu fp16 [2,1280,8,8] g32", {2, 1280, 8, 8}, 32, true, 0, f16, false)));
  cases.push_back(channels_last(
      gn_case("group_norm_silu fp16 [64,640,32,32] g32 (batch 32)", {64, 640, 32, 32}, 32, true, 1, f16, true)));
  cases.push_back(channels_last(
      gn_case("group_norm+shift[C] fp16 [1,30,7,9] g6 (scalar)", {1, 30, 7, 9}, 6, false, 1, f16, false)));
  cases.push_back(channels_last(
      gn_case("group_norm_silu+shift[B,C] bf16 [3,64,9,7] g32", {3, 64, 9, 7}, 32, true, 2, bf16, false)));
  cases.push_back(channels_last(gn_case("group_norm fp32 [2,96,5,6] g32", {2, 96, 5, 6}, 32, false, 0, f32, false)));
  // 2560 channels (the UNet's concatenations at 8x8 and 16x16): 320 packs a pixel, 512 threads a block.
  cases.push_back(channels_last(
      gn_case("group_norm_silu fp16 [64,2560,16,16] g32 (batch 32)", {64, 2560, 16, 16}, 32, true, 0, f16, true)));

  auto upsample = [](const Inputs& in) { return upsample_nearest2x(in[0]); };
  cases.push_back(
      channels_last(Case{"upsample_nearest2x fp16 [64,640,32,32]", upsample, {act({64, 640, 32, 32}, f16)}, true}));
  cases.push_back(
      channels_last(Case{"upsample_nearest2x bf16 [3,40,5,7]", upsample, {act({3, 40, 5, 7}, bf16)}, false}));
  cases.push_back(
      channels_last(Case{"upsample_nearest2x fp32 [2,3,5,4] (scalar)", upsample, {act({2, 3, 5, 4}, f32)}, false}));

  auto tokens_case = [&](std::string name, std::vector<int64_t> shape, int64_t groups, torch::ScalarType t,
                         bool large) {
    auto norm = std::make_shared<torch::nn::GroupNormImpl>(torch::nn::GroupNormOptions(groups, shape[1]).eps(1e-6));
    norm->to(device, t);
    {
      torch::NoGradGuard no_grad;
      norm->weight.copy_(weight(shape[1], t));
      norm->bias.copy_(small({shape[1]}, t));
    }
    // The module's parameters stay in its dtype; the float32 reference runs a float32 copy.
    auto norm32 = std::make_shared<torch::nn::GroupNormImpl>(norm->options);
    norm32->to(device, torch::kFloat32);
    {
      torch::NoGradGuard no_grad;
      norm32->weight.copy_(norm->weight);
      norm32->bias.copy_(norm->bias);
    }
    auto op = [norm, norm32](const Inputs& in) {
      return group_norm_tokens(in[0], in[0].scalar_type() == torch::kFloat32 ? *norm32 : *norm);
    };
    return Case{std::move(name), op, {act(shape, t)}, large};
  };
  cases.push_back(tokens_case("group_norm_tokens fp16 [64,320,64,64] g32", {64, 320, 64, 64}, 32, f16, true));
  cases.push_back(tokens_case("group_norm_tokens fp16 [3,96,7,9] g32", {3, 96, 7, 9}, 32, f16, false));
  cases.push_back(tokens_case("group_norm_tokens bf16 [1,30,5,5] g6", {1, 30, 5, 5}, 6, bf16, false));
  cases.push_back(
      channels_last(tokens_case("group_norm_tokens fp16 [2,640,32,32] g32", {2, 640, 32, 32}, 32, f16, true), true));

  auto geglu_op = [](const Inputs& in) { return geglu(in[0]); };
  cases.push_back(Case{"geglu fp16 [64,4096,2x1280]", geglu_op, {small({64, 4096, 2560}, f16) * 4}, true});
  cases.push_back(Case{"geglu fp16 [3,63,2x37]", geglu_op, {small({3, 63, 74}, f16) * 4}, false});
  cases.push_back(Case{"geglu bf16 [2,10,2x40]", geglu_op, {small({2, 10, 80}, bf16) * 4}, false});

  auto residual = [](double scale) {
    return [=](const Inputs& in) { return bias_residual_add(in[0], in[1], in[2], in[3], scale); };
  };
  auto res_case = [&](std::string name, std::vector<int64_t> shape, bool shortcut_bias, double scale,
                      torch::ScalarType t, bool large) {
    const int64_t c = shape[1];
    return Case{std::move(name),
                residual(scale),
                {act(shape, t), small(shape, t), small({c}, t), shortcut_bias ? small({c}, t) : torch::Tensor()},
                large};
  };
  cases.push_back(res_case("bias_residual_add fp16 [64,320,64,64]", {64, 320, 64, 64}, true, 1.0, f16, true));
  cases.push_back(res_case("bias_residual_add fp16 [3,30,7,9] /2", {3, 30, 7, 9}, true, 2.0, f16, false));
  cases.push_back(res_case("bias_residual_add fp32 [1,96,8,8]", {1, 96, 8, 8}, false, 1.0, f32, false));
  cases.push_back(
      channels_last(res_case("bias_residual_add fp16 [2,320,64,64]", {2, 320, 64, 64}, true, 1.0, f16, true)));
  cases.push_back(
      channels_last(res_case("bias_residual_add fp16 [3,30,7,9] /2", {3, 30, 7, 9}, false, 2.0, f16, false)));

  // The residual sum and the LayerNorm of it, stacked: both outputs of the kernel are held to the bound.
  auto add_ln = [](const Inputs& in) {
    auto [sum, normed] = add_layer_norm(in[0], in[1], in[2], in[3], 1e-5);
    return torch::stack({sum, normed});
  };
  auto ln_case = [&](std::string name, std::vector<int64_t> shape, bool with_delta, torch::ScalarType t, bool large) {
    const int64_t c = shape.back();
    return Case{std::move(name),
                add_ln,
                {act(shape, t), with_delta ? small(shape, t) : torch::Tensor(), weight(c, t), small({c}, t)},
                large};
  };
  cases.push_back(ln_case("add_layer_norm fp16 [64,4096,320]", {64, 4096, 320}, true, f16, true));
  cases.push_back(ln_case("add_layer_norm fp16 [64,256,1280]", {64, 256, 1280}, true, f16, true));
  cases.push_back(ln_case("layer_norm fp16 [64,1024,640]", {64, 1024, 640}, false, f16, true));
  cases.push_back(ln_case("add_layer_norm fp16 [3,7,40]", {3, 7, 40}, true, f16, false));
  cases.push_back(ln_case("add_layer_norm fp16 [3,7,37] (scalar)", {3, 7, 37}, true, f16, false));
  cases.push_back(ln_case("add_layer_norm bf16 [2,5,1280]", {2, 5, 1280}, true, bf16, false));
  cases.push_back(ln_case("add_layer_norm fp32 [4,16,320]", {4, 16, 320}, true, f32, false));
  cases.push_back(ln_case("add_layer_norm fp16 [2,3,4104] (too long: LibTorch)", {2, 3, 4104}, true, f16, false));

  auto tokens_add = [](const Inputs& in) { return add_tokens_to_nchw(in[0], in[1]); };
  auto add_case = [&](std::string name, int64_t n, int64_t c, int64_t h, int64_t w, torch::ScalarType t, bool large) {
    return Case{std::move(name), tokens_add, {act({n, c, h, w}, t), small({n, h * w, c}, t)}, large};
  };
  cases.push_back(add_case("add_tokens_to_nchw fp16 [64,320,64,64]", 64, 320, 64, 64, f16, true));
  cases.push_back(add_case("add_tokens_to_nchw fp16 [3,30,7,9]", 3, 30, 7, 9, f16, false));
  cases.push_back(add_case("add_tokens_to_nchw bf16 [2,40,33,31]", 2, 40, 33, 31, bf16, false));
  {
    Case c = add_case("add_tokens_to_nchw fp16 [2,320,64,64]", 2, 320, 64, 64, f16, true);
    c.inputs[0] = c.inputs[0].contiguous(torch::MemoryFormat::ChannelsLast);
    c.name += " channels-last";
    c.format = torch::MemoryFormat::ChannelsLast;
    cases.push_back(c);
  }
  return cases;
}

TEST(FusedOpsCudaShapes, KernelsMatchLibTorchWithinItsRounding) {
  if (!fused_kernels_compiled()) {
    GTEST_SKIP() << "this build has no fused CUDA kernels (configure with a CUDA LibTorch and nvcc, "
                    "FAIRDIFF_CUDA_KERNELS=AUTO or ON)";
  }
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const std::string previous = fused_ops_spec();
  for (const Case& c : make_cases(torch::Device(torch::kCUDA))) {
    const torch::ScalarType type = c.inputs[0].scalar_type();
    set_fused_ops("none");
    const torch::Tensor reference = c.op(c.inputs);
    const torch::Tensor exact = c.op(to_float32(c.inputs));
    set_fused_ops("all");
    const torch::Tensor fused = c.op(c.inputs);
    EXPECT_EQ(fused.sizes(), reference.sizes()) << c.name;
    EXPECT_TRUE(fused.is_contiguous(c.format)) << c.name;
    const double d_torch_exact = max_abs_diff(reference, exact);
    const double d_fused_exact = max_abs_diff(fused, exact);
    const double magnitude = std::max(1.0, exact.abs().max().item<double>());
    EXPECT_LE(d_fused_exact, 2 * d_torch_exact + tolerance(type) * magnitude)
        << c.name << ": |fused - fp32| " << d_fused_exact << ", |torch - fp32| " << d_torch_exact
        << ", |fused - torch| " << max_abs_diff(fused, reference);
  }
  set_fused_ops(previous);
}

// The fused AdamW update against AdamW's formula evaluated in float64 on the CPU from the same inputs (not
// LibTorch's composition): masters, both moments and the compute-dtype copy, over an odd length (the grid's tail),
// gradients in fp32 and bf16, a late step (bias corrections near 1) and the first.
TEST(FusedOpsCudaShapes, AdamWStepMatchesTheFormulaInFloat64) {
  if (!fused_kernels_compiled()) GTEST_SKIP() << "this build has no fused CUDA kernels";
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  const torch::Device cuda(torch::kCUDA);
  const int64_t n = 1000003;
  for (torch::Dtype grad_dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (int64_t step : {1, 40}) {
      const torch::Tensor master0 = torch::randn({n}) * 0.1;
      const torch::Tensor m0 = step == 1 ? torch::zeros({n}) : torch::randn({n}) * 1e-3;
      const torch::Tensor v0 = step == 1 ? torch::zeros({n}) : torch::rand({n}) * 1e-6;
      const torch::Tensor grad = (torch::randn({n}) * 1e-3).to(grad_dtype);
      FusedAdamWStep s;
      s.master = master0.to(cuda);
      s.exp_avg = m0.to(cuda);
      s.exp_avg_sq = v0.to(cuda);
      s.grad = grad.to(cuda);
      s.model = torch::empty({n}, torch::TensorOptions().device(cuda).dtype(torch::kBFloat16));
      s.grad_multiplier = torch::full({}, 0.75f);
      s.lr = 1e-4;
      s.weight_decay = 1e-2;
      s.eps = 1e-8;
      const double bc1 = 1.0 - std::pow(s.beta1, static_cast<double>(step));
      const double bc2 = 1.0 - std::pow(s.beta2, static_cast<double>(step));
      s.step_size = s.lr / bc1;
      s.bias_correction2_sqrt = std::sqrt(bc2);
      ASSERT_TRUE(fused_adamw_step(s)) << "the kernel should take flat CUDA buffers";

      const torch::Tensor g = grad.to(torch::kFloat64) * 0.75;
      const torch::Tensor m = m0.to(torch::kFloat64) * s.beta1 + g * (1.0 - s.beta1);
      const torch::Tensor v = v0.to(torch::kFloat64) * s.beta2 + g * g * (1.0 - s.beta2);
      const torch::Tensor p = master0.to(torch::kFloat64) * (1.0 - s.lr * s.weight_decay) -
                              s.step_size * m / (v.sqrt() / s.bias_correction2_sqrt + s.eps);
      const std::string what = std::string("grad ") + c10::toString(grad_dtype) + ", step " + std::to_string(step);
      // float32 arithmetic on each element: a few ulps of each quantity.
      EXPECT_LT((s.exp_avg.cpu().to(torch::kFloat64) - m).abs().max().item<double>(),
                4e-7 * m.abs().max().item<double>())
          << what;
      EXPECT_LT((s.exp_avg_sq.cpu().to(torch::kFloat64) - v).abs().max().item<double>(),
                4e-7 * v.abs().max().item<double>())
          << what;
      // Updates are about lr = 1e-4 per element; the masters' float32 rounding is a few ulps (6e-8 relative), far
      // below any error in the formula.
      EXPECT_LT((s.master.cpu().to(torch::kFloat64) - p).abs().max().item<double>(),
                3e-7 * p.abs().max().item<double>())
          << what;
      EXPECT_TRUE(torch::equal(s.model.cpu(), s.master.cpu().to(torch::kBFloat16))) << what;
    }
  }
}

}  // namespace
}  // namespace fairdiff
