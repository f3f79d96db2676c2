// Parity of one DreamBooth step with the reference trainer (../shared/fixtures/*/reference.safetensors,
// keys train.*): loss parts, total gradient norm, the clipped conv_in gradient and conv_in after one AdamW
// step; and the learning-rate schedules of lr_schedules.json.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "core/attention.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "diffusion/stable_diffusion.h"
#include "diffusion/unet_2d_condition.h"
#include "test_paths.h"
#include "train/dreambooth_loss.h"
#include "train/flat_adamw.h"
#include "train/lora.h"
#include "train/lr_schedule.h"

namespace fairdiff::train {
namespace {

// |a - b| <= 1e-4, relative for magnitudes above 1 (the fixtures' README).
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const torch::Tensor tolerance = 1e-4 * expected.abs().clamp_min(1.0);
  const double worst = ((actual.to(torch::kFloat32) - expected).abs() - tolerance).max().item<double>();
  const double diff = (actual.to(torch::kFloat32) - expected).abs().max().item<double>();
  EXPECT_LE(worst, 0.0) << what << ": max |diff| " << diff;
  std::printf("  %-24s max |diff| %.3g (max |ref| %.3g)\n", what.c_str(), diff, expected.abs().max().item<double>());
}

class DreamBoothParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { set_fused_attention_enabled(false); }
  std::filesystem::path model_dir() const { return test::fixtures_dir() / GetParam(); }
  TensorMap reference() const { return read_safetensors(model_dir() / "reference.safetensors").tensors; }
  // The reference trainer's noise scheduler (DDPM training uses the scheduler config's betas).
  std::unique_ptr<Scheduler> make_noise_scheduler() const {
    return make_scheduler("ddim",
                          load_scheduler_config((model_dir() / "scheduler" / "scheduler_config.json").string()));
  }
  // The reference step's batch: 1 instance + 1 class sample.
  static DreamBoothBatch reference_batch(const TensorMap& ref) {
    return {ref.at("train.latents"), ref.at("train.noise"), ref.at("train.timesteps"),
            ref.at("train.encoder_hidden_states"), 1};
  }
};

TEST_P(DreamBoothParity, OneStepMatchesReference) {
  TensorMap ref = reference();
  UNet2DConditionModel unet = load_unet(model_dir() / "unet", torch::kFloat32);
  unet->train();
  auto noise_scheduler = make_noise_scheduler();

  DreamBoothBatch batch = reference_batch(ref);
  expect_close(noise_scheduler->add_noise(batch.latents, batch.noise, batch.timesteps), ref.at("train.noisy"), "noisy");

  NamedTensors params;
  for (const auto& item : unet->named_parameters()) params.emplace_back(item.key(), item.value());
  FlatAdamW optimizer(params, AdamWConfig{});
  optimizer.zero_grad();
  DreamBoothLoss loss = dreambooth_loss(*unet, *noise_scheduler, batch, {});
  expect_close(loss.instance.detach(), ref.at("train.loss_instance"), "loss_instance");
  expect_close(loss.prior.detach(), ref.at("train.loss_prior"), "loss_prior");
  expect_close(loss.total.detach(), ref.at("train.loss"), "loss");
  loss.total.backward();
  optimizer.accumulate();

  torch::Tensor norm = optimizer.grad_norm();
  expect_close(norm, ref.at("train.grad_norm_before_clip"), "grad_norm_before_clip");
  torch::Tensor coefficient = clip_coefficient(norm, 1.0);
  EXPECT_LT(coefficient.item<double>(), 1.0) << "the fixture's gradient is expected to be clipped";
  expect_close(optimizer.grad_of("conv_in.weight") * coefficient, ref.at("train.conv_in.weight.grad"), "clipped grad");

  optimizer.step(1e-3, coefficient);
  expect_close(unet->conv_in->weight.detach(), ref.at("train.conv_in.weight.after_adamw"), "conv_in after AdamW");
  expect_close(optimizer.master_weights().at("conv_in.weight"), ref.at("train.conv_in.weight.after_adamw"), "master");
}

TEST_P(DreamBoothParity, GradientCheckpointingGivesTheSameGradients) {
  TensorMap ref = reference();
  auto noise_scheduler = make_noise_scheduler();
  DreamBoothBatch batch = reference_batch(ref);
  std::vector<torch::Tensor> grads;
  std::vector<double> losses;
  for (bool checkpointing : {false, true}) {
    UNet2DConditionModel unet = load_unet(model_dir() / "unet", torch::kFloat32);
    unet->train();
    DreamBoothLoss loss = dreambooth_loss(*unet, *noise_scheduler, batch, {1.0, checkpointing});
    loss.total.backward();
    std::vector<torch::Tensor> all;
    for (const auto& p : unet->parameters()) {
      ASSERT_TRUE(p.grad().defined());
      all.push_back(p.grad().flatten());
    }
    grads.push_back(torch::cat(all));
    losses.push_back(loss.total.item<double>());
  }
  EXPECT_EQ(losses[0], losses[1]);
  EXPECT_LE((grads[0] - grads[1]).abs().max().item<double>(), 1e-6);
}

// LoRA: the UNet is frozen, so no checkpointed segment has an input that requires grad; the adapters'
// gradients must still come back, equal to those without checkpointing.
TEST_P(DreamBoothParity, GradientCheckpointingWithLoraGivesTheSameAdapterGradients) {
  TensorMap ref = reference();
  auto noise_scheduler = make_noise_scheduler();
  DreamBoothBatch batch = reference_batch(ref);
  StableDiffusionModel model = load_stable_diffusion(model_dir(), torch::kCPU, torch::kFloat32);
  for (auto& p : model.unet->parameters()) p.requires_grad_(false);
  model.unet->train();
  LoraAdapters adapters(model, LoraConfig{4, 8.0, false}, at::make_generator<at::CPUGeneratorImpl>(7));
  NamedTensors factors = adapters.trainable();
  auto generator = at::make_generator<at::CPUGeneratorImpl>(11);
  for (auto& [name, t] : factors) {
    torch::NoGradGuard no_grad;
    t.copy_(torch::randn(t.sizes(), generator, torch::kFloat32) * 0.05);  // up = 0 would leave down's grad 0
  }
  std::vector<torch::Tensor> grads;
  for (bool checkpointing : {false, true}) {
    for (auto& [name, t] : factors) t.mutable_grad() = torch::Tensor();
    adapters.refresh();
    DreamBoothLoss loss = dreambooth_loss(*model.unet, *noise_scheduler, batch, {1.0, checkpointing});
    loss.total.backward();
    std::vector<torch::Tensor> all;
    for (auto& [name, t] : factors) {
      ASSERT_TRUE(t.grad().defined()) << name << (checkpointing ? " with" : " without") << " checkpointing";
      all.push_back(t.grad().flatten());
    }
    grads.push_back(torch::cat(all));
  }
  EXPECT_GT(grads[0].abs().max().item<double>(), 0.0);
  EXPECT_LE((grads[0] - grads[1]).abs().max().item<double>(), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DreamBoothParity, ::testing::Values("tiny-sd1", "tiny-sd2"));

TEST(LrSchedules, MatchTheReferenceTrainer) {
  Json ref = read_json_file(test::fixtures_dir() / "lr_schedules.json");
  LrScheduleConfig config;
  config.base_lr = ref.at("base_lr").get<double>();
  config.warmup_steps = ref.at("warmup").get<int64_t>();
  config.total_steps = ref.at("total").get<int64_t>();
  int checked = 0;
  for (const auto& [name, rates] : ref.at("lr_per_step").items()) {
    config.name = name;
    validate_lr_schedule(config);
    ASSERT_EQ(rates.size(), 100u) << name;
    for (size_t step = 0; step < rates.size(); ++step) {
      const double expected = rates[step].get<double>();
      EXPECT_NEAR(learning_rate_at(config, static_cast<int64_t>(step)), expected, 1e-12 * config.base_lr)
          << name << " step " << step;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

TEST(LrSchedules, RejectsUnknownNamesAndBadRanges) {
  LrScheduleConfig config;
  config.name = "exponential";
  EXPECT_THROW(validate_lr_schedule(config), UsageError);
  config.name = "polynomial";
  config.total_steps = 10;
  config.warmup_steps = 10;
  EXPECT_THROW(validate_lr_schedule(config), UsageError);
}

}  // namespace
}  // namespace fairdiff::train
