// The fused inference ops (diffusion/cuda/fused_ops.h). On CPU each op runs its LibTorch fallback; it is
// checked here against a reference written independently of it (double precision, from the definitions:
// group statistics by hand, SiLU as x * sigmoid(x), GELU from erf, layouts by explicit transposition). On CUDA
// (where the kernels are compiled in) each kernel matches the fallback within the rounding of the activation
// dtype, here on small shapes and in fused_ops_cuda_test.cpp on UNet-sized ones.
#include "diffusion/cuda/fused_ops.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>

#include "diffusion/attention_blocks.h"
#include "diffusion/resnet.h"

namespace fairdiff {
namespace {

// Within float32 rounding of a double-precision reference.
void expect_close(const torch::Tensor& actual, const torch::Tensor& reference) {
  ASSERT_EQ(actual.sizes(), reference.sizes());
  const torch::Tensor a = actual.to(torch::kFloat64), r = reference.to(torch::kFloat64);
  const double scale = std::max(1.0, r.abs().max().item<double>());
  EXPECT_LE((a - r).abs().max().item<double>(), 2e-5 * scale);
}

// GroupNorm from its definition: per (sample, group) mean and biased variance over channels x pixels.
torch::Tensor reference_group_norm(const torch::Tensor& x, int64_t groups, const torch::Tensor& w,
                                   const torch::Tensor& b, double eps) {
  const torch::Tensor x64 = x.to(torch::kFloat64);
  const int64_t n = x.size(0), c = x.size(1);
  const torch::Tensor g = x64.reshape({n, groups, -1});  // [N, G, C/G * H * W]
  const torch::Tensor mean = g.sum(-1, true) / g.size(-1);
  const torch::Tensor var = (g - mean).pow(2).sum(-1, true) / g.size(-1);
  const torch::Tensor y = ((g - mean) / (var + eps).sqrt()).reshape(x.sizes());
  return y * w.to(torch::kFloat64).view({1, c, 1, 1}) + b.to(torch::kFloat64).view({1, c, 1, 1});
}

torch::Tensor reference_silu(const torch::Tensor& y) {
  return y / (1.0 + (-y).exp());
}

// [B, C, H, W] -> tokens [B, H * W, C], element by element through flatten + transpose.
torch::Tensor reference_tokens(const torch::Tensor& y) {
  return y.flatten(2).transpose(1, 2);
}

struct GroupNormShape {
  std::vector<int64_t> shape;
  int64_t groups;
};

const std::vector<GroupNormShape> kGroupNormShapes = {
    {{1, 32, 7, 9}, 32}, {{3, 96, 7, 9}, 32}, {{3, 30, 7, 9}, 6}, {{1, 64, 16, 16}, 32}};

TEST(FusedOpsCpu, GroupNormActMatchesItsDefinition) {
  torch::manual_seed(0);
  for (const auto& [shape, groups] : kGroupNormShapes) {
    const int64_t n = shape[0], c = shape[1];
    torch::Tensor x = torch::randn(shape) * 2 + 3;
    torch::Tensor w = torch::randn({c}), b = torch::randn({c});
    torch::Tensor shift_c = torch::randn({c}), shift_nc = torch::randn({n, c});
    expect_close(group_norm_act(x, groups, w, b, 1e-5, true),
                 reference_silu(reference_group_norm(x, groups, w, b, 1e-5)));
    expect_close(group_norm_act(x, groups, w, b, 1e-6, false), reference_group_norm(x, groups, w, b, 1e-6));
    expect_close(group_norm_act(x, groups, w, b, 1e-5, true, shift_c),
                 reference_silu(reference_group_norm(x + shift_c.view({1, c, 1, 1}), groups, w, b, 1e-5)));
    expect_close(group_norm_act(x, groups, w, b, 1e-5, true, shift_nc),
                 reference_silu(reference_group_norm(x + shift_nc.view({n, c, 1, 1}), groups, w, b, 1e-5)));
  }
}

TEST(FusedOpsCpu, GroupNormTokensIsNormThenTokenLayout) {
  torch::manual_seed(1);
  torch::nn::GroupNorm norm(torch::nn::GroupNormOptions(6, 30).eps(1e-6));
  {
    torch::NoGradGuard no_grad;
    norm->weight.copy_(torch::randn({30}));
    norm->bias.copy_(torch::randn({30}));
  }
  torch::Tensor x = torch::randn({3, 30, 7, 9});
  torch::Tensor tokens = group_norm_tokens(x, *norm);
  expect_close(tokens, reference_tokens(reference_group_norm(x, 6, norm->weight, norm->bias, 1e-6)));
  // One element by hand: token (h, w) = (2, 5) of sample 1, channel 17.
  EXPECT_NEAR(tokens[1][2 * 9 + 5][17].item<double>(), norm(x)[1][17][2][5].item<double>(), 1e-6);
}

TEST(FusedOpsCpu, GegluIsValueTimesErfGeluOfGate) {
  torch::manual_seed(2);
  torch::Tensor proj = torch::randn({3, 63, 74});
  const torch::Tensor p = proj.to(torch::kFloat64);
  const torch::Tensor value = p.narrow(-1, 0, 37), gate = p.narrow(-1, 37, 37);
  expect_close(geglu(proj), value * 0.5 * gate * (1.0 + (gate / std::sqrt(2.0)).erf()));
}

TEST(FusedOpsCpu, BiasResidualAddMatchesItsDefinition) {
  torch::manual_seed(3);
  torch::Tensor sc = torch::randn({3, 30, 7, 9}), h = torch::randn({3, 30, 7, 9});
  torch::Tensor hb = torch::randn({30}), sb = torch::randn({30});
  const auto d = [](const torch::Tensor& t) { return t.to(torch::kFloat64); };
  const torch::Tensor hb4 = d(hb).view({1, 30, 1, 1}), sb4 = d(sb).view({1, 30, 1, 1});
  expect_close(bias_residual_add(sc, h, hb, sb, 1.0), d(sc) + sb4 + d(h) + hb4);
  expect_close(bias_residual_add(sc, h, hb, {}, 2.0), (d(sc) + d(h) + hb4) * 0.5);
  expect_close(bias_residual_add(sc, h, {}, {}, 1.0), d(sc) + d(h));
}

TEST(FusedOpsCpu, AddTokensReadsTokensAsChannelsLast) {
  torch::manual_seed(4);
  torch::Tensor x = torch::randn({3, 30, 7, 9}), tokens = torch::randn({3, 63, 30});
  torch::Tensor out = add_tokens_to_nchw(x, tokens);
  expect_close(out, x.to(torch::kFloat64) + tokens.to(torch::kFloat64).transpose(1, 2).reshape({3, 30, 7, 9}));
  // Token (h, w) = (4, 2) of sample 2, channel 11 lands at [2, 11, 4, 2].
  EXPECT_NEAR(out[2][11][4][2].item<double>(), (x[2][11][4][2] + tokens[2][4 * 9 + 2][11]).item<double>(), 1e-6);
}

TEST(FusedOpsCpu, AddLayerNormIsAddThenLayerNormOverTheLastDimension) {
  torch::manual_seed(8);
  torch::Tensor x = torch::randn({3, 7, 40}) * 2 + 3, delta = torch::randn({3, 7, 40});
  torch::Tensor w = torch::randn({40}), b = torch::randn({40});
  const torch::Tensor s = x.to(torch::kFloat64) + delta.to(torch::kFloat64);
  const torch::Tensor mean = s.mean(-1, true), var = (s - mean).pow(2).mean(-1, true);
  const torch::Tensor normed = (s - mean) / (var + 1e-5).sqrt() * w.to(torch::kFloat64) + b.to(torch::kFloat64);
  auto [sum, out] = add_layer_norm(x, delta, w, b, 1e-5);
  expect_close(sum, s);
  expect_close(out, normed);
  auto [same, out_alone] = add_layer_norm(s.to(torch::kFloat32), {}, w, b, 1e-5);
  EXPECT_TRUE(torch::equal(same, s.to(torch::kFloat32)));
  expect_close(out_alone, normed);
}

TEST(FusedOpsCpu, OpsAreInactiveOnCpu) {
  torch::Tensor x = torch::randn({1, 32, 4, 4});
  EXPECT_FALSE(fused_op_active(FusedOp::kGroupNorm, x));
  EXPECT_FALSE(fused_op_active(FusedOp::kTokens, x));
  EXPECT_FALSE(fused_op_active(FusedOp::kLayerNorm, x));
  EXPECT_FALSE(upsample_nearest2x_fits(x.contiguous(torch::MemoryFormat::ChannelsLast)));
}

TEST(FusedOpsSpec, ParsesAndRejects) {
  const std::string previous = fused_ops_spec();
  set_fused_ops("none");
  EXPECT_EQ(fused_ops_spec(), "none");
  set_fused_ops("geglu,groupnorm");
  EXPECT_EQ(fused_ops_spec(), "groupnorm,geglu");
  set_fused_ops("upsample,layernorm,adamw,tokens");
  EXPECT_EQ(fused_ops_spec(), "tokens,adamw,layernorm,upsample");
  EXPECT_THROW(set_fused_ops("groupnorm,bogus"), std::exception);
  set_fused_ops("all");
  EXPECT_EQ(fused_ops_spec(), "all");
  set_fused_ops(previous);
}

// ---- CUDA: the kernels against the composition, where this build and machine have them. ----

class FusedOpsCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fused_kernels_compiled() || !torch::cuda::is_available()) GTEST_SKIP() << "no fused CUDA kernels here";
  }
  void TearDown() override { set_fused_ops("all"); }

  // Runs `op` once through LibTorch and once through the kernel; returns the max abs difference.
  template <typename Op>
  double kernel_vs_torch(Op op) {
    torch::NoGradGuard no_grad;
    set_fused_ops("none");
    torch::Tensor reference = op().to(torch::kFloat32);
    set_fused_ops("all");
    torch::Tensor fused = op().to(torch::kFloat32);
    EXPECT_EQ(fused.sizes(), reference.sizes());
    return (fused - reference).abs().max().item<double>();
  }
};

TEST_F(FusedOpsCuda, GroupNormMatchesInHalfPrecision) {
  torch::manual_seed(5);
  auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat16);
  const std::vector<GroupNormShape> shapes = {
      {{1, 96, 7, 9}, 32}, {{3, 96, 64, 64}, 32}, {{3, 30, 7, 9}, 6}, {{1, 64, 127, 127}, 2}};
  for (const auto& [shape, groups] : shapes) {
    const int64_t n = shape[0], c = shape[1];
    torch::Tensor x = torch::randn(shape, opts) * 2 + 3;
    torch::Tensor w = torch::randn({c}, opts), b = torch::randn({c}, opts), s = torch::randn({n, c}, opts);
    EXPECT_LE(kernel_vs_torch([&] { return group_norm_act(x, groups, w, b, 1e-5, true, s); }), 2e-2);
    EXPECT_LE(kernel_vs_torch([&] { return group_norm_act(x, groups, w, b, 1e-6, false); }), 2e-2);
  }
}

TEST_F(FusedOpsCuda, GegluResidualAndTokensMatch) {
  torch::manual_seed(6);
  auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat16);
  torch::Tensor proj = torch::randn({3, 63, 74}, opts);
  EXPECT_LE(kernel_vs_torch([&] { return geglu(proj); }), 2e-3);
  torch::Tensor sc = torch::randn({3, 30, 7, 9}, opts), h = torch::randn({3, 30, 7, 9}, opts);
  torch::Tensor hb = torch::randn({30}, opts), sb = torch::randn({30}, opts);
  EXPECT_LE(kernel_vs_torch([&] { return bias_residual_add(sc, h, hb, sb, 2.0); }), 2e-3);
  torch::Tensor tokens = torch::randn({3, 63, 30}, opts);
  EXPECT_LE(kernel_vs_torch([&] { return add_tokens_to_nchw(sc, tokens); }), 2e-3);
}

TEST_F(FusedOpsCuda, TransformerBlockMatchesUnfused) {
  torch::manual_seed(9);
  BasicTransformerBlock block(64, 2, 32, 48, false);
  block->to(torch::kCUDA, torch::kFloat16);
  block->eval();
  auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat16);
  torch::Tensor x = torch::randn({3, 35, 64}, opts) * 2 + 1, context = torch::randn({3, 11, 48}, opts);
  EXPECT_LE(kernel_vs_torch([&] { return block->forward(x, context); }), 3e-2);
}

TEST_F(FusedOpsCuda, ResnetBlockMatchesUnfused) {
  torch::manual_seed(7);
  ResnetBlock2D block(ResnetOptions{64, 96, 32, 32, 1e-5, 1.0});
  block->to(torch::kCUDA, torch::kFloat16);
  block->eval();
  auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat16);
  torch::Tensor x = torch::randn({3, 64, 9, 7}, opts), temb = torch::randn({3, 32}, opts);
  EXPECT_LE(kernel_vs_torch([&] { return block->forward(x, temb); }), 3e-2);
}

// Upsample2D keeps channels-last activations channels-last on CUDA at batch 64 (the UNet at batch 32 with
// guidance), with the same values as NCHW, and writes outputs of 2^31 elements (LibTorch's channels-last kernel
// cannot: Upsample2D goes through NCHW there when fairdiff's kernel is not compiled in).
TEST(ChannelsLastCuda, UpsamplerStaysChannelsLastWhereLibTorchCanWriteIt) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::NoGradGuard no_grad;
  torch::manual_seed(10);
  auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat16);
  Upsample2D up(32);
  up->to(torch::kCUDA, torch::kFloat16);
  const torch::Tensor x = torch::randn({64, 32, 8, 8}, opts);
  const torch::Tensor nchw = up->forward(x, std::nullopt);
  const torch::Tensor nhwc = up->forward(x.contiguous(torch::MemoryFormat::ChannelsLast), std::nullopt);
  EXPECT_TRUE(nhwc.is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::equal(nchw.contiguous(), nhwc.contiguous()));

  // 32 x 256 x 512 x 512 = 2^31 output elements (fairdiff's kernel where compiled in, else LibTorch through NCHW):
  // the last image upsampled like the first (an identity convolution after the upsampling shows its values).
  Upsample2D big_up(256);
  {
    torch::Tensor w = torch::zeros({256, 256, 3, 3});
    for (int64_t c = 0; c < 256; ++c) w[c][c][1][1] = 1.0;
    big_up->conv->weight.copy_(w);
    big_up->conv->bias.zero_();
  }
  big_up->to(torch::kCUDA, torch::kFloat16);
  const torch::Tensor big = torch::randn({32, 256, 256, 256}, opts).contiguous(torch::MemoryFormat::ChannelsLast);
  const torch::Tensor out = big_up->forward(big, std::nullopt);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{32, 256, 512, 512}));
  for (int64_t i : {0, 31}) {
    // Close, not equal: cuDNN may pick a transform-based algorithm, which rounds even an identity kernel.
    EXPECT_TRUE(torch::allclose(out[i].slice(1, 0, 512, 2).slice(2, 0, 512, 2), big[i], 1e-2, 1e-2)) << "image " << i;
    EXPECT_TRUE(torch::allclose(out[i].slice(1, 1, 512, 2).slice(2, 1, 512, 2), big[i], 1e-2, 1e-2)) << "image " << i;
  }
}

}  // namespace
}  // namespace fairdiff
