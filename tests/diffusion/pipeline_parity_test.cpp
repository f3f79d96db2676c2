// Schedulers and the whole txt2img pipeline against the fixtures: timesteps, every step's latents, the
// decoded image, for PNDM, DDIM, Euler and DPM-Solver++(2M) on tiny-sd1 and tiny-sd2.
#include <gtest/gtest.h>

#include <fstream>

#include "core/attention.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "diffusion/stable_diffusion.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

struct Case {
  std::string model;
  std::string scheduler;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.model + "_" + info.param.scheduler;
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

class PipelineParity : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { set_fused_attention_enabled(false); }
  std::filesystem::path model_dir() const { return test::fixtures_dir() / GetParam().model; }
};

TEST_P(PipelineParity, TimestepsLatentsAndImageMatch) {
  const std::string s = GetParam().scheduler;
  TensorMap ref = read_safetensors(model_dir() / "reference.safetensors").tensors;
  Json info = read_json_file(model_dir() / "reference.json");
  StableDiffusionModel model = load_stable_diffusion(model_dir(), torch::kCPU, torch::kFloat32);

  // Timesteps.
  auto scheduler = make_scheduler(s, model.scheduler_config);
  scheduler->set_timesteps(info.at("num_inference_steps").get<int64_t>());
  torch::Tensor expected_t = ref.at("pipe." + s + ".timesteps").to(torch::kFloat64);
  ASSERT_EQ(static_cast<int64_t>(scheduler->timesteps().size()), expected_t.size(0));
  for (size_t i = 0; i < scheduler->timesteps().size(); ++i) {
    EXPECT_NEAR(scheduler->timesteps()[i], expected_t[i].item<double>(), 1e-3) << "timestep " << i;
  }
  if (s == "euler") {
    EXPECT_NEAR(scheduler->init_noise_sigma(), ref.at("pipe.euler.init_noise_sigma").item<double>(), 1e-5);
  }

  // Every step's latents from the fixture's initial noise.
  StableDiffusionPipeline pipe(model);
  GenerationRequest request;
  request.prompts = {info.at("prompts")[0].get<std::string>()};
  request.negative_prompt = info.at("negative_prompt").get<std::string>();
  request.seeds = {11};
  request.steps = info.at("num_inference_steps").get<int64_t>();
  request.guidance_scale = info.at("guidance_scale").get<double>();
  request.scheduler = s;
  torch::Tensor cond = pipe.encode_prompts(request.prompts);
  torch::Tensor uncond = pipe.encode_prompts({request.negative_prompt});
  torch::Tensor steps = ref.at("pipe." + s + ".step_latents");
  // The fixtures' tolerance for latents: 1e-4 absolute, relative 1e-4 for large magnitudes (Euler's latents
  // start at sigma_max ~ 14.6 times the noise), i.e. allclose(atol = 1e-4, rtol = 1e-4).
  torch::Tensor latents = pipe.denoise(torch::cat({uncond, cond}, 0), ref.at("pipe." + s + ".init_latents"), request,
                                       [&](size_t i, const torch::Tensor& l) {
                                         torch::Tensor expected = steps[static_cast<int64_t>(i)];
                                         torch::Tensor excess = (l - expected).abs() - (1e-4 + 1e-4 * expected.abs());
                                         EXPECT_LE(excess.max().item<double>(), 0.0)
                                             << "step " << i << ": max |diff| "
                                             << (l - expected).abs().max().item<double>() << " at max |latent| "
                                             << expected.abs().max().item<double>();
                                       });
  torch::Tensor image = pipe.decode(latents);
  double image_diff = (image - ref.at("pipe." + s + ".image")).abs().max().item<double>();
  EXPECT_LE(image_diff, 1e-3);
}

TEST_P(PipelineParity, SeedElevenDrawsTheFixtureNoise) {
  TensorMap ref = read_safetensors(model_dir() / "reference.safetensors").tensors;
  StableDiffusionModel model = load_stable_diffusion(model_dir(), torch::kCPU, torch::kFloat32);
  StableDiffusionPipeline pipe(model);
  torch::Tensor noise = pipe.initial_noise({11}, 32, 32);
  EXPECT_TRUE(torch::equal(noise, ref.at("pipe." + GetParam().scheduler + ".init_latents")));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PipelineParity,
                         ::testing::Values(Case{"tiny-sd1", "pndm"}, Case{"tiny-sd1", "ddim"},
                                           Case{"tiny-sd1", "euler"}, Case{"tiny-sd1", "dpmpp2m"},
                                           Case{"tiny-sd2", "pndm"}, Case{"tiny-sd2", "ddim"},
                                           Case{"tiny-sd2", "euler"}, Case{"tiny-sd2", "dpmpp2m"}),
                         case_name);

TEST(Schedulers, ResolvedConfigsMatchTheReference) {
  // Defaults filled in per scheduler, as scheduler_configs.json records them.
  // The reference wrote Python's -Infinity (lambda_min_clipped), which JSON has no literal for.
  std::ifstream in(test::fixtures_dir() / "scheduler_configs.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t at = text.find("-Infinity"); at != std::string::npos; at = text.find("-Infinity"))
    text.replace(at, 9, "null");
  Json resolved = Json::parse(text);
  SchedulerConfig base =
      load_scheduler_config((test::fixtures_dir() / "tiny-sd2" / "scheduler" / "scheduler_config.json").string());
  for (const std::string name : {"pndm", "ddim", "euler", "dpmpp2m"}) {
    SchedulerConfig expected = SchedulerConfig::from_json(resolved.at(name), "scheduler_configs.json");
    auto s = make_scheduler(name, base);
    EXPECT_EQ(s->config().steps_offset, expected.steps_offset) << name;
    EXPECT_EQ(s->config().prediction_type, expected.prediction_type) << name;
    EXPECT_EQ(s->config().set_alpha_to_one, expected.set_alpha_to_one) << name;
  }
}

TEST(Schedulers, AddNoiseIsTheDdpmForwardProcess) {
  SchedulerConfig config;
  auto s = make_scheduler("ddim", config);
  torch::Tensor x0 = torch::ones({2, 1, 1, 1}), noise = torch::zeros({2, 1, 1, 1});
  torch::Tensor noisy = s->add_noise(x0, noise, torch::tensor({0, 999}));
  EXPECT_NEAR(noisy[0].item<double>(), std::sqrt(s->alphas_cumprod()[0].item<double>()), 1e-7);
  EXPECT_NEAR(noisy[1].item<double>(), std::sqrt(s->alphas_cumprod()[999].item<double>()), 1e-7);
}

}  // namespace
}  // namespace fairdiff
