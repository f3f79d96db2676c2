// Semantic guidance (SEGA) against diffusers' SemanticStableDiffusionPipeline on tiny-sd2, from
// tests/data/mitigations/sega_reference.* (tools/mitigations/sega_reference.py, which runs each image as its own
// call; here the images of a case run as one batch): the guidance of every step computed from the reference's own
// UNet estimates, and the whole pipeline (every step's latents, the decoded images). Also: no edits is the plain
// pipeline bit for bit, an image's guidance does not depend on its batch, bad settings are refused by field.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>

#include "core/attention.h"
#include "core/error.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "diffusion/stable_diffusion.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

std::filesystem::path reference_dir() {
  return test::source_dir() / "tests" / "data" / "mitigations";
}

StableDiffusionModel tiny_sd2() {
  return load_stable_diffusion(test::fixtures_dir() / "tiny-sd2", torch::kCPU, torch::kFloat32);
}

SemanticEdit edit_from_json(const Json& j) {
  SemanticEdit e;
  e.prompt = j.at("prompt").get<std::string>();
  e.reverse = j.at("reverse").get<bool>();
  e.guidance_scale = j.at("guidance_scale").get<double>();
  e.warmup_steps = j.at("warmup_steps").get<int64_t>();
  if (!j.at("cooldown_steps").is_null()) e.cooldown_steps = j.at("cooldown_steps").get<int64_t>();
  e.threshold = j.at("threshold").get<double>();
  e.weight = j.at("weight").get<double>();
  return e;
}

GenerationRequest request_from_case(const Json& c) {
  GenerationRequest r;
  auto guidance = std::make_shared<SemanticGuidance>();
  guidance->momentum_scale = c.at("momentum_scale").get<double>();
  guidance->momentum_beta = c.at("momentum_beta").get<double>();
  for (const Json& image : c.at("images")) {
    r.prompts.push_back(image.at("prompt").get<std::string>());
    r.seeds.push_back(image.at("seed").get<uint64_t>());
    std::vector<SemanticEdit> edits;
    for (const Json& e : image.at("edits")) edits.push_back(edit_from_json(e));
    guidance->edits.push_back(edits);
  }
  r.negative_prompt = c.at("negative_prompt").get<std::string>();
  r.steps = c.at("steps").get<int64_t>();
  r.guidance_scale = c.at("guidance_scale").get<double>();
  r.scheduler = c.at("scheduler").get<std::string>();
  r.width = r.height = c.at("size").get<int64_t>();
  r.semantic_guidance = guidance;
  return r;
}

class SemanticGuidanceParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    set_fused_attention_enabled(false);
    info_ = read_json_file(reference_dir() / "sega_reference.json");
    ref_ = read_safetensors(reference_dir() / "sega_reference.safetensors").tensors;
    for (const Json& c : info_.at("cases"))
      if (c.at("name") == GetParam()) case_ = c;
    ASSERT_FALSE(case_.is_null()) << GetParam();
  }
  torch::Tensor ref(const std::string& key) const { return ref_.at(GetParam() + "." + key); }

  Json info_;
  TensorMap ref_;
  Json case_;
};

// The smallest gap between |e_c| values next to a quantile cut, over the reference's steps: how close the case comes
// to an element that 1e-6 differences in the UNet would move across the mask.
double smallest_gap_at_the_cuts(const torch::Tensor& uncond, const torch::Tensor& edit, const Json& edits) {
  double smallest = INFINITY;
  for (int64_t i = 0; i < uncond.size(0); ++i) {
    for (int64_t c = 0; c < edit.size(1); ++c) {
      const Json& e = edits[static_cast<size_t>(c)];
      const torch::Tensor magnitude = ((edit[i][c] - uncond[i]) * e.at("guidance_scale").get<double>()).abs();
      const torch::Tensor sorted = std::get<0>(magnitude.flatten(1).sort(1));  // [Cl, h w]
      const int64_t n = sorted.size(1);
      const auto below = static_cast<int64_t>(std::floor(e.at("threshold").get<double>() * static_cast<double>(n - 1)));
      for (int64_t a = std::max<int64_t>(below - 1, 0); a <= std::min(below, n - 2); ++a)
        smallest = std::min(smallest, (sorted.select(1, a + 1) - sorted.select(1, a)).min().item<double>());
    }
  }
  return smallest;
}

TEST_P(SemanticGuidanceParity, GuidanceFromTheReferencesEstimatesMatchesEveryStep) {
  // The guider fed the reference's UNet estimates, step by step (its momentum carried over), against the reference's
  // guided noise uncond + (guidance_scale (text - uncond) + sem_guidance). Same inputs, so no mask can flip: this is
  // the algorithm alone (warm-up, partial renormalisation, cooldown, momentum, thresholds), to activation tolerance.
  const GenerationRequest request = request_from_case(case_);
  const int64_t images = static_cast<int64_t>(request.prompts.size());
  const int64_t steps = ref("timesteps").size(0);
  SemanticGuider guider(*request.semantic_guidance);
  double worst = 0;
  for (int64_t i = 0; i < steps; ++i) {
    std::vector<torch::Tensor> uncond, text, expected;
    std::vector<std::vector<torch::Tensor>> concepts(static_cast<size_t>(request.semantic_guidance->num_edits()));
    for (int64_t j = 0; j < images; ++j) {
      const std::string key = "image" + std::to_string(j);
      const torch::Tensor u = ref(key + ".uncond_estimates")[i], t = ref(key + ".text_estimates")[i];
      uncond.push_back(u);
      text.push_back(t);
      for (size_t c = 0; c < concepts.size(); ++c) concepts[c].push_back(ref(key + ".edit_estimates")[i][c]);
      expected.push_back(u + (request.guidance_scale * (t - u) + ref(key + ".sem_guidance")[i]));
    }
    std::vector<torch::Tensor> rows = {torch::stack(uncond), torch::stack(text)};
    for (const auto& c : concepts) rows.push_back(torch::stack(c));
    const torch::Tensor got = guider.guide(i, torch::cat(rows, 0), request.guidance_scale);  // [B, Cl, h, w]
    const double diff = (got - torch::stack(expected)).abs().max().item<double>();
    worst = std::max(worst, diff);
    EXPECT_LE(diff, 1e-4) << GetParam() << " step " << i;  // the fixtures' tolerance for fp32 activations
  }
  std::cout << GetParam() << ": guided noise from the reference's estimates, max |diff| over " << steps << " steps "
            << worst << "\n";
}

TEST_P(SemanticGuidanceParity, StepLatentsAndImagesMatchTheReference) {
  const GenerationRequest request = request_from_case(case_);
  const int64_t images = static_cast<int64_t>(request.prompts.size());
  for (int64_t j = 0; j < images; ++j) {
    // The cases keep every |e_c| at least this far from its neighbour at a cut (tools/mitigations/sega_reference.py
    // says why): well above the UNet's 1e-6 differences, so a whole-pipeline comparison is meaningful.
    const std::string key = "image" + std::to_string(j);
    const double gap = smallest_gap_at_the_cuts(ref(key + ".uncond_estimates"), ref(key + ".edit_estimates"),
                                                case_.at("images")[static_cast<size_t>(j)].at("edits"));
    std::cout << GetParam() << "." << key << ": smallest gap at a quantile cut " << gap << "\n";
    EXPECT_GT(gap, 1e-5) << key;
  }

  StableDiffusionModel model = tiny_sd2();
  StableDiffusionPipeline pipe(model);
  const torch::Tensor noise = pipe.initial_noise(request.seeds, request.height, request.width);
  for (int64_t j = 0; j < images; ++j) {
    const std::string key = "image" + std::to_string(j);
    ASSERT_TRUE(torch::equal(noise[j], ref(key + ".init_noise"))) << key << ": the initial noise convention";
  }

  std::vector<torch::Tensor> steps;
  const torch::Tensor image = pipe.generate(request, [&](size_t, const torch::Tensor& l) { steps.push_back(l); });
  ASSERT_EQ(static_cast<int64_t>(steps.size()), ref("timesteps").size(0));
  for (int64_t j = 0; j < images; ++j) {
    const std::string key = "image" + std::to_string(j);
    const torch::Tensor expected_steps = ref(key + ".step_latents");
    for (size_t i = 0; i < steps.size(); ++i) {
      // The fixtures' tolerance for latents: allclose(atol = 1e-4, rtol = 1e-4) (they reach |29| here).
      const torch::Tensor expected = expected_steps[static_cast<int64_t>(i)];
      const torch::Tensor got = steps[i][j];
      const torch::Tensor excess = (got - expected).abs() - (1e-4 + 1e-4 * expected.abs());
      EXPECT_LE(excess.max().item<double>(), 0.0) << GetParam() << "." << key << " step " << i << ": max |diff| "
                                                  << (got - expected).abs().max().item<double>();
    }
    const torch::Tensor latent_diff = (steps.back()[j] - ref(key + ".latents")).abs();
    const torch::Tensor image_diff = (image[j] - ref(key + ".image")).abs();
    std::cout << GetParam() << "." << key << ": final latents max |diff| " << latent_diff.max().item<double>()
              << " mean " << latent_diff.mean().item<double>() << "; image max |diff| "
              << image_diff.max().item<double>() << " mean " << image_diff.mean().item<double>() << "\n";
    EXPECT_LE(image_diff.max().item<double>(), 1e-3) << key;  // the fixtures' tolerance for decoded images
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, SemanticGuidanceParity, ::testing::Values("pndm_pair", "ddim_three"));

TEST(SemanticGuidance, TheEditsChangeTheImage) {
  // Guards the parity test against a reference whose edits did nothing.
  set_fused_attention_enabled(false);
  const Json info = read_json_file(reference_dir() / "sega_reference.json");
  GenerationRequest request = request_from_case(info.at("cases")[0]);
  request.semantic_guidance = nullptr;
  StableDiffusionModel model = tiny_sd2();
  StableDiffusionPipeline pipe(model);
  const torch::Tensor plain = pipe.generate(request);
  const TensorMap ref = read_safetensors(reference_dir() / "sega_reference.safetensors").tensors;
  EXPECT_GT((plain[0] - ref.at("pndm_pair.image0.image")).abs().max().item<double>(), 1e-2);
}

TEST(SemanticGuidance, NoEditsIsThePlainPipelineBitForBit) {
  StableDiffusionModel model = tiny_sd2();
  StableDiffusionPipeline pipe(model);
  GenerationRequest plain;
  plain.prompts = {"a photo of a nurse", "a photo of a CEO"};
  plain.seeds = {3, 4};
  plain.steps = 4;
  plain.width = plain.height = 32;
  std::vector<torch::Tensor> plain_steps, empty_steps;
  const torch::Tensor expected =
      pipe.generate(plain, [&](size_t, const torch::Tensor& l) { plain_steps.push_back(l); });
  GenerationRequest empty = plain;
  auto guidance = std::make_shared<SemanticGuidance>();
  guidance->edits = {{}, {}};  // K = 0
  empty.semantic_guidance = guidance;
  const torch::Tensor got = pipe.generate(empty, [&](size_t, const torch::Tensor& l) { empty_steps.push_back(l); });
  EXPECT_TRUE(torch::equal(got, expected));
  ASSERT_EQ(empty_steps.size(), plain_steps.size());
  for (size_t i = 0; i < plain_steps.size(); ++i) EXPECT_TRUE(torch::equal(empty_steps[i], plain_steps[i])) << i;
}

TEST(SemanticGuidance, AnImagesGuidanceDoesNotDependOnItsBatch) {
  // Bit for bit: each image alone against a batch of three in different warm-up states (image 0 partly warmed up
  // at step 0, image 2 not before step 2), with momentum carried over three steps.
  torch::manual_seed(0);
  const int64_t b = 3, k = 2;
  const torch::Tensor pred = torch::randn({(2 + k) * b, 4, 8, 8});  // [uncond B, prompt B, concept_1 B, concept_2 B]
  SemanticGuidance batch;
  for (int64_t i = 0; i < b; ++i) {
    batch.edits.push_back({SemanticEdit{"male person", true, 4, 1, std::nullopt, 0.9, 1},
                           SemanticEdit{"female person", false, 5, i, std::nullopt, 0.8, 1.5}});
  }
  batch.momentum_scale = 0.3;
  batch.momentum_beta = 0.6;
  SemanticGuider batched(batch);
  std::vector<torch::Tensor> together;
  for (int64_t step = 0; step < 3; ++step) together.push_back(batched.guide(step, pred * (step + 1.0), 7.5));
  for (int64_t i = 0; i < b; ++i) {
    SemanticGuidance one = batch;
    one.edits = {batch.edits[static_cast<size_t>(i)]};
    SemanticGuider alone(one);
    const torch::Tensor rows = pred.view({2 + k, b, 4, 8, 8}).select(1, i);  // [2 + K, Cl, h, w]
    for (int64_t step = 0; step < 3; ++step) {
      EXPECT_TRUE(torch::equal(alone.guide(step, rows * (step + 1.0), 7.5)[0], together[step][i]))
          << "image " << i << " step " << step;
    }
  }
}

TEST(SemanticGuidance, AnImageDoesNotDependOnItsBatchThroughThePipeline) {
  // As BatchInvariance checks for the plain pipeline: on the CPU, bit for bit, with [(2 + K) B] UNet batches.
  StableDiffusionModel model = tiny_sd2();
  StableDiffusionPipeline pipe(model);
  GenerationRequest batch;
  batch.prompts = {"a photo of a nurse", "a photo of a CEO", "a photo of a pilot"};
  batch.seeds = {3, 4, 5};
  batch.steps = 3;
  batch.width = batch.height = 32;
  auto guidance = std::make_shared<SemanticGuidance>();
  const std::vector<std::pair<std::string, std::string>> toward_away = {
      {"female person", "male person"}, {"male person", "female person"}, {"old person", "young person"}};
  for (size_t i = 0; i < toward_away.size(); ++i) {
    guidance->edits.push_back(
        {SemanticEdit{toward_away[i].second, true, 4, 1, std::nullopt, 0.9, 1},
         SemanticEdit{toward_away[i].first, false, 4, static_cast<int64_t>(i), std::nullopt, 0.8, 1.5}});
  }
  guidance->momentum_scale = 0.3;
  guidance->momentum_beta = 0.6;
  batch.semantic_guidance = guidance;
  const torch::Tensor batched = pipe.generate(batch);
  for (size_t i = 0; i < batch.prompts.size(); ++i) {
    GenerationRequest alone = batch;
    alone.prompts = {batch.prompts[i]};
    alone.seeds = {batch.seeds[i]};
    auto one = std::make_shared<SemanticGuidance>(*guidance);
    one->edits = {guidance->edits[i]};
    alone.semantic_guidance = one;
    const torch::Tensor image = pipe.generate(alone);
    EXPECT_TRUE(torch::equal(image[0], batched[static_cast<int64_t>(i)]))
        << "image " << i << " differs by up to "
        << (image[0] - batched[static_cast<int64_t>(i)]).abs().max().item<float>();
  }
}

// The FieldError of validate() for a guidance with one image and one concept modified by `change`.
std::string refused_field(const std::function<void(SemanticGuidance&)>& change, int64_t steps = 10,
                          double guidance_scale = 7.5, std::string* message = nullptr) {
  SemanticGuidance g;
  g.edits = {{SemanticEdit{"female person", false, 4, 2, std::nullopt, 0.9, 1}}};
  change(g);
  try {
    g.validate(1, steps, guidance_scale);
  } catch (const FieldError& e) {
    if (message) *message = e.what();
    return e.field();
  }
  return "";
}

TEST(SemanticGuidance, BadSettingsAreRefusedByField) {
  EXPECT_EQ(refused_field([](SemanticGuidance&) {}), "");
  std::string message;
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits[0][0].threshold = 1.0; }, 10, 7.5, &message),
            "edit_threshold");
  EXPECT_NE(message.find("edit_threshold 1 (image 0, edit concept 0)"), std::string::npos) << message;
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits[0][0].threshold = -0.1; }), "edit_threshold");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits[0][0].guidance_scale = -1; }), "edit_guidance_scale");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits[0][0].guidance_scale = NAN; }), "edit_guidance_scale");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits[0][0].warmup_steps = 10; }, 10, 7.5, &message),
            "edit_warmup_steps");
  EXPECT_NE(message.find("never be applied"), std::string::npos) << message;
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits[0][0].warmup_steps = -1; }), "edit_warmup_steps");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits[0][0].cooldown_steps = 2; }), "edit_cooldown_steps");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits[0][0].cooldown_steps = 3; }), "");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) {
              g.edits[0].push_back(SemanticEdit{"male person", true, 4, 5, std::nullopt, 0.9, 1});
              g.edits[0][0].cooldown_steps = 4;  // before the second concept has warmed up
            }),
            "edit_cooldown_steps");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits[0][0].weight = 0; }), "edit_weights");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits[0][0].prompt = ""; }), "editing_prompt");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.momentum_scale = -0.1; }), "edit_momentum_scale");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.momentum_beta = 1.0; }), "edit_mom_beta");
  EXPECT_EQ(refused_field([](SemanticGuidance& g) { g.edits.push_back({}); }), "semantic_guidance");  // 2 images
  EXPECT_EQ(refused_field([](SemanticGuidance&) {}, 10, 1.0, &message), "guidance_scale");
  EXPECT_NE(message.find("classifier-free guidance"), std::string::npos) << message;
}

TEST(SemanticGuidance, GenerateRefusesBadSettingsBeforeDenoising) {
  StableDiffusionModel model = tiny_sd2();
  StableDiffusionPipeline pipe(model);
  GenerationRequest r;
  r.prompts = {"a photo of a nurse", "a photo of a CEO"};
  r.seeds = {3, 4};
  r.steps = 2;
  r.width = r.height = 32;
  auto guidance = std::make_shared<SemanticGuidance>();
  guidance->edits = {{SemanticEdit{"female person", false, 4, 1, std::nullopt, 0.9, 1}},
                     {SemanticEdit{"male person", false, 4, 1, std::nullopt, 0.9, 1},
                      SemanticEdit{"old person", false, 4, 1, std::nullopt, 0.9, 1}}};
  r.semantic_guidance = guidance;
  try {
    pipe.generate(r);
    FAIL() << "a batch with 1 and 2 concepts was accepted";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "semantic_guidance");
    EXPECT_NE(std::string(e.what()).find("image 0 has 1 edit concepts, another has 2"), std::string::npos) << e.what();
  }
  guidance->edits[1].pop_back();
  r.guidance_scale = 1.0;
  EXPECT_THROW(pipe.generate(r), FieldError);
}

TEST(SemanticGuidance, SettingsJsonListsEveryField) {
  SemanticGuidance g;
  g.edits = {{SemanticEdit{"female person", false, 4, 2, 7, 0.9, 1.5}}};
  const Json j = g.to_json();
  EXPECT_EQ(j.at("momentum_scale"), 0.1);
  EXPECT_EQ(j.at("momentum_beta"), 0.4);
  const Json& e = j.at("edits")[0][0];
  for (const char* key :
       {"prompt", "reverse", "guidance_scale", "warmup_steps", "cooldown_steps", "threshold", "weight"})
    EXPECT_TRUE(e.contains(key)) << key;
  EXPECT_EQ(e.at("cooldown_steps"), 7);
}

}  // namespace
}  // namespace fairdiff
