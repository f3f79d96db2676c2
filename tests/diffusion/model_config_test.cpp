// Model and scheduler configs are checked field by field before any tensor is made from them: each bad value is
// one InputError naming the file, the key, the value and what was expected (they used to escape as LibTorch errors
// with long stack traces, or, for a scheduler, run and write all-black images).
#include <gtest/gtest.h>

#include <functional>
#include <limits>

#include "core/json.h"
#include "diffusion/autoencoder_kl.h"
#include "diffusion/schedulers/scheduler.h"
#include "diffusion/stable_diffusion.h"
#include "diffusion/unet_2d_condition.h"
#include "test_paths.h"
#include "text/clip_text_model.h"

namespace fairdiff {
namespace {

Json fixture_config(const std::string& component, const std::string& file = "config.json") {
  return read_json_file(test::fixtures_dir() / "tiny-sd2" / component / file);
}

// The message `parse` throws, or "" when it accepts the config.
std::string error_of(const std::function<void()>& parse) {
  try {
    parse();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

struct Case {
  std::string key;
  Json value;  // null removes the key
  std::string fragment;
};

void expect_refused(const std::string& component, const std::string& file, const std::vector<Case>& cases,
                    const std::function<void(const Json&)>& parse) {
  const Json good = fixture_config(component, file);
  ASSERT_EQ(error_of([&] { parse(good); }), "");
  for (const auto& c : cases) {
    Json bad = good;
    if (c.value.is_null()) {
      bad.erase(c.key);
    } else {
      bad[c.key] = c.value;
    }
    const std::string message = error_of([&] { parse(bad); });
    EXPECT_NE(message.find(component + "/" + file + ": "), std::string::npos) << c.key << ": " << message;
    EXPECT_NE(message.find(c.fragment), std::string::npos) << c.key << ": " << message;
  }
}

std::string where(const std::string& component, const std::string& file = "config.json") {
  return (test::fixtures_dir() / "tiny-sd2" / component / file).string();
}

TEST(ModelConfig, UNetFieldsAreCheckedWithFileKeyAndExpectation) {
  expect_refused("unet", "config.json",
                 {
                     {"norm_num_groups", 7,
                      "'norm_num_groups' is 7, expected a number that divides every block's channels "
                      "(block_out_channels 32, 64)"},
                     {"norm_num_groups", 0, "'norm_num_groups' is 0, expected an integer from 1"},
                     {"in_channels", 0, "'in_channels' is 0, expected an integer from 1"},
                     {"layers_per_block", -1, "'layers_per_block' is -1"},
                     {"block_out_channels", Json::array(), "'block_out_channels' is an empty list"},
                     {"block_out_channels", {32, -64}, "'block_out_channels' has -64 at position 1"},
                     {"cross_attention_dim", 0, "'cross_attention_dim' is 0"},
                     {"attention_head_dim", {2, 0}, "'attention_head_dim' has 0 at position 1"},
                     {"norm_eps", -1.0, "'norm_eps' is -1, expected a number above 0"},
                     {"down_block_types", nullptr,
                      "'down_block_types' is missing (its default does not match the blocks the "
                      "file gives: block_out_channels 2, down_block_types 4, up_block_types 2)"},
                     {"up_block_types", {"UpBlock2D"}, "the per-block lists have different lengths"},
                     {"attention_head_dim", {"a", "b"}, "key 'attention_head_dim' has the wrong type"},
                     // A single integer too large for int64 used to wrap to -1 in the message (fuzzing finding 8).
                     {"attention_head_dim", Json(std::numeric_limits<uint64_t>::max()),
                      "key 'attention_head_dim' = 18446744073709551615 is not a whole number from"},
                 },
                 [](const Json& j) { UNet2DConditionConfig::from_json(j, where("unet")); });
}

TEST(ModelConfig, VaeFieldsAreChecked) {
  expect_refused("vae", "config.json",
                 {
                     {"latent_channels", 0, "'latent_channels' is 0, expected an integer from 1"},
                     {"norm_num_groups", 7,
                      "'norm_num_groups' is 7, expected a number that divides every block's "
                      "channels"},
                     {"scaling_factor", 0.0, "'scaling_factor' is 0, expected a number above 0"},
                     {"block_out_channels", Json::array(), "'block_out_channels' is an empty list"},
                     {"block_out_channels", {8, 8, 8, 8, 8, 8, 8, 8, 8}, "'block_out_channels' has 9 entries"},
                     {"sample_size", -32, "'sample_size' is -32"},
                 },
                 [](const Json& j) { AutoencoderKLConfig::from_json(j, where("vae")); });
}

TEST(ModelConfig, TextEncoderFieldsAreChecked) {
  expect_refused("text_encoder", "config.json",
                 {
                     // Used to divide by zero.
                     {"num_attention_heads", 0, "'num_attention_heads' is 0, expected an integer from 1"},
                     {"num_attention_heads", 3, "'num_attention_heads' is 3, expected a divisor of hidden_size 32"},
                     {"vocab_size", 0, "'vocab_size' is 0"},
                     {"max_position_embeddings", 1, "'max_position_embeddings' is 1"},
                     {"num_hidden_layers", 0, "'num_hidden_layers' is 0"},
                     {"layer_norm_eps", 0.0, "'layer_norm_eps' is 0"},
                 },
                 [](const Json& j) { ClipTextConfig::from_json(j, where("text_encoder")); });
}

TEST(ModelConfig, SchedulerBetasMustBeProbabilities) {
  expect_refused("scheduler", "scheduler_config.json",
                 {
                     // Used to run and write all-black images with exit 0.
                     {"beta_start", -5, "'beta_start' is -5, expected a number above 0 and below 1"},
                     {"beta_end", 1.5, "'beta_end' is 1.5, expected a number from"},
                     {"beta_end", 0.0001, "'beta_end' is 0.0001, expected a number from 0.00085"},
                     {"num_train_timesteps", 1, "'num_train_timesteps' is 1, expected an integer from 2"},
                     {"steps_offset", 1000, "'steps_offset' is 1000, expected an integer from 0 to 999"},
                     {"beta_schedule", "cosine",
                      "'beta_schedule' is 'cosine', expected linear, scaled_linear or "
                      "squaredcos_cap_v2"},
                     {"trained_betas", {0.1, 0.2}, "'trained_betas' has 2 entries, expected one per training timestep"},
                     {"final_sigmas_type", "max", "'final_sigmas_type' is 'max', expected zero or sigma_min"},
                 },
                 [](const Json& j) { SchedulerConfig::from_json(j, where("scheduler", "scheduler_config.json")); });
}

// The whole model load reports the first bad field the same way (no LibTorch error reaches the user).
TEST(ModelConfig, LoadingAModelWithABadConfigNamesTheFile) {
  const auto dir = test::scratch_dir("model_config_bad") / "model";
  std::filesystem::copy(test::fixtures_dir() / "tiny-sd2", dir, std::filesystem::copy_options::recursive);
  Json unet = read_json_file(dir / "unet" / "config.json");
  unet["norm_num_groups"] = 7;
  std::filesystem::permissions(dir / "unet" / "config.json", std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  write_json_file(dir / "unet" / "config.json", unet);
  const std::string message = error_of([&] { load_stable_diffusion(dir, torch::kCPU, torch::kFloat32); });
  EXPECT_NE(message.find((dir / "unet" / "config.json").string() + ": 'norm_num_groups' is 7"), std::string::npos)
      << message;
}

}  // namespace
}  // namespace fairdiff
