// Balanced prompting and the text-embedding projection (mitigate/), and the per-image group draws they and Fair
// Diffusion share: draws that do not depend on the batch, prompts rewritten in the planner's wording, and the
// calibration matrix's closed form checked against its definition on the tiny SD2 fixture.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "audit/prompt_rewriter.h"
#include "core/error.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "diffusion/stable_diffusion.h"
#include "mitigate/balanced_prompting.h"
#include "mitigate/embedding_projection.h"
#include "mitigate/group_sampler.h"
#include "mitigate/methods.h"
#include "test_paths.h"

namespace fairdiff::mitigate {
namespace {

TEST(GroupSampler, DrawsFollowTheSharesAndDependOnlyOnTheImage) {
  const audit::Taxonomy taxonomy;
  const GroupDistribution uniform = GroupDistribution::uniform(taxonomy);
  ASSERT_EQ(uniform.groups().size(), 12u);
  std::map<std::string, int> counts;
  const int n = 24000;
  for (int i = 0; i < n; ++i) ++counts[uniform.draw(7, "nurse", i).label()];
  ASSERT_EQ(counts.size(), 12u);
  for (const auto& [label, count] : counts) {
    // 1/12 of 24000 = 2000, binomial standard deviation 43: 5 sigma either side.
    EXPECT_NEAR(count, 2000, 215) << label;
  }
  // The same image always gets the same group; another seed, prompt or stream gives other draws.
  EXPECT_EQ(uniform.draw(7, "nurse", 5).label(), uniform.draw(7, "nurse", 5).label());
  int same_seed = 0, same_prompt = 0;
  for (int i = 0; i < 200; ++i) {
    same_seed += uniform.draw(7, "nurse", i).label() == uniform.draw(8, "nurse", i).label();
    same_prompt += uniform.draw(7, "nurse", i).label() == uniform.draw(7, "ceo", i).label();
  }
  EXPECT_LT(same_seed, 45);  // 200/12 = 17 expected by chance
  EXPECT_LT(same_prompt, 45);
  EXPECT_NE(image_uniform(1, "a", 0, "group"), image_uniform(1, "a", 0, "other"));
}

TEST(GroupSampler, ZeroShareGroupsAreNeverDrawnAndSharesMustSumToOne) {
  const audit::Taxonomy taxonomy;
  audit::Target target(taxonomy, 1);
  std::vector<double> shares(12, 0.0);
  shares[static_cast<size_t>(taxonomy.gender_race_index(1, 3))] = 0.75;  // Female black
  shares[static_cast<size_t>(taxonomy.gender_race_index(0, 0))] = 0.25;  // Male asian
  target.set(audit::Attribute::gender_race, -1, shares);
  const GroupDistribution d = GroupDistribution::from_target(taxonomy, target, 0);
  std::map<std::string, int> counts;
  for (int i = 0; i < 4000; ++i) ++counts[d.draw(1, "p", i).label()];
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_NEAR(counts["Female black"], 3000, 150);
  EXPECT_NEAR(counts["Male asian"], 1000, 150);
}

TEST(BalancedPrompting, RewritesEachImagesPromptWithItsDrawnGroupWhateverTheBatch) {
  GroupTargets targets;
  targets.all = GroupDistribution::uniform(audit::Taxonomy());
  const Intervention method =
      balanced_prompting(targets, 3, {{"ceo", "A photo of the {group} CEO of an important company"}});
  EXPECT_EQ(method.method, "balanced_prompting");
  EXPECT_EQ(method.settings["seed"], 3);
  EXPECT_EQ(method.settings["target"]["all"].size(), 12u);

  auto run = [&](const std::vector<ImageSlot>& slots) {
    GenerationRequest request;
    for (const auto& slot : slots) {
      request.prompts.push_back(slot.prompt);
      request.seeds.push_back(slot.seed);
    }
    const std::vector<std::string> groups = method.apply(request, slots);
    std::map<std::pair<std::string, int64_t>, std::pair<std::string, std::string>> out;
    for (size_t k = 0; k < slots.size(); ++k)
      out[{slots[k].prompt_id, slots[k].index}] = {request.prompts[k], groups[k]};
    return out;
  };
  std::vector<ImageSlot> slots;
  for (int64_t i = 0; i < 6; ++i)
    slots.push_back({"nurse", "A photo of a nurse at work", i, 100 + static_cast<uint64_t>(i)});
  for (int64_t i = 0; i < 6; ++i)
    slots.push_back({"ceo", "A photo of a CEO of an important company", i, 100 + static_cast<uint64_t>(i)});
  const auto together = run(slots);
  std::set<std::string> groups_seen;
  for (const auto& slot : slots) {
    const auto alone = run({slot});
    EXPECT_EQ(alone, (std::map<std::pair<std::string, int64_t>, std::pair<std::string, std::string>>{
                         {{slot.prompt_id, slot.index}, together.at({slot.prompt_id, slot.index})}}));
    const auto& [prompt, group] = together.at({slot.prompt_id, slot.index});
    groups_seen.insert(group);
    const Group& drawn = targets.all.draw(3, slot.prompt_id, slot.index);
    EXPECT_EQ(group, drawn.label());
    const std::string phrase = audit::group_phrase(drawn.race, drawn.gender);
    if (slot.prompt_id == "nurse") {
      EXPECT_NE(prompt.find(phrase + " nurse at work"), std::string::npos) << prompt;
    } else {
      EXPECT_EQ(prompt, "A photo of the " + phrase + " CEO of an important company");  // the template
    }
  }
  EXPECT_GT(groups_seen.size(), 3u);
}

TEST(EmbeddingProjection, PairsEveryTwoGroupsOfAPrompt) {
  const audit::Taxonomy taxonomy;
  const std::vector<std::string> prompts = {"A photo of a doctor", "A photo of an engineer at work"};
  const PromptPairs gender = group_pairs(prompts, audit::Attribute::gender, taxonomy);
  EXPECT_EQ(gender.prompts,
            (std::vector<std::string>{"A photo of a male doctor", "A photo of a female doctor",
                                      "A photo of a male engineer at work", "A photo of a female engineer at work"}));
  EXPECT_EQ(gender.pairs, (std::vector<std::pair<int, int>>{{0, 1}, {2, 3}}));
  EXPECT_EQ(group_pairs(prompts, audit::Attribute::race, taxonomy).pairs.size(), 30u);
  EXPECT_EQ(group_pairs(prompts, audit::Attribute::gender_race, taxonomy).pairs.size(), 132u);
  EXPECT_THROW(group_pairs(prompts, audit::Attribute::age, taxonomy), UsageError);
}

TEST(EmbeddingProjection, CalibrationMatrixIsTheClosedFormAndShrinksThePairDirections) {
  StableDiffusionModel model = load_stable_diffusion(test::fixtures_dir() / "tiny-sd2", torch::kCPU, torch::kFloat32);
  const PromptPairs pairs = group_pairs({"A photo of a doctor", "A photo of a nurse"}, audit::Attribute::gender, {});
  const torch::Tensor p = calibration_matrix(model, pairs, 500);
  const int64_t d = model.text_encoder->config().hidden_size;
  ASSERT_EQ(p.sizes(), (std::vector<int64_t>{d, d}));
  ASSERT_EQ(p.scalar_type(), torch::kFloat64);

  // Its definition, computed here from the end-of-text states independently: (lambda M + I) P = I.
  StableDiffusionPipeline pipeline(model);
  std::vector<torch::Tensor> z;
  for (const auto& prompt : pairs.prompts) {
    const auto ids = model.tokenizer.encode(prompt);
    const int64_t end = static_cast<int64_t>(std::max_element(ids.begin(), ids.end()) - ids.begin());
    torch::Tensor state = pipeline.encode_prompts({prompt})[0][end].to(torch::kFloat64);
    z.push_back(state / state.norm());
  }
  torch::Tensor m = torch::zeros({d, d}, torch::kFloat64);
  for (const auto& [i, j] : pairs.pairs)
    m += torch::outer(z[i] - z[j], z[i] - z[j]) / static_cast<double>(pairs.pairs.size());
  const torch::Tensor identity = torch::eye(d, torch::kFloat64);
  EXPECT_LT((torch::matmul(500 * m + identity, p) - identity).abs().max().item<double>(), 1e-6);
  EXPECT_LT((p - p.t()).abs().max().item<double>(), 1e-9);  // symmetric

  // A pair's difference direction shrinks by far more than a direction orthogonal to every pair difference.
  const torch::Tensor diff = (z[0] - z[1]) / (z[0] - z[1]).norm();
  torch::Tensor other = torch::randn({d}, torch::kFloat64);
  for (const auto& [i, j] : pairs.pairs) {
    torch::Tensor u = (z[i] - z[j]) / (z[i] - z[j]).norm();
    other -= u * other.dot(u);
  }
  other = other - diff * other.dot(diff);
  other /= other.norm();
  EXPECT_LT(p.matmul(diff).norm().item<double>(), 0.2);
  EXPECT_NEAR(p.matmul(other).norm().item<double>(), 1.0, 0.05);
  // lambda 0 changes nothing.
  EXPECT_LT((calibration_matrix(model, pairs, 0) - identity).abs().max().item<double>(), 1e-12);
  EXPECT_THROW(calibration_matrix(model, pairs, -1), InputError);
  EXPECT_THROW(calibration_matrix(model, PromptPairs{}, 500), InputError);
}

// Parity with the authors' code (tools/mitigations/projection_reference.py: their get_M over the built-in model's
// text encoder, P = inv(lambda M + I), the prompt's states times P^T), fp32 encoder on both sides.
TEST(EmbeddingProjection, MatchesTheAuthorsCalibrationOnTheBuiltinModel) {
  const std::filesystem::path dir = test::source_dir() / "tests" / "data" / "mitigations";
  const Json json = read_json_file(dir / "projection_reference.json");
  const TensorMap reference = read_safetensors(dir / "projection_reference.safetensors").tensors;
  PromptPairs pairs;
  pairs.prompts = json["prompts"].get<std::vector<std::string>>();
  for (const auto& pair : json["pairs"]) pairs.pairs.emplace_back(pair[0].get<int>(), pair[1].get<int>());
  StableDiffusionModel model =
      load_stable_diffusion(test::source_dir() / "models" / "builtin", torch::kCPU, torch::kFloat32);
  const torch::Tensor p = calibration_matrix(model, pairs, json["lambda"].get<double>());
  const torch::Tensor expected_p = reference.at("P").to(torch::kFloat64);
  ASSERT_EQ(p.sizes(), expected_p.sizes());
  // P - I is what the calibration adds (up to 0.07 here); fp32 end-of-text states bound its agreement.
  EXPECT_LT((p - expected_p).abs().max().item<double>(), 1e-4);

  StableDiffusionPipeline pipeline(model);
  const torch::Tensor states = pipeline.encode_prompts({json["prompt"].get<std::string>()});
  EXPECT_LT((states - reference.at("states")).abs().max().item<double>(), 1e-4);
  const torch::Tensor projected = torch::matmul(states, p.t().to(torch::kFloat32));
  EXPECT_LT((projected - reference.at("projected")).abs().max().item<double>(), 1e-4);
  // And it moved them: the comparison is not vacuous.
  EXPECT_GT((reference.at("projected") - reference.at("states")).abs().max().item<double>(), 0.1);
}

TEST(EmbeddingProjection, InterventionProjectsThePromptStatesOnly) {
  StableDiffusionModel model = load_stable_diffusion(test::fixtures_dir() / "tiny-sd2", torch::kCPU, torch::kFloat32);
  ProjectionOptions options;
  const Intervention method = embedding_projection({"A photo of a doctor"}, options);
  EXPECT_EQ(method.settings["lambda"], 500.0);
  EXPECT_EQ(method.settings["attribute"], "gender");
  method.prepare(model);
  GenerationRequest request;
  request.prompts = {"A photo of a doctor"};
  request.seeds = {0};
  request.steps = 2;
  const std::vector<std::string> groups = method.apply(request, {{"doctor", "A photo of a doctor", 0, 0}});
  EXPECT_EQ(groups, std::vector<std::string>{""});
  ASSERT_TRUE(request.transform_text_states);
  StableDiffusionPipeline pipeline(model);
  const torch::Tensor states = pipeline.encode_prompts(request.prompts);
  const torch::Tensor p =
      calibration_matrix(model, group_pairs({"A photo of a doctor"}, audit::Attribute::gender, {}), 500);
  const torch::Tensor expected = torch::matmul(states.to(torch::kFloat64), p.t());
  EXPECT_LT((request.transform_text_states(states).to(torch::kFloat64) - expected).abs().max().item<double>(), 1e-5);
  // The images change, and are the same whatever the batch.
  GenerationRequest plain = request;
  plain.transform_text_states = nullptr;
  const torch::Tensor projected = pipeline.generate(request);
  EXPECT_GT((projected - pipeline.generate(plain)).abs().max().item<double>(), 1e-3);
}

TEST(GenerationMethods, NamesAndErrors) {
  EXPECT_EQ(generation_methods(), (std::vector<std::string>{"balanced_prompting", "projection", "fair_diffusion"}));
  EXPECT_TRUE(is_generation_method("projection"));
  EXPECT_FALSE(is_generation_method("uce"));
  MethodSettings settings;
  settings.targets.all = GroupDistribution::uniform(settings.taxonomy);
  settings.prompts = {"A photo of a doctor"};
  EXPECT_THROW(generation_method("dreambooth", settings), UsageError);
  settings.projection_attribute = "age";
  EXPECT_THROW(generation_method("projection", settings), UsageError);
}

}  // namespace
}  // namespace fairdiff::mitigate
