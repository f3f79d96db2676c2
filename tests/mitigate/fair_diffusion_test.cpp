// Fair Diffusion (mitigate/fair_diffusion.h): the group each image is steered toward does not depend on its batch,
// the edit concepts are the authors' for gender (away from the other gender, toward the drawn one) and the documented
// extension for race, the settings list every parameter, bad options are refused by field, and the intervention
// runs through the pipeline on the tiny SD2 fixture.
#include "mitigate/fair_diffusion.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "core/error.h"
#include "diffusion/stable_diffusion.h"
#include "test_paths.h"

namespace fairdiff::mitigate {
namespace {

GroupTargets uniform_targets() {
  GroupTargets targets;
  targets.all = GroupDistribution::uniform(audit::Taxonomy{});
  return targets;
}

std::vector<ImageSlot> slots_of(const std::vector<std::pair<std::string, int64_t>>& images) {
  std::vector<ImageSlot> slots;
  for (const auto& [id, index] : images)
    slots.push_back({id, "A photo of a " + id, index, static_cast<uint64_t>(100 + index)});
  return slots;
}

struct Applied {
  std::vector<std::string> groups;
  std::shared_ptr<const SemanticGuidance> guidance;
};

Applied apply_to(const Intervention& intervention, const std::vector<ImageSlot>& slots) {
  GenerationRequest request;
  for (const auto& s : slots) {
    request.prompts.push_back(s.prompt);
    request.seeds.push_back(s.seed);
  }
  Applied out;
  out.groups = intervention.apply(request, slots);
  out.guidance = request.semantic_guidance;
  return out;
}

// The index of the first image of `prompt_id` drawn with gender `gender`.
int64_t first_drawn(const GroupTargets& targets, uint64_t seed, const std::string& prompt_id,
                    const std::string& gender) {
  for (int64_t i = 0;; ++i)
    if (targets.of(prompt_id).draw(seed, prompt_id, i).gender == gender) return i;
}

void expect_edit(const SemanticEdit& e, const std::string& prompt, bool reverse, double scale) {
  EXPECT_EQ(e.prompt, prompt);
  EXPECT_EQ(e.reverse, reverse) << prompt;
  EXPECT_DOUBLE_EQ(e.guidance_scale, scale) << prompt;
  // The published settings (generate_images.py): warm-up 5, threshold 0.95, weight 1, no cooldown.
  EXPECT_EQ(e.warmup_steps, 5) << prompt;
  EXPECT_DOUBLE_EQ(e.threshold, 0.95) << prompt;
  EXPECT_DOUBLE_EQ(e.weight, 1.0) << prompt;
  EXPECT_FALSE(e.cooldown_steps.has_value()) << prompt;
}

TEST(FairDiffusion, TheDrawnGroupsDoNotDependOnTheBatch) {
  const Intervention fd = fair_diffusion(uniform_targets(), 7, FairDiffusionOptions{});
  const std::vector<std::pair<std::string, int64_t>> images = {{"nurse", 0}, {"nurse", 1}, {"ceo", 0},
                                                               {"ceo", 5},   {"nurse", 2}, {"pilot", 3}};
  const Applied batch = apply_to(fd, slots_of(images));
  ASSERT_EQ(batch.groups.size(), images.size());
  ASSERT_EQ(batch.guidance->edits.size(), images.size());
  std::vector<std::pair<std::string, int64_t>> reversed(images.rbegin(), images.rend());
  const Applied other_order = apply_to(fd, slots_of(reversed));
  for (size_t i = 0; i < images.size(); ++i) {
    const Applied alone = apply_to(fd, slots_of({images[i]}));
    EXPECT_EQ(alone.groups[0], batch.groups[i]) << i;
    EXPECT_EQ(other_order.groups[images.size() - 1 - i], batch.groups[i]) << i;
    ASSERT_EQ(alone.guidance->edits[0].size(), batch.guidance->edits[i].size());
    for (size_t c = 0; c < alone.guidance->edits[0].size(); ++c) {
      EXPECT_EQ(alone.guidance->edits[0][c].prompt, batch.guidance->edits[i][c].prompt);
      EXPECT_EQ(alone.guidance->edits[0][c].reverse, batch.guidance->edits[i][c].reverse);
    }
  }
  // Both genders appear, and the draw is the group sampler's (the one balanced prompting uses).
  EXPECT_EQ(std::set<std::string>(batch.groups.begin(), batch.groups.end()).size(), 2u);
  const GroupTargets targets = uniform_targets();
  for (size_t i = 0; i < images.size(); ++i)
    EXPECT_EQ(batch.groups[i], targets.all.draw(7, images[i].first, images[i].second).gender);
}

TEST(FairDiffusion, GenderEditsAreTheAuthors) {
  const GroupTargets targets = uniform_targets();
  const Intervention fd = fair_diffusion(targets, 7, FairDiffusionOptions{});
  const int64_t female = first_drawn(targets, 7, "nurse", "Female");
  const int64_t male = first_drawn(targets, 7, "nurse", "Male");
  const Applied a = apply_to(fd, slots_of({{"nurse", female}, {"nurse", male}}));
  EXPECT_EQ(a.groups, (std::vector<std::string>{"Female", "Male"}));
  EXPECT_DOUBLE_EQ(a.guidance->momentum_scale, 0.5);
  EXPECT_DOUBLE_EQ(a.guidance->momentum_beta, 0.6);
  // editing_prompt ["male person", "female person"], reverse_editing_direction [True, False] for a female image.
  ASSERT_EQ(a.guidance->edits[0].size(), 2u);
  expect_edit(a.guidance->edits[0][0], "male person", true, 4);
  expect_edit(a.guidance->edits[0][1], "female person", false, 4);
  ASSERT_EQ(a.guidance->edits[1].size(), 2u);
  expect_edit(a.guidance->edits[1][0], "female person", true, 4);
  expect_edit(a.guidance->edits[1][1], "male person", false, 4);
}

TEST(FairDiffusion, RaceEditsSplitTheRemovalOverTheOtherRaces) {
  const audit::Taxonomy taxonomy;
  const Group group{"Female", "black", 0};
  FairDiffusionOptions options;
  options.attributes = audit::Attribute::race;
  std::vector<SemanticEdit> edits = fair_diffusion_edits(group, taxonomy.genders, taxonomy.races, options);
  ASSERT_EQ(edits.size(), 6u);
  std::set<std::string> removed;
  for (size_t c = 0; c < 5; ++c) {
    EXPECT_TRUE(edits[c].reverse);
    EXPECT_DOUBLE_EQ(edits[c].guidance_scale, 4.0 / 5);
    removed.insert(edits[c].prompt);
  }
  EXPECT_EQ(removed, (std::set<std::string>{"Asian person", "Indian person", "white person", "Middle Eastern person",
                                            "Latino Hispanic person"}));
  expect_edit(edits[5], "black person", false, 4);

  options.race_away = RaceAway::none;
  edits = fair_diffusion_edits(group, taxonomy.genders, taxonomy.races, options);
  ASSERT_EQ(edits.size(), 1u);
  expect_edit(edits[0], "black person", false, 4);

  options.attributes = audit::Attribute::gender_race;
  options.race_away = RaceAway::others;
  edits = fair_diffusion_edits(group, taxonomy.genders, taxonomy.races, options);
  ASSERT_EQ(edits.size(), 8u);  // gender's two, then race's six
  expect_edit(edits[0], "male person", true, 4);
  expect_edit(edits[1], "female person", false, 4);
  expect_edit(edits[7], "black person", false, 4);
}

TEST(FairDiffusion, GenderRaceLabelsAndPerPromptTargets) {
  const audit::Taxonomy taxonomy;
  audit::Target target(taxonomy, 1);
  std::vector<double> shares(12, 0.0);
  shares[static_cast<size_t>(taxonomy.gender_race_index(1, 3))] = 1.0;  // Female black only
  target.set(audit::Attribute::gender_race, -1, shares);
  GroupTargets targets = uniform_targets();
  targets.per_prompt.emplace("nurse", GroupDistribution::from_target(taxonomy, target, 0));
  FairDiffusionOptions options;
  options.attributes = audit::Attribute::gender_race;
  const Intervention fd = fair_diffusion(targets, 3, options);
  const Applied a = apply_to(fd, slots_of({{"nurse", 0}, {"nurse", 1}, {"ceo", 0}}));
  EXPECT_EQ(a.groups[0], "Female black");
  EXPECT_EQ(a.groups[1], "Female black");
  EXPECT_EQ(a.groups[2], targets.all.draw(3, "ceo", 0).label());
  // Zero-share groups still name the removals, so every image has the same number of concepts.
  for (const auto& edits : a.guidance->edits) EXPECT_EQ(edits.size(), 8u);
}

TEST(FairDiffusion, SettingsListEveryParameter) {
  FairDiffusionOptions options;
  options.attributes = audit::Attribute::gender_race;
  const Intervention fd = fair_diffusion(uniform_targets(), 11, options);
  EXPECT_EQ(fd.method, "fair_diffusion");
  const Json& s = fd.settings;
  EXPECT_EQ(s.at("method"), "fair_diffusion");
  EXPECT_EQ(s.at("seed"), 11);
  EXPECT_EQ(s.at("attributes"), "gender_race");
  EXPECT_EQ(s.at("edit_guidance_scale"), 4.0);
  EXPECT_EQ(s.at("edit_warmup_steps"), 5);
  EXPECT_EQ(s.at("edit_threshold"), 0.95);
  EXPECT_EQ(s.at("edit_momentum_scale"), 0.5);
  EXPECT_EQ(s.at("edit_mom_beta"), 0.6);
  EXPECT_EQ(s.at("edit_weight"), 1.0);
  EXPECT_EQ(s.at("concept_noun"), "person");
  EXPECT_EQ(s.at("race_away"), "others");
  EXPECT_EQ(s.at("target").at("source"), "uniform");
  EXPECT_EQ(s.size(), 12u) << s.dump();  // the options' 9 fields, method, seed, target
  EXPECT_EQ(options.to_json().size(), 9u) << "a field of FairDiffusionOptions is missing from its settings";
}

std::string refused_field(const std::function<void(FairDiffusionOptions&)>& change, int64_t steps = 0) {
  FairDiffusionOptions options;
  change(options);
  try {
    options.validate(steps);
  } catch (const FieldError& e) {
    return e.field();
  }
  return "";
}

TEST(FairDiffusion, BadOptionsAreRefusedByField) {
  EXPECT_EQ(refused_field([](FairDiffusionOptions&) {}, 50), "");
  EXPECT_EQ(refused_field([](FairDiffusionOptions& o) { o.attributes = audit::Attribute::age; }), "attributes");
  EXPECT_EQ(refused_field([](FairDiffusionOptions& o) { o.edit_guidance_scale = -1; }), "edit_guidance_scale");
  EXPECT_EQ(refused_field([](FairDiffusionOptions& o) { o.edit_threshold = 1; }), "edit_threshold");
  EXPECT_EQ(refused_field([](FairDiffusionOptions& o) { o.edit_warmup_steps = -1; }), "edit_warmup_steps");
  EXPECT_EQ(refused_field([](FairDiffusionOptions&) {}, 5), "edit_warmup_steps");  // warm-up 5 of 5 steps
  EXPECT_EQ(refused_field([](FairDiffusionOptions& o) { o.edit_momentum_scale = -0.5; }), "edit_momentum_scale");
  EXPECT_EQ(refused_field([](FairDiffusionOptions& o) { o.edit_mom_beta = 1; }), "edit_mom_beta");
  EXPECT_EQ(refused_field([](FairDiffusionOptions& o) { o.edit_weight = 0; }), "edit_weight");
  EXPECT_THROW(fair_diffusion(uniform_targets(), 1,
                              [] {
                                FairDiffusionOptions o;
                                o.edit_threshold = 2;
                                return o;
                              }()),
               FieldError);
  EXPECT_EQ(parse_race_away("none"), RaceAway::none);
  EXPECT_EQ(race_away_name(parse_race_away("others")), "others");
  EXPECT_THROW(parse_race_away("dominant"), FieldError);
}

TEST(FairDiffusion, SteersThePipelineOnTheTinyFixture) {
  StableDiffusionModel model = load_stable_diffusion(test::fixtures_dir() / "tiny-sd2", torch::kCPU, torch::kFloat32);
  StableDiffusionPipeline pipe(model);
  FairDiffusionOptions options;
  options.edit_warmup_steps = 1;
  options.attributes = audit::Attribute::gender_race;
  const Intervention fd = fair_diffusion(uniform_targets(), 5, options);
  const std::vector<ImageSlot> slots = slots_of({{"nurse", 0}, {"ceo", 1}});
  GenerationRequest request;
  for (const auto& s : slots) {
    request.prompts.push_back(s.prompt);
    request.seeds.push_back(s.seed);
  }
  request.steps = 3;
  request.width = request.height = 32;
  const GenerationRequest plain = request;
  const std::vector<std::string> groups = fd.apply(request, slots);
  ASSERT_EQ(groups.size(), 2u);
  const torch::Tensor steered = pipe.generate(request);
  const torch::Tensor unsteered = pipe.generate(plain);
  EXPECT_TRUE(torch::isfinite(steered).all().item<bool>());
  EXPECT_GT((steered - unsteered).abs().max().item<double>(), 1e-3);
}

}  // namespace
}  // namespace fairdiff::mitigate
