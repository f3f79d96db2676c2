// Issue 15 item 9: on the CPU an image does not depend on the batch it is made in. `generate --batch-size 4`
// used to change 4 of 40 tiny-sd2 images by 1/255 against batch 1 (oneDNN's batch-dependent convolution kernels,
// and the VAE decoding a batch at once), so a resumed run, which remakes images alone, could differ.
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "diffusion/stable_diffusion.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

TEST(BatchInvariance, CpuImagesEqualBitForBitAloneAndInABatch) {
  StableDiffusionModel model = load_stable_diffusion(test::fixtures_dir() / "tiny-sd2", torch::kCPU, torch::kFloat32);
  StableDiffusionPipeline pipeline(model);
  GenerationRequest request;
  request.prompts = {"a photo of a nurse", "a photo of a CEO", "a photo of a doctor", "a photo of a pilot"};
  request.seeds = {3, 4, 5, 6};
  request.steps = 2;
  request.width = request.height = 64;
  const bool mkldnn_before = at::globalContext().userEnabledMkldnn();
  torch::Tensor batched = pipeline.generate(request);
  EXPECT_EQ(at::globalContext().userEnabledMkldnn(), mkldnn_before) << "generate restores the global setting";
  for (size_t i = 0; i < request.prompts.size(); ++i) {
    GenerationRequest alone = request;
    alone.prompts = {request.prompts[i]};
    alone.seeds = {request.seeds[i]};
    torch::Tensor one = pipeline.generate(alone);
    EXPECT_TRUE(torch::equal(one[0], batched[static_cast<int64_t>(i)]))
        << "image " << i << " differs by up to "
        << (one[0] - batched[static_cast<int64_t>(i)]).abs().max().item<float>();
  }
}

}  // namespace
}  // namespace fairdiff
