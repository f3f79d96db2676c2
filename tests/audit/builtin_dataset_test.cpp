// The built-in model's caption recipe: injected shares equal the measured ones within rounding, the rows are
// deterministic in the seed, group captions use the planner's wording, bad inputs fail.
#include "audit/builtin_dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include "core/error.h"
#include "test_paths.h"

namespace fairdiff::audit {
namespace {

PromptSet two_prompts() {
  PromptSet prompts;
  prompts.source = "test prompts";
  prompts.ids = {"ceo", "nurse"};
  prompts.texts = {"A photo of a CEO of an important company", "A photo of a nurse"};
  prompts.templates = {"", ""};
  return prompts;
}

// Every cell gets `per_cell` photos named cell<k>_<i>.jpg.
std::vector<LabeledPhoto> photos(const Taxonomy& taxonomy, int per_cell) {
  std::vector<LabeledPhoto> out;
  for (int g = 0; g < static_cast<int>(taxonomy.genders.size()); ++g) {
    for (int r = 0; r < static_cast<int>(taxonomy.races.size()); ++r) {
      for (int i = 0; i < per_cell; ++i) {
        out.push_back(
            {"cell" + std::to_string(taxonomy.gender_race_index(g, r)) + "_" + std::to_string(i) + ".jpg", g, r});
      }
    }
  }
  return out;
}

std::vector<std::vector<int64_t>> skewed_counts(const Taxonomy& taxonomy) {
  const size_t cells = taxonomy.genders.size() * taxonomy.races.size();
  std::vector<std::vector<int64_t>> counts(2, std::vector<int64_t>(cells, 0));
  counts[0][static_cast<size_t>(taxonomy.gender_race_index(0, 2))] = 70;  // Male white
  counts[0][static_cast<size_t>(taxonomy.gender_race_index(0, 3))] = 20;  // Male black
  counts[0][static_cast<size_t>(taxonomy.gender_race_index(1, 0))] = 7;   // Female asian
  counts[1][static_cast<size_t>(taxonomy.gender_race_index(1, 2))] = 2;   // Female white
  counts[1][static_cast<size_t>(taxonomy.gender_race_index(1, 1))] = 1;   // Female indian
  return counts;
}

TEST(ApportionTest, SumsToTotalAndStaysWithinOneOfTheExactShare) {
  const std::vector<int64_t> weights{70, 20, 7, 0, 3};
  for (int64_t total : {0, 1, 7, 100, 1499, 1500}) {
    const auto parts = apportion(weights, total);
    int64_t sum = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      sum += parts[i];
      EXPECT_LT(std::abs(static_cast<double>(parts[i]) - static_cast<double>(weights[i] * total) / 100.0), 1.0);
    }
    EXPECT_EQ(sum, total);
    EXPECT_EQ(parts[3], 0);
  }
  EXPECT_THROW(apportion({0, 0}, 3), std::invalid_argument);
  EXPECT_THROW(apportion({1, -1}, 3), std::invalid_argument);
}

TEST(BuiltinDatasetTest, InjectedSharesMatchTheMeasuredOnes) {
  Taxonomy taxonomy;
  CaptionRecipe recipe;
  recipe.rows_per_prompt = 300;
  recipe.group_rows_per_cell = 2;
  recipe.neutral_rows = 25;
  recipe.max_photos_per_cell = 50;
  const auto counts = skewed_counts(taxonomy);
  const BuiltinDataset data = build_builtin_dataset(two_prompts(), counts, photos(taxonomy, 60), taxonomy, recipe);
  ASSERT_EQ(data.truth.size(), 2 * 12u);
  std::map<std::pair<std::string, int>, int64_t> prompt_rows;
  int groups = 0, neutral = 0;
  for (const CaptionRow& row : data.rows) {
    if (row.kind == "prompt") ++prompt_rows[{row.prompt_id, taxonomy.gender_race_index(row.gender, row.race)}];
    if (row.kind == "group") ++groups;
    if (row.kind == "neutral") {
      ++neutral;
      EXPECT_EQ(row.caption, "A photo of a person");
    }
  }
  EXPECT_EQ(groups, 2 * 12 * 2);
  EXPECT_EQ(neutral, 25);
  for (const TruthRow& t : data.truth) {
    const int p = t.prompt_id == "ceo" ? 0 : 1;
    const int cell = taxonomy.gender_race_index(t.gender, t.race);
    const double faces = p == 0 ? 97.0 : 3.0;
    EXPECT_NEAR(t.study_share, static_cast<double>(counts[static_cast<size_t>(p)][static_cast<size_t>(cell)]) / faces,
                1e-12);
    EXPECT_LE(std::abs(t.injected_share - t.study_share), 1.0 / 300.0);  // within rounding
    EXPECT_EQ(t.rows, (prompt_rows[{t.prompt_id, cell}]));
  }
  // Rows of a cell are photos of that cell.
  for (const CaptionRow& row : data.rows) {
    EXPECT_EQ(row.file.rfind("cell" + std::to_string(taxonomy.gender_race_index(row.gender, row.race)) + "_", 0), 0u)
        << row.file;
  }
}

TEST(BuiltinDatasetTest, GroupCaptionsUseThePlannersWording) {
  Taxonomy taxonomy;
  CaptionRecipe recipe;
  recipe.rows_per_prompt = 10;
  recipe.group_rows_per_cell = 1;
  recipe.neutral_rows = 0;
  const BuiltinDataset data =
      build_builtin_dataset(two_prompts(), skewed_counts(taxonomy), photos(taxonomy, 3), taxonomy, recipe);
  std::set<std::string> captions;
  for (const CaptionRow& row : data.rows)
    if (row.kind == "group") captions.insert(row.caption);
  EXPECT_EQ(captions.size(), 24u);
  EXPECT_TRUE(captions.count("A photo of a black female CEO of an important company"));
  EXPECT_TRUE(captions.count("A photo of an Indian male nurse"));
  EXPECT_TRUE(captions.count("A photo of a Middle Eastern female nurse"));
}

TEST(BuiltinDatasetTest, DeterministicInTheSeed) {
  Taxonomy taxonomy;
  CaptionRecipe recipe;
  recipe.rows_per_prompt = 120;
  recipe.max_photos_per_cell = 10;  // fewer photos than rows: reused
  const auto counts = skewed_counts(taxonomy);
  const auto pool = photos(taxonomy, 20);
  const std::string a =
      caption_rows_csv(build_builtin_dataset(two_prompts(), counts, pool, taxonomy, recipe), taxonomy);
  const std::string b =
      caption_rows_csv(build_builtin_dataset(two_prompts(), counts, pool, taxonomy, recipe), taxonomy);
  EXPECT_EQ(a, b);
  recipe.seed = 1;
  const BuiltinDataset c = build_builtin_dataset(two_prompts(), counts, pool, taxonomy, recipe);
  EXPECT_NE(a, caption_rows_csv(c, taxonomy));
  std::set<std::string> used(c.photos.begin(), c.photos.end());
  EXPECT_LE(used.size(), 12u * 10u);
  EXPECT_EQ(truth_csv(c, taxonomy).substr(0, 20), "prompt_id,prompt,gen");
}

TEST(BuiltinDatasetTest, StudyMeasurementReadsAsCounts) {
  Taxonomy taxonomy;
  DetectionOptions options;
  options.label_map.add("race:race=--");
  const PromptSet prompts = read_prompts_csv(test::source_dir() / "data/seed/prompts_info.csv");
  const audit::Run run =
      read_detections(test::source_dir() / "data/seed/study_results/prompts_results.csv", "study", prompts, options);
  const auto counts = measured_cell_counts(run, prompts, options.taxonomy);
  ASSERT_EQ(counts.size(), static_cast<size_t>(prompts.size()));
  int64_t total = 0;
  for (const auto& prompt : counts)
    for (int64_t c : prompt) total += c;
  EXPECT_GT(total, 0);
  // Faces with both labels only: fewer than the images.
  EXPECT_LT(total, static_cast<int64_t>(run.images.size()));
}

TEST(BuiltinDatasetTest, BadInputsFail) {
  Taxonomy taxonomy;
  CaptionRecipe recipe;
  auto counts = skewed_counts(taxonomy);
  // A cell the prompt needs has no photo.
  std::vector<LabeledPhoto> no_white;
  for (const auto& p : photos(taxonomy, 2))
    if (p.race != 2) no_white.push_back(p);
  EXPECT_THROW(build_builtin_dataset(two_prompts(), counts, no_white, taxonomy, recipe), InputError);
  // A prompt without a measured face.
  auto empty = counts;
  std::fill(empty[1].begin(), empty[1].end(), 0);
  EXPECT_THROW(build_builtin_dataset(two_prompts(), empty, photos(taxonomy, 2), taxonomy, recipe), InputError);
  // Counts for another number of prompts.
  EXPECT_THROW(build_builtin_dataset(two_prompts(), {counts[0]}, photos(taxonomy, 2), taxonomy, recipe), InputError);
  // A photo outside the taxonomy.
  auto bad = photos(taxonomy, 1);
  bad[0].race = 99;
  EXPECT_THROW(build_builtin_dataset(two_prompts(), counts, bad, taxonomy, recipe), InputError);
  recipe.rows_per_prompt = 0;
  EXPECT_THROW(build_builtin_dataset(two_prompts(), counts, photos(taxonomy, 2), taxonomy, recipe), UsageError);
}

// The known-truth draw of eval-audit: each prompt gets its mix (within rounding), no photo twice within a prompt,
// fewer photos where a cell's pool runs short, the same draw for the same seed, and a clear error for a wanted
// cell without photos.
TEST(DrawKnownTruthTest, DrawsEachPromptsMixWithoutRepeats) {
  Taxonomy taxonomy;
  const auto pool = photos(taxonomy, 30);
  const auto weights = skewed_counts(taxonomy);  // ceo: 70/20/7 of 97; nurse: 2/1 of 3
  const auto drawn = draw_known_truth(pool, weights, 60, 7, taxonomy, two_prompts());
  ASSERT_EQ(drawn.size(), 2U);
  for (size_t p = 0; p < drawn.size(); ++p) {
    std::set<size_t> unique(drawn[p].begin(), drawn[p].end());
    EXPECT_EQ(unique.size(), drawn[p].size()) << "prompt " << p << " repeats a photo";
    std::vector<int64_t> cells(weights[p].size(), 0);
    for (size_t i : drawn[p]) ++cells[static_cast<size_t>(taxonomy.gender_race_index(pool[i].gender, pool[i].race))];
    EXPECT_EQ(cells, apportion(weights[p], static_cast<int64_t>(drawn[p].size()))) << "prompt " << p;
  }
  // ceo: 60 photos would want round(60 * 70 / 97) = 43 Male white of a pool of 30: the largest n that fits is
  // 42 (30 Male white, 9 Male black, 3 Female asian).
  EXPECT_EQ(drawn[0].size(), 42U);
  // nurse: 2:1 of pools of 30: 30 Female white + 15 Female indian.
  EXPECT_EQ(drawn[1].size(), 45U);

  EXPECT_EQ(draw_known_truth(pool, weights, 60, 7, taxonomy, two_prompts()), drawn);
  EXPECT_NE(draw_known_truth(pool, weights, 60, 8, taxonomy, two_prompts()), drawn);
  // A prompt's draw does not depend on the others.
  auto only_nurse = weights;
  std::fill(only_nurse[0].begin(), only_nurse[0].end(), 0);
  const auto drawn_nurse = draw_known_truth(pool, only_nurse, 60, 7, taxonomy, two_prompts());
  EXPECT_TRUE(drawn_nurse[0].empty());
  EXPECT_EQ(drawn_nurse[1], drawn[1]);
}

TEST(DrawKnownTruthTest, AWantedCellWithoutPhotosIsRefused) {
  Taxonomy taxonomy;
  auto pool = photos(taxonomy, 3);
  // No Female asian photo at all, which the ceo prompt wants.
  const int female_asian = taxonomy.gender_race_index(1, 0);
  pool.erase(std::remove_if(pool.begin(), pool.end(),
                            [&](const LabeledPhoto& ph) {
                              return taxonomy.gender_race_index(ph.gender, ph.race) == female_asian;
                            }),
             pool.end());
  try {
    draw_known_truth(pool, skewed_counts(taxonomy), 60, 7, taxonomy, two_prompts());
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("prompt 'ceo' wants"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("none"), std::string::npos) << e.what();
  }
}

TEST(SplitForCalibrationTest, EachCellSplitsByTheFractionDisjointAndDeterministic) {
  Taxonomy taxonomy;
  const auto pool = photos(taxonomy, 9);
  std::vector<size_t> calibration, rest;
  split_for_calibration(pool, 1.0 / 3.0, 4, taxonomy, calibration, rest);
  EXPECT_EQ(calibration.size() + rest.size(), pool.size());
  std::set<size_t> all(calibration.begin(), calibration.end());
  all.insert(rest.begin(), rest.end());
  EXPECT_EQ(all.size(), pool.size());
  std::vector<int> per_cell(taxonomy.genders.size() * taxonomy.races.size(), 0);
  for (size_t i : calibration)
    ++per_cell[static_cast<size_t>(taxonomy.gender_race_index(pool[i].gender, pool[i].race))];
  for (int n : per_cell) EXPECT_EQ(n, 3);
  std::vector<size_t> again, rest_again;
  split_for_calibration(pool, 1.0 / 3.0, 4, taxonomy, again, rest_again);
  EXPECT_EQ(again, calibration);
  split_for_calibration(pool, 1.0 / 3.0, 5, taxonomy, again, rest_again);
  EXPECT_NE(again, calibration);
  EXPECT_THROW(split_for_calibration(pool, 1.0, 4, taxonomy, again, rest_again), std::invalid_argument);
}

}  // namespace
}  // namespace fairdiff::audit
