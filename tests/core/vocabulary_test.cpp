// The project-wide vocabulary in core: the prompts CSV reader, the asset search, label normalisation and the
// confusion matrix, each with one home that generate, plan, report, the faces module and the audit share.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/assets.h"
#include "core/confusion_matrix.h"
#include "core/error.h"
#include "core/labels.h"
#include "core/prompts.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

std::string error_reading(const std::string& csv) {
  const fs::path path = test::scratch_dir("prompts_reader") / "prompts.csv";
  std::ofstream(path) << csv;
  try {
    read_prompts_csv(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Prompts, ReadsIdsTextsAndOptionalTemplates) {
  const fs::path path = test::scratch_dir("prompts_reader_ok") / "prompts.csv";
  std::ofstream(path)
      << "prompt_id,prompt,template\nceo, A photo of a CEO ,A photo of a {group} CEO\nnurse.2,A nurse,\n";
  const PromptSet prompts = read_prompts_csv(path);
  ASSERT_EQ(prompts.size(), 2);
  EXPECT_EQ(prompts.ids, (std::vector<std::string>{"ceo", "nurse.2"}));
  EXPECT_EQ(prompts.texts[0], "A photo of a CEO");
  EXPECT_EQ(prompts.templates, (std::vector<std::string>{"A photo of a {group} CEO", ""}));
  EXPECT_EQ(prompts.find("A nurse"), 1);
  EXPECT_EQ(prompts.find(" ceo "), 0);
  EXPECT_EQ(prompts.find("doctor"), -1);

  const PromptSet seed = read_prompts_csv(test::source_dir() / "data" / "seed" / "prompts_info.csv");
  EXPECT_EQ(seed.size(), 10);
  EXPECT_EQ(seed.templates[0], "");
}

std::string error_reading_plan(const std::string& csv) {
  const fs::path path = test::scratch_dir("plan_reader") / "plan.csv";
  std::ofstream(path) << csv;
  try {
    read_plan_as_prompts(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Prompts, PlanCsvReadsAsPromptsWithCountsAndFolderSafeIds) {
  const fs::path path = test::scratch_dir("plan_reader_ok") / "plan.csv";
  const std::string header = "prompt_id,prompt,gender,race,share,n_images,augmented_prompt\n";
  std::ofstream(path) << header << "ceo,A CEO,Female,middle eastern,0,3,A middle eastern female CEO\n"
                      << "ceo,A CEO,Male,latino hispanic,0.1,0,A latino hispanic male CEO\n"
                      << "nurse,A nurse,Male,white,0.2,1,A white male nurse\n";
  EXPECT_TRUE(is_plan_csv(path));
  EXPECT_FALSE(is_plan_csv(test::source_dir() / "data" / "seed" / "prompts_info.csv"));
  const PlannedPrompts planned = read_plan_as_prompts(path);
  EXPECT_EQ(planned.prompts.ids, (std::vector<std::string>{"ceo-female-middle-eastern", "nurse-male-white"}));
  EXPECT_EQ(planned.prompts.texts[0], "A middle eastern female CEO");
  EXPECT_EQ(planned.images, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(plan_group_id("ceo", "Male", "Latino  Hispanic / x"), "ceo-male-latino-hispanic-x");

  EXPECT_NE(error_reading_plan(header + "ceo,A,Female,white,0,two,B\n").find("plan.csv:2: n_images 'two'"),
            std::string::npos);
  EXPECT_NE(error_reading_plan(header + "ceo,A,Female,white,0,-1,B\n").find("n_images '-1'"), std::string::npos);
  EXPECT_NE(error_reading_plan(header + "ceo,A,Female,white,0,1,\n").find(":2: empty augmented_prompt"),
            std::string::npos);
  EXPECT_NE(error_reading_plan(header + "ceo,A,Female,white,0,1,B\nceo,A,Female,white,0,1,C\n").find("listed twice"),
            std::string::npos);
  EXPECT_NE(error_reading_plan(header + "ceo,A,Female,white,0,0,B\n").find("asks for no images"), std::string::npos);
  EXPECT_NE(error_reading_plan("prompt_id,gender,race,augmented_prompt\nceo,Female,white,B\n").find("n_images"),
            std::string::npos);
}

TEST(Prompts, RejectsWhatGenerateOrTheAuditCouldNotUseNamingFileAndLine) {
  EXPECT_NE(error_reading("prompt_id,prompt\nceo,A\nceo,B\n").find("prompts.csv:3: prompt_id 'ceo' appears twice"),
            std::string::npos);
  EXPECT_NE(error_reading("prompt_id,prompt\nceo,A\na/b,B\n").find("prompts.csv:3: prompt_id 'a/b' must be"),
            std::string::npos);
  EXPECT_NE(error_reading("prompt_id,prompt\n..,A\n").find(":2: prompt_id '..'"), std::string::npos);
  EXPECT_NE(error_reading("prompt_id,prompt\n,A\n").find(":2: empty prompt_id"), std::string::npos);
  EXPECT_NE(error_reading("prompt_id,prompt\nceo, \n").find(":2: empty prompt for prompt_id 'ceo'"), std::string::npos);
  EXPECT_NE(error_reading("prompt_id,prompt\n").find("no prompts"), std::string::npos);
  EXPECT_NE(error_reading("id,prompt\nceo,A\n").find("prompt_id"), std::string::npos);
  EXPECT_THROW(read_prompts_csv("/nonexistent/prompts.csv"), InputError);
  EXPECT_TRUE(is_folder_safe_id("nurse_2-a.b"));
  EXPECT_FALSE(is_folder_safe_id("a b"));
  EXPECT_FALSE(is_folder_safe_id("."));
}

TEST(Assets, FindTheProjectAndItsFolders) {
  const fs::path root = find_project_root();
  ASSERT_FALSE(root.empty());
  EXPECT_EQ(fs::canonical(root), fs::canonical(test::source_dir()));
  EXPECT_EQ(fs::canonical(find_asset_dir("data/seed", "prompts_info.csv")),
            fs::canonical(test::source_dir() / "data" / "seed"));
  // Not found anywhere: the project root's folder, so that an error can name where it was expected.
  EXPECT_EQ(find_asset_dir("no/such/folder", "x"), root / "no/such/folder");
}

TEST(Labels, OneNormalisationForEverySpelling) {
  EXPECT_EQ(normalize_label("  Latino_Hispanic "), "latino hispanic");
  EXPECT_EQ(normalize_label("Middle-Eastern"), "middle eastern");
  EXPECT_EQ(normalize_label("--"), "--");
  EXPECT_EQ(normalize_race("Latino_Hispanic"), "latino hispanic");
  EXPECT_EQ(normalize_race("latino"), "latino hispanic");
  EXPECT_EQ(normalize_race("Latino/Hispanic"), "latino hispanic");
  EXPECT_EQ(normalize_race("Others"), "other");
  EXPECT_EQ(normalize_race("East  Asian"), "east asian");
  EXPECT_EQ(normalize_gender(" Woman"), "female");
  EXPECT_EQ(normalize_gender("M"), "male");
  EXPECT_EQ(normalize_gender("robot"), "");
}

TEST(ConfusionMatrix, CountsRatesRecallAndJson) {
  ConfusionMatrix m({"male", "female"});
  EXPECT_TRUE(m.counts);
  m.add("male", "male");
  m.add("male", "female");
  m.add("female", "female");
  m.add("female", "female");
  EXPECT_THROW(m.add("male", "robot"), std::logic_error);
  EXPECT_EQ(m.total(), 4);
  EXPECT_DOUBLE_EQ(m.accuracy(), 0.75);
  EXPECT_DOUBLE_EQ(m.recall(0), 0.5);
  EXPECT_EQ(m.recall_per_class(), (std::vector<double>{0.5, 1.0}));
  const Json j = m.to_json();
  EXPECT_EQ(j["confusion"], Json({{1, 1}, {0, 2}}));
  EXPECT_EQ(j["confusion"][0][0].dump(), "1");  // counts stay integers in the JSON the audit reads back
  EXPECT_EQ(j["support"]["female"], 2);
  EXPECT_DOUBLE_EQ(j["per_class"]["male"].get<double>(), 0.5);

  ConfusionMatrix empty_row({"a", "b"});
  empty_row.add("a", "a");
  EXPECT_EQ(empty_row.rates()[1], (std::vector<double>{0.0, 0.0}));
  EXPECT_FALSE(empty_row.to_json()["per_class"].contains("b"));
}

TEST(ConfusionMatrix, KroneckerProductOfTwoFactors) {
  ConfusionMatrix gender, race;
  gender.labels = {"m", "f"};
  gender.entries = {{0.9, 0.1}, {0.2, 0.8}};
  race.labels = {"x", "y", "z"};
  race.entries = {{8, 1, 1}, {0, 10, 0}, {2, 2, 6}};
  race.counts = true;
  ConfusionMatrix joint;
  joint.kronecker_factors = {gender, race};
  const Matrix r = joint.rates();
  ASSERT_EQ(r.size(), 6u);
  EXPECT_NEAR(r[0][0], 0.9 * 0.8, 1e-12);  // (m, x) -> (m, x)
  EXPECT_NEAR(r[5][2], 0.2 * 0.6, 1e-12);  // (f, z) -> (m, z)
  for (const auto& row : r) {
    double total = 0;
    for (double v : row) total += v;
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
}

}  // namespace
}  // namespace fairdiff
