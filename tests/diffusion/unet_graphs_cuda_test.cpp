// The UNet's CUDA graphs (diffusion/cuda/unet_graphs.h) on the GPU: a replayed forward equals the eager one, a
// graph is captured once per input shape and again when the weights are replaced, and a whole generation gives
// the same images with graphs on and off (on the built-in model, which travels with the tree). Skipped, with the
// reason, where the build has no CUDA or there is no CUDA device; bench/side_by_side.sh runs it on the GPU host.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "diffusion/cuda/unet_graphs.h"
#include "diffusion/stable_diffusion.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

class UNetGraphsCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_graphs_enabled())
      GTEST_SKIP() << "this build has no CUDA graphs (configure with a CUDA LibTorch and nvcc) or they are off";
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
  void TearDown() override { set_cuda_graphs(true); }
};

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().max().item<double>();
}

TEST_F(UNetGraphsCuda, ReplayEqualsEagerPerShapeAndRecapturesNewWeights) {
  torch::NoGradGuard no_grad;
  const torch::Device cuda(torch::kCUDA, 0);
  for (torch::Dtype dtype : {torch::kFloat32, torch::kFloat16}) {
    StableDiffusionModel model = load_stable_diffusion(test::source_dir() / "models/builtin", cuda, dtype);
    model.unet->eval();
    const auto& config = model.unet->config();
    auto options = torch::TensorOptions().device(cuda).dtype(dtype);
    UNetGraphs graphs;
    for (int64_t batch : {2, 4, 2}) {
      for (double step : {981.0, 501.0, 1.0}) {
        torch::manual_seed(static_cast<uint64_t>(batch * 1000 + static_cast<int64_t>(step)));
        const torch::Tensor sample = torch::randn({batch, config.in_channels, 8, 8}, options);
        const torch::Tensor context = torch::randn({batch, 77, config.cross_attention_dim}, options);
        const torch::Tensor t = torch::full({1}, step, torch::TensorOptions().device(cuda));
        const torch::Tensor eager = model.unet->forward(sample, t, context);
        const torch::Tensor replayed = graphs.forward(model.unet, sample, t, context);
        // The same kernels on the same inputs: equal up to the attention backend's own run-to-run rounding.
        EXPECT_LE(max_abs_diff(eager, replayed), dtype == torch::kFloat32 ? 1e-5 : 2e-3)
            << "batch " << batch << " t " << step << " dtype " << dtype;
      }
    }
    EXPECT_EQ(graphs.captured(), 2) << "one graph per input shape (batch 2 and 4)";

    torch::manual_seed(7);
    const torch::Tensor sample = torch::randn({2, config.in_channels, 8, 8}, options);
    const torch::Tensor context = torch::randn({2, 77, config.cross_attention_dim}, options);
    const torch::Tensor t = torch::full({1}, 300.0, torch::TensorOptions().device(cuda));
    const double tolerance = dtype == torch::kFloat32 ? 1e-5 : 2e-3;
    // Weights updated in place: the graph reads them where they are.
    torch::Tensor weight = model.unet->conv_out->weight;
    weight.mul_(0.5);
    EXPECT_LE(max_abs_diff(model.unet->forward(sample, t, context), graphs.forward(model.unet, sample, t, context)),
              tolerance);
    EXPECT_EQ(graphs.captured(), 2);
    // Weights replaced (new storage, as when a file is loaded into the module): captured again.
    weight.set_data(weight.detach() * 3);
    EXPECT_LE(max_abs_diff(model.unet->forward(sample, t, context), graphs.forward(model.unet, sample, t, context)),
              tolerance);
    EXPECT_EQ(graphs.captured(), 1);
  }
}

TEST_F(UNetGraphsCuda, GenerationIsTheSameWithAndWithoutGraphs) {
  const torch::Device cuda(torch::kCUDA, 0);
  StableDiffusionModel model = load_stable_diffusion(test::source_dir() / "models/builtin", cuda, torch::kFloat32);
  GenerationRequest request;
  request.prompts = {"A photo of a nurse", "A photo of a CEO"};
  request.seeds = {0, 1};
  request.steps = 10;
  request.width = 64;
  request.height = 64;
  StableDiffusionPipeline with_graphs(model);
  const torch::Tensor a = with_graphs.generate(request);
  set_cuda_graphs(false);
  StableDiffusionPipeline eager(model);
  const torch::Tensor b = eager.generate(request);
  EXPECT_LE(max_abs_diff(a, b), 1e-5);
}

}  // namespace
}  // namespace fairdiff
