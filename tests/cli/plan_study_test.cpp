// `fairdiff plan` end to end on the study's detections: the study rule gives exactly the rows of
// prompts_to_generate.csv; the target rule and bad inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/csv.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

std::string exe() {
  return FAIRDIFF_EXE;
}
std::filesystem::path seed() {
  return test::source_dir() / "data" / "seed";
}
std::string study_inputs() {
  return " --prompts " + (seed() / "prompts_info.csv").string() + " --detections " +
         (seed() / "study_results" / "prompts_results.csv").string() + " --map race:race=--";
}

TEST(PlanCli, StudyRuleReproducesPromptsToGenerate) {
  auto dir = test::scratch_dir("plan_study");
  std::string output;
  int rc = test::run_command(exe() + " plan" + study_inputs() + " --rule study --out " + (dir / "plan.csv").string(),
                             &output);
  ASSERT_EQ(rc, 0) << output;
  CsvTable plan = read_csv(dir / "plan.csv");
  EXPECT_EQ(plan.header, (std::vector<std::string>{"prompt_id", "prompt", "gender", "race", "share", "n_images",
                                                   "augmented_prompt"}));
  CsvTable expected = read_csv(seed() / "study_results" / "prompts_to_generate.csv");
  ASSERT_EQ(plan.rows.size(), expected.rows.size());
  for (size_t i = 0; i < plan.rows.size(); ++i) {
    const auto& got = plan.rows[i].fields;
    const auto& want = expected.rows[i].fields;
    EXPECT_EQ(std::vector<std::string>(got.begin() + 1, got.begin() + 5), want) << "row " << i + 2;
    EXPECT_EQ(got[5], "10");
  }
  // Spot checks of the rewritten prompts.
  EXPECT_EQ(plan.rows[0].fields[6], "A photo of an Asian male CEO of an important company");
  bool doctor = false;
  for (const auto& row : plan.rows) {
    if (row.fields[0] == "doctor" && row.fields[2] == "Female" && row.fields[3] == "indian") {
      EXPECT_EQ(row.fields[6], "A photo of an Indian female doctor");
      doctor = true;
    }
    if (row.fields[0] == "ceo" && row.fields[2] == "Female" && row.fields[3] == "black") {
      EXPECT_EQ(row.fields[6], "A photo of a black female CEO of an important company");
    }
  }
  EXPECT_TRUE(doctor);
  EXPECT_NE(output.find("116 under-represented groups, 1160 images"), std::string::npos) << output;
}

TEST(PlanCli, TargetRuleAndImagesPerGroup) {
  auto dir = test::scratch_dir("plan_target");
  std::string output;
  int rc = test::run_command(
      exe() + " plan" + study_inputs() + " --rule study --images-per-group 25 --out " + (dir / "p25.csv").string(),
      &output);
  ASSERT_EQ(rc, 0) << output;
  CsvTable p25 = read_csv(dir / "p25.csv");
  for (const auto& row : p25.rows) EXPECT_EQ(row.fields[5], "25");
  rc = test::run_command(exe() + " plan" + study_inputs() + " --rule target --out " + (dir / "target.csv").string(),
                         &output);
  ASSERT_EQ(rc, 0) << output;
  CsvTable target = read_csv(dir / "target.csv");
  ASSERT_FALSE(target.rows.empty());
  for (const auto& row : target.rows) {
    EXPECT_LT(std::stod(row.fields[4]), 1.0 / 12) << row.fields[0] << " " << row.fields[2] << " " << row.fields[3];
    EXPECT_GE(std::stoll(row.fields[5]), 1);
  }
}

TEST(PlanCli, BadInputs) {
  auto dir = test::scratch_dir("plan_errors");
  std::string output;
  int rc = test::run_command(
      exe() + " plan" + study_inputs() + " --rule target --images-per-group 5 --out " + (dir / "x.csv").string(),
      &output);
  EXPECT_EQ(rc, 2) << output;
  rc = test::run_command(exe() + " plan" + study_inputs() + " --rule fancy --out " + (dir / "x.csv").string(), &output);
  EXPECT_EQ(rc, 2) << output;
  EXPECT_NE(output.find("study, target"), std::string::npos) << output;
  rc = test::run_command(exe() + " plan --prompts " + (seed() / "prompts_info.csv").string() + " --detections " +
                             (seed() / "study_results" / "prompts_results.csv").string() + " --out " +
                             (dir / "x.csv").string(),
                         &output);
  EXPECT_EQ(rc, 3) << output;
  EXPECT_NE(output.find("unknown race label 'race'"), std::string::npos) << output;
  // A prompt the rewriter cannot place the group in.
  std::FILE* f = std::fopen((dir / "prompts.csv").c_str(), "w");
  std::fputs("prompt_id,prompt\ndocs,Doctors at work\n", f);
  std::fclose(f);
  f = std::fopen((dir / "d.csv").c_str(), "w");
  std::fputs("prompt,path,gender,age,race\ndocs,a.png,Male,(25-32),white\n", f);
  std::fclose(f);
  rc = test::run_command(exe() + " plan --prompts " + (dir / "prompts.csv").string() + " --detections " +
                             (dir / "d.csv").string() + " --out " + (dir / "x.csv").string(),
                         &output);
  EXPECT_EQ(rc, 3) << output;
  EXPECT_NE(output.find("{group}"), std::string::npos) << output;
  EXPECT_FALSE(std::filesystem::exists(dir / "x.csv"));
}

}  // namespace
}  // namespace fairdiff
