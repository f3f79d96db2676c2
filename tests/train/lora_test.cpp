// LoRA: key schemes, training-time substitution vs. merging a saved file, and errors for a LoRA of another
// architecture.
#include "train/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "core/attention.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "diffusion/stable_diffusion.h"
#include "test_paths.h"

namespace fairdiff::train {
namespace {

TEST(LoraKeys, ParsesDiffusersPeftAndKohyaNames) {
  auto d = parse_lora_key("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->component, LoraComponent::unet);
  EXPECT_EQ(d->module, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q");
  EXPECT_EQ(d->part, LoraPart::down);
  auto p = parse_lora_key("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0.lora_B.weight");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->module, "mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0");
  EXPECT_EQ(p->part, LoraPart::up);
  auto t = parse_lora_key("text_encoder.text_model.encoder.layers.1.self_attn.k_proj.lora_linear_layer.up.weight");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->component, LoraComponent::text_encoder);
  EXPECT_EQ(t->module, "encoder.layers.1.self_attn.k_proj");
  auto k = parse_lora_key("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha");
  ASSERT_TRUE(k);
  EXPECT_TRUE(k->underscored);
  EXPECT_EQ(k->part, LoraPart::alpha);
  auto old = parse_lora_key("unet.up_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->module, "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0");
  EXPECT_FALSE(parse_lora_key("conv_in.weight"));
  EXPECT_EQ(lora_key_name(LoraComponent::unet, "mid_block.x.to_q", LoraPart::up),
            "unet.mid_block.x.to_q.lora.up.weight");
}

class LoraModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { set_fused_attention_enabled(false); }
  std::filesystem::path model_dir() const { return test::fixtures_dir() / GetParam(); }
  StableDiffusionModel load() const { return load_stable_diffusion(model_dir(), torch::kCPU, torch::kFloat32); }
  torch::Tensor unet_out(StableDiffusionModel& m) const {
    torch::NoGradGuard no_grad;
    TensorMap ref = read_safetensors(model_dir() / "reference.safetensors").tensors;
    return m.unet->forward(ref.at("unet.in.sample"), ref.at("unet.in.timesteps"),
                           ref.at("unet.in.encoder_hidden_states"));
  }
};

TEST_P(LoraModel, SavedFileMergesToTheTrainedFunction) {
  StableDiffusionModel trained = load();
  const torch::Tensor base_out = unet_out(trained);
  LoraConfig config{4, 8.0, true};
  auto adapters = std::make_unique<LoraAdapters>(trained, config, at::make_generator<at::CPUGeneratorImpl>(7));
  EXPECT_EQ(adapters->size(),
            6u * 8u + 4u * (GetParam() == "tiny-sd1" ? 2u : 3u));  // 6 transformer blocks, 2 or 3 text layers
  adapters->refresh();
  EXPECT_EQ((unet_out(trained) - base_out).abs().max().item<double>(), 0.0) << "up = 0 leaves the model unchanged";
  // Give every factor a value, as training would.
  TensorMap master;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(11);
  for (auto& [name, t] : adapters->trainable()) {
    torch::NoGradGuard no_grad;
    t.copy_(torch::randn(t.sizes(), generator, torch::kFloat32) * 0.05);
    master[name] = t.detach().clone();
  }
  adapters->refresh();
  const torch::Tensor trained_out = unet_out(trained);
  EXPECT_GT((trained_out - base_out).abs().max().item<double>(), 1e-3);

  auto dir = test::scratch_dir("lora_merge_" + GetParam());
  write_safetensors(dir / "lora.safetensors", adapters->export_weights(master));
  StableDiffusionModel merged = load();
  EXPECT_EQ(apply_lora(merged, dir / "lora.safetensors", 1.0), adapters->size());
  EXPECT_LE((unet_out(merged) - trained_out).abs().max().item<double>(), 1e-5);

  // Scale 0.5 moves halfway (the update is linear in the scale).
  StableDiffusionModel half = load();
  apply_lora(half, dir / "lora.safetensors", 0.0);
  EXPECT_LE((unet_out(half) - base_out).abs().max().item<double>(), 1e-6);

  // The same update in kohya's scheme with an explicit alpha.
  TensorMap kohya;
  for (const auto& [key, t] : adapters->export_weights(master)) {
    auto parsed = parse_lora_key(key);
    ASSERT_TRUE(parsed);
    std::string module = parsed->module;
    for (char& c : module) c = c == '.' ? '_' : c;
    const std::string stem = (parsed->component == LoraComponent::unet ? "lora_unet_" : "lora_te_text_model_") + module;
    // Unfold alpha / rank (= 2) from up and state alpha instead.
    kohya[stem + (parsed->part == LoraPart::down ? ".lora_down.weight" : ".lora_up.weight")] =
        parsed->part == LoraPart::up ? t / 2.0 : t;
    kohya[stem + ".alpha"] = torch::tensor(8.0f);
  }
  write_safetensors(dir / "kohya.safetensors", kohya);
  StableDiffusionModel from_kohya = load();
  apply_lora(from_kohya, dir / "kohya.safetensors", 1.0);
  EXPECT_LE((unet_out(from_kohya) - trained_out).abs().max().item<double>(), 1e-5);
  adapters.reset();
  EXPECT_EQ((unet_out(trained) - base_out).abs().max().item<double>(), 0.0) << "restore() puts the base weights back";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LoraModel, ::testing::Values("tiny-sd1", "tiny-sd2"));

TEST(LoraApply, RejectsLorasOfAnotherArchitectureAndLeavesTheModelUnchanged) {
  set_fused_attention_enabled(false);
  auto dir = test::scratch_dir("lora_errors");
  StableDiffusionModel model = load_stable_diffusion(test::fixtures_dir() / "tiny-sd1", torch::kCPU, torch::kFloat32);
  const torch::Tensor before = model.unet->conv_in->weight.clone();
  const std::string good = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
  auto expect_error = [&](const TensorMap& tensors, const std::string& name, const std::string& needle) {
    write_safetensors(dir / name, tensors);
    try {
      apply_lora(model, dir / name, 1.0);
      ADD_FAILURE() << name << " was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << "the error names the file: " << e.what();
    }
  };
  // tiny-sd1's second down block has no attention (an SD 1.x LoRA's down_blocks.1.attentions on this model).
  expect_error(
      {{good + ".lora.down.weight", torch::ones({4, 32})},
       {good + ".lora.up.weight", torch::ones({32, 4})},
       {"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight", torch::ones({4, 64})},
       {"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora.up.weight", torch::ones({64, 4})}},
      "missing_module.safetensors", "another architecture");
  // A 768-wide LoRA (Stable Diffusion 1.5) on 32-wide layers.
  expect_error({{good + ".lora.down.weight", torch::ones({4, 768})}, {good + ".lora.up.weight", torch::ones({768, 4})}},
               "wrong_shape.safetensors", "does not fit");
  expect_error({{"model.diffusion_model.input_blocks.1.1.proj_in.weight", torch::ones({4, 4})}}, "not_lora.safetensors",
               "not LoRA weights");
  expect_error({{good + ".lora.down.weight", torch::ones({4, 32})}}, "half.safetensors", "only one of its two");
  EXPECT_TRUE(torch::equal(model.unet->conv_in->weight, before));
  const auto q = model.unet->named_modules()["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"];
  StableDiffusionModel fresh = load_stable_diffusion(test::fixtures_dir() / "tiny-sd1", torch::kCPU, torch::kFloat32);
  EXPECT_TRUE(torch::equal(q->named_parameters()["weight"],
                           fresh.unet->named_modules()["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"]
                               ->named_parameters()["weight"]))
      << "a rejected file changes no weight";
}

}  // namespace
}  // namespace fairdiff::train
