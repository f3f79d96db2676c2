// UCE (closed-form cross-attention editing): parity with the authors' edit_model on tiny-sd2
// (tests/data/mitigations/uce_reference.*, made by tools/mitigations/uce_reference.py), the closed form's
// properties on small random systems, the written model, and refused inputs.
#include "mitigate/uce.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "diffusion/stable_diffusion.h"
#include "test_paths.h"

namespace fairdiff::mitigate::uce {
namespace {
namespace fs = std::filesystem;

fs::path tiny_sd2() {
  return test::fixtures_dir() / "tiny-sd2";
}
fs::path reference_dir() {
  return test::source_dir() / "tests" / "data" / "mitigations";
}

const Json& reference_json() {
  static const Json json = read_json_file(reference_dir() / "uce_reference.json");
  return json;
}
const TensorMap& reference_tensors() {
  static const TensorMap tensors = read_safetensors(reference_dir() / "uce_reference.safetensors").tensors;
  return tensors;
}

// The options of one of the reference's settings, with the weights its float64 or float32 run used.
UceOptions reference_options(const std::string& setting, const std::string& tag) {
  const Json& s = reference_json().at("settings").at(setting);
  UceOptions options;
  const Json& weights = s.at("weights_" + tag);
  for (size_t i = 0; i < s.at("concepts").size(); ++i) {
    const Json& c = s.at("concepts")[i];
    options.concepts.push_back({c.at("prompt").get<std::string>(), c.at("attributes").get<std::vector<std::string>>(),
                                weights[i].get<std::vector<double>>()});
  }
  if (!s.at("preserve").is_null()) options.preserve_prompts = s.at("preserve").get<std::vector<std::string>>();
  options.lambda = s.at("lamb").get<double>();
  options.edit_scale = s.at("erase_scale").get<double>();
  options.preserve_scale = s.at("preserve_scale").get<double>();
  options.with_to_k = s.at("with_to_k").get<bool>();
  return options;
}

double max_relative_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  const torch::Tensor e = expected.to(torch::kFloat64);
  return ((actual.to(torch::kFloat64) - e).abs().max() / e.abs().max()).item<double>();
}

std::string scientific(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g", value);
  return text;
}

template <typename F>
std::string field_of(F&& f) {
  try {
    f();
  } catch (const FieldNamed& e) {
    return e.field();
  }
  return "<no FieldError>";
}

UceOptions doctor_options() {
  UceOptions options;
  options.concepts.push_back(concept_with_groups("a photo of a doctor", audit::Attribute::gender, {}));
  options.concepts[0].weights = {-0.03, 0.03};
  options.preserve_prompts = {"a photo of a teacher"};
  return options;
}

TEST(UceParity, TokenStatesMatchTheReference) {
  const ClipTokenizer tokenizer = ClipTokenizer::from_directory(tiny_sd2() / "tokenizer");
  ClipTextModel encoder = load_clip_text_model(tiny_sd2() / "text_encoder", torch::kFloat64);
  const auto prompts = reference_json().at("prompts").get<std::vector<std::string>>();
  const auto counts = reference_json().at("token_counts").get<std::vector<int64_t>>();
  const PromptStateMap states = encode_prompts(tokenizer, encoder, prompts, torch::kFloat64);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(prompts[i]);
    const PromptStates& p = states.at(prompts[i]);
    EXPECT_EQ(p.last_word, counts[i] - 2);  // the reference's attention_mask.sum() - 2
    const torch::Tensor expected = reference_tensors().at("text." + std::to_string(i));
    EXPECT_LT((p.states - expected).abs().max().item<double>(), 1e-12);
  }
}

class UceReference : public ::testing::TestWithParam<std::string> {};

// fairdiff's float64 edit against the reference's float64 run: the same arithmetic up to summation order.
TEST_P(UceReference, EditedWeightsMatchTheFloat64Reference) {
  const UceOptions options = reference_options(GetParam(), "f64");
  const UceEdit edit = edit_model(tiny_sd2(), options);
  const TensorMap base = read_safetensors(tiny_sd2() / "unet" / "diffusion_pytorch_model.safetensors").tensors;
  const std::string prefix = GetParam() + ".f64.";
  size_t compared = 0;
  double worst = 0;
  for (const auto& [key, expected] : reference_tensors()) {
    if (key.rfind(prefix, 0) != 0) continue;
    const std::string name = key.substr(prefix.size());
    SCOPED_TRACE(name);
    if (!is_edited_projection(name, options.with_to_k)) {
      EXPECT_EQ(edit.weights.count(name), 0u);
      EXPECT_TRUE(torch::equal(expected.to(torch::kFloat32), base.at(name)));  // the reference left it too
      continue;
    }
    ASSERT_EQ(edit.weights.count(name), 1u);
    const double error = max_relative_error(edit.weights.at(name), expected);
    worst = std::max(worst, error);
    EXPECT_LT(error, 1e-10);
    EXPECT_GT(max_relative_error(base.at(name), expected), 1e-4);  // the edit changed it
    ++compared;
  }
  EXPECT_EQ(compared, edit.weights.size());
  EXPECT_EQ(compared, options.with_to_k ? 12u : 6u);  // tiny-sd2 has 6 cross-attention layers
  RecordProperty("max_relative_error_f64", scientific(worst));
}

// The reference as it runs (float32, on the GPU) against fairdiff's float64 edit with the float32 run's weights:
// they differ by up to 6e-4 relative on tiny-sd2, exactly as much as the reference's float32 run differs from its own
// float64 run. That is the reference's float32 rounding, amplified by the conditioning of the system it inverts, not a
// difference in method: fairdiff is no farther from it than the reference's float64 run is (triangle inequality with
// the float64 parity above), give or take the float32 run's edit weights (0.030000001 where the float64 run has 0.03,
// 4e-8 relative), which move the result by about 1e-9.
TEST_P(UceReference, EditedWeightsMatchTheFloat32ReferenceToItsOwnPrecision) {
  const UceOptions options = reference_options(GetParam(), "f32");
  const UceEdit edit = edit_model(tiny_sd2(), options);
  double worst = 0;
  for (const auto& [name, weight] : edit.weights) {
    SCOPED_TRACE(name);
    const torch::Tensor f32 = reference_tensors().at(GetParam() + ".f32." + name);
    const double reference_own = max_relative_error(reference_tensors().at(GetParam() + ".f64." + name), f32);
    const double error = max_relative_error(weight, f32);
    EXPECT_LT(reference_own, 1e-3);
    EXPECT_LE(error, reference_own + 1e-7);
    worst = std::max(worst, error);
  }
  RecordProperty("max_relative_error_f32", scientific(worst));
}

INSTANTIATE_TEST_SUITE_P(Settings, UceReference, ::testing::Values("main", "no_preserve"));

TEST(UceParity, GroupConceptsAreTheReferencesAttributePrompts) {
  const DebiasConcept doctor = concept_with_groups("a photo of a doctor", audit::Attribute::gender, {});
  const Json& first = reference_json().at("settings").at("main").at("concepts")[0];
  EXPECT_EQ(doctor.attribute_prompts, first.at("attributes").get<std::vector<std::string>>());
  EXPECT_EQ(concept_with_groups("a photo of a doctor", audit::Attribute::gender_race, {}).attribute_prompts.size(),
            12u);
}

TEST(UceParity, WeightsFromSharesFollowTheReferencesRule) {
  const auto weights = weights_from_shares({0.8, 0.2});
  const auto expected = reference_json().at("settings").at("main").at("weights_f64")[0].get<std::vector<double>>();
  ASSERT_EQ(weights.size(), 2u);
  EXPECT_NEAR(weights[0], expected[0], 1e-15);
  EXPECT_NEAR(weights[1], expected[1], 1e-15);
  EXPECT_EQ(weights_from_shares({0.52, 0.48}), (std::vector<double>{0, 0}));  // within 0.05: balanced
}

// Small random systems: D = 8 text channels, 6 outputs, a few tokens (fewer than D, so edits can be exact).
struct RandomSystem {
  torch::Tensor weight = torch::randn({6, 8}, torch::kFloat64);
  torch::Tensor concept_keys = torch::randn({3, 8}, torch::kFloat64);
  torch::Tensor targets = torch::randn({3, 6}, torch::kFloat64);
  torch::Tensor preserved = torch::randn({2, 8}, torch::kFloat64);
};

TEST(UceClosedForm, EditedConceptsReachTheirTargetsWithoutPreserves) {
  torch::manual_seed(1);
  RandomSystem s;
  const torch::Tensor edited = closed_form(s.weight, {{s.concept_keys, s.targets}}, {}, {1e-9, 1.0, 0.1});
  EXPECT_LT(max_relative_error(s.concept_keys.mm(edited.t()), s.targets), 1e-6);
}

TEST(UceClosedForm, PreservedOutputsStayWithALargePreserveScale) {
  torch::manual_seed(2);
  RandomSystem s;
  const torch::Tensor edited = closed_form(s.weight, {{s.concept_keys, s.targets}}, {s.preserved}, {0.5, 1.0, 1e8});
  EXPECT_LT(max_relative_error(s.preserved.mm(edited.t()), s.preserved.mm(s.weight.t())), 1e-6);
  // ... while the edited concept still moves toward its targets.
  EXPECT_GT(max_relative_error(s.concept_keys.mm(edited.t()), s.concept_keys.mm(s.weight.t())), 0.1);
  EXPECT_LT(max_relative_error(s.concept_keys.mm(edited.t()), s.targets), 0.5);
}

TEST(UceClosedForm, ALargeLambdaKeepsTheWeights) {
  torch::manual_seed(3);
  RandomSystem s;
  const torch::Tensor edited = closed_form(s.weight, {{s.concept_keys, s.targets}}, {s.preserved}, {1e10, 1.0, 0.1});
  EXPECT_LT(max_relative_error(edited, s.weight), 1e-8);
}

TEST(UceClosedForm, TargetsAddAttributeDirectionsScaledByTheRunningNorm) {
  torch::manual_seed(4);
  RandomSystem s;
  const torch::Tensor a = torch::randn({3, 8}, torch::kFloat64);
  const torch::Tensor b = torch::randn({3, 8}, torch::kFloat64);
  EXPECT_TRUE(
      torch::allclose(debiased_values(s.weight, s.concept_keys, {a, b}, {0, 0}), s.concept_keys.mm(s.weight.t())));
  torch::Tensor expected = s.concept_keys.mm(s.weight.t());
  const torch::Tensor ua = a.mm(s.weight.t()) / a.mm(s.weight.t()).norm();
  const torch::Tensor ub = b.mm(s.weight.t()) / b.mm(s.weight.t()).norm();
  expected = expected + 0.3 * expected.norm() * ua;
  expected = expected - 0.2 * expected.norm() * ub;  // the norm after the first attribute's step
  EXPECT_LT(max_relative_error(debiased_values(s.weight, s.concept_keys, {a, b}, {0.3, -0.2}), expected), 1e-14);
}

TEST(UceClosedForm, ASingularSystemIsRefused) {
  const torch::Tensor weight = torch::ones({2, 4}, torch::kFloat64);
  EXPECT_EQ(field_of([&] {
              closed_form(weight, {{torch::ones({1, 4}, torch::kFloat64), torch::ones({1, 2}, torch::kFloat64)}}, {},
                          {0, 1, 1});
            }),
            "lambda");
}

TEST(UceModel, WrittenModelLoadsGeneratesAndDiffersOnlyInTheEditedProjections) {
  const fs::path out = test::scratch_dir("uce_written") / "edited";
  const UceOptions options = doctor_options();
  const UceEdit edit = write_edited_model(tiny_sd2(), out, options);
  EXPECT_FALSE(fs::exists(out.string() + ".partial"));
  ASSERT_TRUE(fs::exists(out / kSettingsName));
  const Json settings = read_json_file(out / kSettingsName);
  EXPECT_EQ(settings.at("method"), "uce");
  EXPECT_EQ(settings.at("preserve_prompts"), Json(std::vector<std::string>{"a photo of a teacher"}));
  EXPECT_EQ(settings.at("edited_weights").size(), 12u);

  const TensorMap base = read_safetensors(tiny_sd2() / "unet" / "diffusion_pytorch_model.safetensors").tensors;
  const TensorMap edited = read_safetensors(out / "unet" / "diffusion_pytorch_model.safetensors").tensors;
  ASSERT_EQ(edited.size(), base.size());
  size_t changed = 0;
  for (const auto& [key, tensor] : base) {
    SCOPED_TRACE(key);
    ASSERT_EQ(edited.count(key), 1u);
    EXPECT_EQ(edited.at(key).scalar_type(), tensor.scalar_type());
    if (is_edited_projection(key, true)) {
      EXPECT_FALSE(torch::equal(edited.at(key), tensor));
      EXPECT_TRUE(torch::equal(edited.at(key), edit.weights.at(key).to(tensor.scalar_type())));
      ++changed;
    } else {
      EXPECT_TRUE(torch::equal(edited.at(key), tensor));
    }
  }
  EXPECT_EQ(changed, 12u);
  EXPECT_EQ(read_file(out / "text_encoder" / "model.safetensors"),
            read_file(tiny_sd2() / "text_encoder" / "model.safetensors"));
  EXPECT_EQ(read_file(out / "unet" / "config.json"), read_file(tiny_sd2() / "unet" / "config.json"));

  StableDiffusionModel model = load_stable_diffusion(out, torch::kCPU, torch::kFloat32);
  StableDiffusionPipeline pipeline(model);
  GenerationRequest request;
  request.prompts = {"a photo of a doctor"};
  request.seeds = {1};
  request.steps = 2;
  const torch::Tensor image = pipeline.generate(request);
  EXPECT_EQ(image.size(0), 1);
  EXPECT_TRUE(torch::isfinite(image).all().item<bool>());
}

TEST(UceModel, IteratingWithMeasuredSharesAppliesTheReferencesSteps) {
  UceOptions options = doctor_options();
  int calls = 0;
  const UceEdit iterated = iterate_edit(tiny_sd2(), options, {}, [&](const TensorMap& projections, size_t) {
    ++calls;
    return calls == 1 ? std::vector<double>{0.8, 0.2} : std::vector<double>{0.52, 0.48};
  });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(iterated.iterations, 1);
  options.concepts[0].weights = weights_from_shares({0.8, 0.2});
  const UceEdit single = edit_model(tiny_sd2(), options);
  for (const auto& [key, weight] : single.weights)
    EXPECT_TRUE(torch::allclose(iterated.weights.at(key), weight, 1e-12, 0));
}

TEST(UceInputs, BadOptionsAreRefusedByField) {
  const fs::path out = test::scratch_dir("uce_bad") / "edited";
  auto write = [&](const UceOptions& options) {
    return field_of([&] { write_edited_model(tiny_sd2(), out, options); });
  };
  EXPECT_EQ(write(UceOptions{}), "concepts");
  UceOptions options = doctor_options();
  options.lambda = -1;
  EXPECT_EQ(write(options), "lambda");
  options = doctor_options();
  options.preserve_scale = std::nan("");
  EXPECT_EQ(write(options), "preserve_scale");
  options = doctor_options();
  options.concepts[0].attribute_prompts.resize(1);
  EXPECT_EQ(write(options), "concepts[0].attribute_prompts");
  options = doctor_options();
  options.concepts[0].weights = {0.1};
  EXPECT_EQ(write(options), "concepts[0].weights");
  options = doctor_options();
  std::string long_prompt = "a photo of a";
  for (int i = 0; i < 80; ++i) long_prompt += " very";
  options.concepts[0].prompt = long_prompt + " tired doctor";
  EXPECT_EQ(write(options), "concepts[0].prompt");
  options = doctor_options();
  options.preserve_prompts.push_back(long_prompt);
  EXPECT_EQ(write(options), "preserve_prompts[1]");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out.string() + ".partial"));

  fs::create_directories(out);
  write_file_atomic(out / "keep.txt", "not a model");
  EXPECT_EQ(write(doctor_options()), "out");
  EXPECT_EQ(read_file(out / "keep.txt"), "not a model");
  EXPECT_EQ(field_of([&] {
              write_edited_model(tiny_sd2() / "unet" / "diffusion_pytorch_model.safetensors",
                                 out.parent_path() / "other", doctor_options());
            }),
            "base_dir");
}

}  // namespace
}  // namespace fairdiff::mitigate::uce
