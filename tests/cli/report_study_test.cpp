// `fairdiff report` end to end: the built-in defaults (the study's seven runs from ../shared/seed), explicit
// runs with a target and a confusion matrix, and bad inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/csv.h"
#include "core/fs.h"
#include "core/json.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

std::string exe() {
  return FAIRDIFF_EXE;
}
std::filesystem::path seed() {
  return test::source_dir() / "data" / "seed";
}

TEST(ReportCli, DefaultsReportTheStudy) {
  auto dir = test::scratch_dir("report_defaults");
  std::string output;
  // Run from the project root, as the README's `./build/fairdiff report` does (ctest's working directory).
  int rc = test::run_command(
      "cd " + test::source_dir().string() + " && " + exe() + " report --bootstrap 200 --out " + (dir / "out").string(),
      &output);
  ASSERT_EQ(rc, 0) << output;
  Json metrics = read_json_file(dir / "out" / "metrics.json");
  ASSERT_EQ(metrics["runs"].size(), 7u);
  std::vector<std::string> names;
  for (const auto& run : metrics["runs"]) names.push_back(run["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"sd21", "linear_300", "poly_300", "constant_300", "linear_20", "poly_20",
                                             "constant_20"}));
  EXPECT_EQ(metrics["runs"][0]["n_images"], 1000);
  EXPECT_EQ(metrics["runs"][3]["n_images"], 850);  // constant_300: CEO has 50 images, no cleaning prompt
  CsvTable table = read_csv(dir / "out" / "tables" / "prompt_gender_race.csv");
  ASSERT_EQ(table.header.size(), 3u + 7u);
  EXPECT_EQ(table.header[3], "sd21");
  // CEO, Male white: 0.64 in SD 2.1 (the study's own number).
  bool found = false;
  for (const auto& row : table.rows) {
    if (row.fields[0] == "ceo" && row.fields[1] == "Male" && row.fields[2] == "white") {
      EXPECT_EQ(row.fields[3], "0.64");
      found = true;
    }
  }
  EXPECT_TRUE(found);
  for (const char* name : {"prompt_gender.csv", "prompt_race.csv", "summary_gender.csv", "summary_race.csv",
                           "summary_gender_race.csv", "distributions.csv", "metrics.csv", "comparisons.csv"}) {
    EXPECT_TRUE(std::filesystem::is_regular_file(dir / "out" / "tables" / name)) << name;
  }
  EXPECT_NE(output.find("sd21"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "out" / "report.html"));
}

TEST(ReportCli, ExplicitRunsTargetAndConfusion) {
  auto dir = test::scratch_dir("report_explicit");
  write_file_atomic(dir / "target.csv",
                    "prompt_id,attribute,group,share\n"
                    "nurse,gender,Female,0.87\nnurse,gender,Male,0.13\n"
                    "*,gender,Female,0.5\n*,gender,Male,0.5\n");
  write_file_atomic(dir / "confusion.json",
                    R"({"gender":{"labels":["Male","Female"],"confusion":[[180,20],[30,170]]},
                        "race":{"labels":["asian","indian","white","black","middle eastern","latino hispanic"],
                                "confusion":[[40,3,2,1,2,2],[3,38,1,3,3,2],[1,1,45,1,1,1],[1,2,1,44,1,1],
                                             [2,4,6,1,33,4],[2,2,5,2,4,35]]}})");
  std::string output;
  const std::string runs =
      " --run sd21=" + (seed() / "study_results" / "prompts_results.csv").string() +
      " --run poly_300=" + (seed() / "study_results" / "dreambooth" / "dream_detect_poly.csv").string();
  int rc = test::run_command(exe() + " report --prompts " + (seed() / "prompts_info.csv").string() + runs +
                                 " --map race:race=-- --target " + (dir / "target.csv").string() + " --confusion " +
                                 (dir / "confusion.json").string() + " --bootstrap 100 --no-thumbnails --out " +
                                 (dir / "out").string(),
                             &output);
  ASSERT_EQ(rc, 0) << output;
  Json metrics = read_json_file(dir / "out" / "metrics.json");
  EXPECT_EQ(metrics["settings"]["target"], (dir / "target.csv").string());
  ASSERT_TRUE(metrics["runs"][0].contains("corrected"));
  const Json& nurse = metrics["runs"][0]["corrected"]["gender"]["nurse"];
  EXPECT_EQ(nurse["raw"].size(), 2u);
  EXPECT_NEAR(nurse["corrected"][0].get<double>() + nurse["corrected"][1].get<double>(), 1.0, 1e-9);
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "out" / "tables" / "corrected.csv"));
  // Nurse's target is 87% female: the gender deviation ratio is measured against it.
  const Json& gdr = metrics["runs"][0]["metrics"]["gender"]["per_prompt"]["nurse"]["gender_deviation_ratio"];
  const Json& dist = metrics["runs"][0]["distributions"]["nurse"]["gender"];
  const double p_female = dist["share_determined"][1].get<double>();
  EXPECT_NEAR(gdr["value"].get<double>(), std::fabs(p_female - 0.87) / 0.87, 1e-9);
}

TEST(ReportCli, BadInputsGiveClearErrors) {
  auto dir = test::scratch_dir("report_errors");
  std::string output;
  const std::string prompts = " --prompts " + (seed() / "prompts_info.csv").string();
  // The literal label "race" of the study's CSVs is rejected unless mapped, with its line number.
  int rc = test::run_command(exe() + " report" + prompts +
                                 " --run sd21=" + (seed() / "study_results" / "prompts_results.csv").string() +
                                 " --out " + (dir / "a").string(),
                             &output);
  EXPECT_EQ(rc, 3) << output;
  EXPECT_NE(output.find("line 65: unknown race label 'race'"), std::string::npos) << output;
  // A prompt id that is not in the prompts CSV.
  rc = test::run_command(exe() + " report" + prompts + " --map race:race=-- --run c0=" +
                             (seed() / "study_results" / "dreambooth" / "dream_detect_constant0.csv").string() +
                             " --out " + (dir / "b").string(),
                         &output);
  EXPECT_EQ(rc, 3) << output;
  EXPECT_NE(output.find("prompt 'delivery_driver'"), std::string::npos) << output;
  // ... which a mapping fixes.
  rc = test::run_command(exe() + " report" + prompts +
                             " --map race:race=-- --map prompt:delivery_driver=delivery --run c0=" +
                             (seed() / "study_results" / "dreambooth" / "dream_detect_constant0.csv").string() +
                             " --bootstrap 20 --out " + (dir / "c").string(),
                         &output);
  EXPECT_EQ(rc, 0) << output;
  rc = test::run_command(exe() + " report" + prompts + " --run x=/nonexistent.csv --out " + (dir / "d").string(),
                         &output);
  EXPECT_EQ(rc, 3) << output;
  EXPECT_NE(output.find("/nonexistent.csv"), std::string::npos) << output;
  rc = test::run_command(exe() + " report --bootstrap -5", &output);
  EXPECT_EQ(rc, 2) << output;
  rc = test::run_command(exe() + " report --run noequals", &output);
  EXPECT_EQ(rc, 2) << output;
  rc = test::run_command(exe() + " report --run a=x.csv", &output);
  EXPECT_EQ(rc, 2) << output;  // --prompts is required with --run
  EXPECT_NE(output.find("--prompts"), std::string::npos) << output;
  // --images-root: DIR or NAME=DIR, the directory must exist and NAME must be a run.
  const std::string run_c0 = " --map race:race=-- --map prompt:delivery_driver=delivery --run c0=" +
                             (seed() / "study_results" / "dreambooth" / "dream_detect_constant0.csv").string();
  rc = test::run_command(
      exe() + " report" + prompts + run_c0 + " --images-root c0=/nonexistent --out " + (dir / "e").string(), &output);
  EXPECT_EQ(rc, 2) << output;
  EXPECT_NE(output.find("--images-root c0=/nonexistent: /nonexistent is not a directory"), std::string::npos) << output;
  rc = test::run_command(
      exe() + " report" + prompts + run_c0 + " --images-root other=" + dir.string() + " --out " + (dir / "f").string(),
      &output);
  EXPECT_EQ(rc, 2) << output;
  EXPECT_NE(output.find("names no run"), std::string::npos) << output;
  rc = test::run_command(exe() + " report" + prompts + run_c0 + " --images-root c0=" + dir.string() +
                             " --bootstrap 20 --out " + (dir / "g").string(),
                         &output);
  EXPECT_EQ(rc, 0) << output;
}

}  // namespace
}  // namespace fairdiff
