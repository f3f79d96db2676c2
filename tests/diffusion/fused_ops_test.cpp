// The fused inference ops (diffusion/cuda/fused_ops.h): on CPU each is exactly the LibTorch composition it
// replaces; on CUDA (where the kernels are compiled in) each kernel matches that composition within the
// rounding of the activation dtype. The GPU host has no GoogleTest: `fairdiff bench fused-ops` runs the same
// comparison there on UNet-sized shapes.
#include "diffusion/cuda/fused_ops.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "diffusion/resnet.h"

namespace fairdiff {
namespace {

torch::Tensor per_channel(const torch::Tensor& v) {
  return v.view({1, -1, 1, 1});
}

void expect_identical(const torch::Tensor& a, const torch::Tensor& b) {
  ASSERT_EQ(a.sizes(), b.sizes());
  EXPECT_TRUE(torch::equal(a, b)) << "max abs diff " << (a - b).abs().max().item<double>();
}

struct GroupNormShape {
  std::vector<int64_t> shape;
  int64_t groups;
};

const std::vector<GroupNormShape> kGroupNormShapes = {
    {{1, 32, 7, 9}, 32}, {{3, 96, 7, 9}, 32}, {{3, 30, 7, 9}, 6}, {{1, 64, 16, 16}, 32}};

TEST(FusedOpsCpu, GroupNormActIsTheLibTorchComposition) {
  torch::manual_seed(0);
  for (const auto& [shape, groups] : kGroupNormShapes) {
    const int64_t n = shape[0], c = shape[1];
    torch::Tensor x = torch::randn(shape) * 2 + 3;
    torch::Tensor w = torch::randn({c}), b = torch::randn({c});
    torch::Tensor shift_c = torch::randn({c}), shift_nc = torch::randn({n, c});
    expect_identical(group_norm_act(x, groups, w, b, 1e-5, true),
                     torch::silu(torch::group_norm(x, groups, w, b, 1e-5)));
    expect_identical(group_norm_act(x, groups, w, b, 1e-6, false), torch::group_norm(x, groups, w, b, 1e-6));
    expect_identical(group_norm_act(x, groups, w, b, 1e-5, true, shift_c),
                     torch::silu(torch::group_norm(x + per_channel(shift_c), groups, w, b, 1e-5)));
    expect_identical(group_norm_act(x, groups, w, b, 1e-5, true, shift_nc),
                     torch::silu(torch::group_norm(x + shift_nc.unsqueeze(-1).unsqueeze(-1), groups, w, b, 1e-5)));
  }
}

TEST(FusedOpsCpu, GroupNormTokensIsNormThenPermute) {
  torch::manual_seed(1);
  torch::nn::GroupNorm norm(torch::nn::GroupNormOptions(6, 30).eps(1e-6));
  torch::Tensor x = torch::randn({3, 30, 7, 9});
  expect_identical(group_norm_tokens(x, *norm), norm(x).permute({0, 2, 3, 1}).reshape({3, 63, 30}));
}

TEST(FusedOpsCpu, GegluIsValueTimesGeluOfGate) {
  torch::manual_seed(2);
  torch::Tensor proj = torch::randn({3, 63, 74});
  auto parts = proj.chunk(2, -1);
  expect_identical(geglu(proj), parts[0] * torch::gelu(parts[1]));
}

TEST(FusedOpsCpu, BiasResidualAddIsTheLibTorchComposition) {
  torch::manual_seed(3);
  torch::Tensor sc = torch::randn({3, 30, 7, 9}), h = torch::randn({3, 30, 7, 9});
  torch::Tensor hb = torch::randn({30}), sb = torch::randn({30});
  expect_identical(bias_residual_add(sc, h, hb, sb, 1.0), (sc + per_channel(sb)) + (h + per_channel(hb)));
  expect_identical(bias_residual_add(sc, h, hb, {}, 2.0), (sc + (h + per_channel(hb))) / 2.0);
  expect_identical(bias_residual_add(sc, h, {}, {}, 1.0), sc + h);
}

TEST(FusedOpsCpu, AddTokensIsPermuteThenAdd) {
  torch::manual_seed(4);
  torch::Tensor x = torch::randn({3, 30, 7, 9}), tokens = torch::randn({3, 63, 30});
  expect_identical(add_tokens_to_nchw(x, tokens), tokens.reshape({3, 7, 9, 30}).permute({0, 3, 1, 2}) + x);
}

TEST(FusedOpsCpu, OpsAreInactiveOnCpu) {
  torch::Tensor x = torch::randn({1, 32, 4, 4});
  EXPECT_FALSE(fused_op_active(FusedOp::kGroupNorm, x));
  EXPECT_FALSE(fused_op_active(FusedOp::kTokens, x));
}

TEST(FusedOpsSpec, ParsesAndRejects) {
  const std::string previous = fused_ops_spec();
  set_fused_ops("none");
  EXPECT_EQ(fused_ops_spec(), "none");
  set_fused_ops("geglu,groupnorm");
  EXPECT_EQ(fused_ops_spec(), "groupnorm,geglu");
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

TEST_F(FusedOpsCuda, ResnetBlockMatchesUnfused) {
  torch::manual_seed(7);
  ResnetBlock2D block(ResnetOptions{64, 96, 32, 32, 1e-5, 1.0});
  block->to(torch::kCUDA, torch::kFloat16);
  block->eval();
  auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat16);
  torch::Tensor x = torch::randn({3, 64, 9, 7}, opts), temb = torch::randn({3, 32}, opts);
  EXPECT_LE(kernel_vs_torch([&] { return block->forward(x, temb); }), 3e-2);
}

}  // namespace
}  // namespace fairdiff
