// convert_model (`fairdiff model convert`): a shorter text context keeps a fitting prompt's hidden states.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "diffusion/model_init.h"
#include "diffusion/stable_diffusion.h"
#include "test_paths.h"

namespace fairdiff {
namespace {
namespace fs = std::filesystem;

TEST(ModelConvert, MaxLengthShortensTheContextAndKeepsAFittingPromptsHiddenStates) {
  const fs::path dir = test::scratch_dir("ModelConvert.MaxLength");
  const fs::path original = test::fixtures_dir() / "tiny-sd2";
  ModelConvertOptions options;
  options.weights_dtype = torch::kFloat32;
  options.max_length = 12;
  convert_model(original, dir / "short", options);

  EXPECT_EQ(read_json_file(dir / "short" / "text_encoder" / "config.json")["max_position_embeddings"], 12);
  EXPECT_EQ(read_json_file(dir / "short" / "tokenizer" / "tokenizer_config.json")["model_max_length"], 12);
  const auto before = read_safetensors(original / "text_encoder" / "model.safetensors").tensors;
  const auto after = read_safetensors(dir / "short" / "text_encoder" / "model.safetensors").tensors;
  int position_tables = 0;
  for (const auto& [name, t] : before) {
    if (name.find("position_embedding.weight") == std::string::npos) {
      EXPECT_TRUE(torch::equal(after.at(name), t.to(torch::kFloat32))) << name;
      continue;
    }
    ++position_tables;
    EXPECT_EQ(after.at(name).size(0), 12) << name;
    EXPECT_TRUE(torch::equal(after.at(name), t.slice(0, 0, 12).to(torch::kFloat32))) << name;
  }
  EXPECT_EQ(position_tables, 1);

  // CLIP's attention is causal: a prompt of 7 tokens (with BOS and EOS) has the same hidden states in the first
  // 12 positions whatever comes after them.
  torch::NoGradGuard no_grad;
  StableDiffusionModel full = load_stable_diffusion(original, torch::kCPU, torch::kFloat32);
  StableDiffusionModel short_model = load_stable_diffusion(dir / "short", torch::kCPU, torch::kFloat32);
  EXPECT_EQ(short_model.tokenizer.max_length(), 12);
  const torch::Tensor a = StableDiffusionPipeline(full).encode_prompts({"a photo of a nurse"});
  const torch::Tensor b = StableDiffusionPipeline(short_model).encode_prompts({"a photo of a nurse"});
  ASSERT_EQ(b.size(1), 12);
  EXPECT_TRUE(torch::allclose(b, a.slice(1, 0, 12), 1e-5, 1e-5)) << (b - a.slice(1, 0, 12)).abs().max();

  // Longer than the model's context, too short, or an existing --out: refused before anything is written.
  options.max_length = 78;
  EXPECT_THROW(convert_model(original, dir / "long", options), FieldError);
  options.max_length = 1;
  EXPECT_THROW(convert_model(original, dir / "one", options), FieldError);
  EXPECT_FALSE(fs::exists(dir / "long") || fs::exists(dir / "long.partial") || fs::exists(dir / "one"));
  options.max_length = 12;
  EXPECT_THROW(convert_model(original, dir / "short", options), FieldInputError);
}

}  // namespace
}  // namespace fairdiff
