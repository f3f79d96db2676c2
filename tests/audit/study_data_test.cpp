// The study's own detections (../shared/seed) through the audit: known proportions and the planner, whose
// study rule must give exactly the rows of prompts_to_generate.csv.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "audit/audit_result.h"
#include "audit/detections.h"
#include "audit/planner.h"
#include "audit/study_runs.h"
#include "core/csv.h"
#include "test_paths.h"

namespace fairdiff::audit {
namespace {

std::filesystem::path seed_dir() {
  return test::source_dir() / "data" / "seed";
}

DetectionOptions study_options() {
  DetectionOptions options;
  options.label_map.add("race:race=--");
  return options;
}

TEST(StudyData, TheStudysRunsAreFoundInTheRepository) {
  const StudyData study = find_study_data();
  EXPECT_EQ(std::filesystem::canonical(study.dir), std::filesystem::canonical(seed_dir()));
  EXPECT_TRUE(std::filesystem::is_regular_file(study.prompts));
  ASSERT_EQ(study.runs.size(), 7u);
  EXPECT_EQ(study.runs[0].name, "sd21");  // the baseline first
  for (const auto& run : study.runs) EXPECT_TRUE(std::filesystem::is_regular_file(run.detections)) << run.name;

  LabelMap map;
  add_study_label_map(map);
  EXPECT_EQ(map.apply("race", "race"), "--");
  LabelMap user;
  user.add("race:race=other");
  add_study_label_map(user);  // the user's own mapping of the label wins
  EXPECT_EQ(user.apply("race", "Race"), "other");
}

TEST(StudyData, UnmappedRaceLabelIsRejected) {
  PromptSet prompts = read_prompts_csv(seed_dir() / "prompts_info.csv");
  try {
    read_detections(seed_dir() / "study_results" / "prompts_results.csv", "sd21", prompts, DetectionOptions{});
    FAIL() << "the literal label 'race' should be rejected unless mapped";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("line 65: unknown race label 'race'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("48 row(s)"), std::string::npos) << e.what();
  }
}

TEST(StudyData, KnownProportions) {
  PromptSet prompts = read_prompts_csv(seed_dir() / "prompts_info.csv");
  ASSERT_EQ(prompts.size(), 10);
  audit::Run run =
      read_detections(seed_dir() / "study_results" / "prompts_results.csv", "sd21", prompts, study_options());
  ASSERT_EQ(run.images.size(), 1000u);
  Taxonomy taxonomy;
  const int ceo = prompts.find("ceo");
  GroupDistribution gr = make_distribution(run.images_of(ceo), Attribute::gender_race, taxonomy);
  EXPECT_EQ(gr.n_images, 100);
  EXPECT_DOUBLE_EQ(gr.share_of_all(taxonomy.gender_race_index(0, 2)), 0.64);  // Male white
  EXPECT_DOUBLE_EQ(gr.share_of_all(taxonomy.gender_race_index(0, 4)), 0.06);  // Male middle eastern
  // Overall gender counts of the file: 592 Male, 116 Female, 292 "--".
  std::vector<const ImageRecord*> all;
  for (const auto& image : run.images) all.push_back(&image);
  GroupDistribution gender = make_distribution(all, Attribute::gender, taxonomy);
  EXPECT_EQ(gender.counts[0], 592);
  EXPECT_EQ(gender.counts[1], 116);
  EXPECT_EQ(gender.n_none, 292);
  GroupDistribution race = make_distribution(all, Attribute::race, taxonomy);
  EXPECT_EQ(race.counts[2], 420);    // white
  EXPECT_EQ(race.n_none, 238 + 48);  // "--" plus the mapped "race"
  EXPECT_NEAR(gender.share_of_determined(1), 116.0 / 708.0, 1e-12);
}

TEST(StudyData, StudyRuleReproducesPromptsToGenerate) {
  PromptSet prompts = read_prompts_csv(seed_dir() / "prompts_info.csv");
  audit::Run run =
      read_detections(seed_dir() / "study_results" / "prompts_results.csv", "sd21", prompts, study_options());
  Taxonomy taxonomy;
  Plan plan = make_plan(prompts, run, taxonomy, Target(taxonomy, prompts.size()), PlanSettings{});
  CsvTable expected = read_csv(seed_dir() / "study_results" / "prompts_to_generate.csv");
  ASSERT_EQ(plan.rows.size(), expected.rows.size());
  for (size_t i = 0; i < plan.rows.size(); ++i) {
    const auto& want = expected.rows[i].fields;  // prompt,gender,race,perc
    EXPECT_EQ(plan.rows[i].prompt, want[0]) << "row " << i;
    EXPECT_EQ(plan.rows[i].gender, want[1]) << "row " << i;
    EXPECT_EQ(plan.rows[i].race, want[2]) << "row " << i;
    EXPECT_EQ(format_share(plan.rows[i].share), want[3]) << "row " << i;  // same text as the study's CSV
    EXPECT_EQ(plan.rows[i].n_images, 10);
  }
  EXPECT_EQ(plan.rows[0].augmented_prompt, "A photo of an Asian male CEO of an important company");
}

// The planner says why a plan is empty or trivial: no face found for a prompt (study rule), and too few images
// for the target rule to flag anything.
TEST(StudyData, PlannerExplainsNoFacesAndTooFewImages) {
  const std::filesystem::path dir = test::scratch_dir("planner_notes");
  {
    std::ofstream(dir / "prompts.csv") << "prompt_id,prompt\nceo,A photo of a CEO\nnurse,A photo of a nurse\n";
    std::ofstream csv(dir / "detections.csv");
    csv << "prompt,path,gender,age,race\n";
    for (int i = 0; i < 20; ++i) csv << "ceo,ceo/" << i << ".png,Male,(25-32),white\n";
    for (int i = 0; i < 20; ++i) csv << "nurse,nurse/" << i << ".png,--,--,--\n";
  }
  const PromptSet prompts = read_prompts_csv(dir / "prompts.csv");
  const audit::Run run = read_detections(dir / "detections.csv", "run", prompts, DetectionOptions{});
  Taxonomy taxonomy;
  const Plan study = make_plan(prompts, run, taxonomy, Target(taxonomy, prompts.size()), PlanSettings{});
  std::string notes;
  for (const auto& note : study.notes) notes += note + "\n";
  EXPECT_NE(notes.find("prompt 'nurse': no face with both gender and race"), std::string::npos) << notes;
  EXPECT_EQ(notes.find("prompt 'ceo': no face"), std::string::npos) << notes;

  PlanSettings target;
  target.rule = PlanRule::target;
  const Plan small = make_plan(prompts, run, taxonomy, Target(taxonomy, prompts.size()), target);
  notes.clear();
  for (const auto& note : small.notes) notes += note + "\n";
  // 20 images, all Male white: an empty cell's Wilson upper bound 3.84 / 23.84 = 0.16 stays above 1/12 until
  // n >= 3.8416 * 11 = 42.3.
  EXPECT_TRUE(small.rows.empty());
  EXPECT_NE(notes.find("prompt 'ceo': with n = 20 labelled images the target rule cannot flag any group"),
            std::string::npos)
      << notes;
  EXPECT_NE(notes.find("until n >= 43"), std::string::npos) << notes;
}

TEST(StudyData, TargetRuleClosesTheGap) {
  PromptSet prompts = read_prompts_csv(seed_dir() / "prompts_info.csv");
  audit::Run run =
      read_detections(seed_dir() / "study_results" / "prompts_results.csv", "sd21", prompts, study_options());
  Taxonomy taxonomy;
  PlanSettings settings;
  settings.rule = PlanRule::target;
  Plan plan = make_plan(prompts, run, taxonomy, Target(taxonomy, prompts.size()), settings);
  ASSERT_FALSE(plan.rows.empty());
  // Per prompt: adding the planned images brings every planned cell to at least its target (1/12).
  for (int p = 0; p < prompts.size(); ++p) {
    GroupDistribution d = make_distribution(run.images_of(p), Attribute::gender_race, taxonomy);
    long long added = 0;
    std::vector<long long> counts = d.counts;
    for (const auto& row : plan.rows) {
      if (row.prompt_index != p) continue;
      added += row.n_images;
      EXPECT_LT(row.share_upper, 1.0 / 12) << row.prompt_id << " " << row.gender << " " << row.race;
      counts[taxonomy.gender_race_index(row.gender == "Male" ? 0 : 1, race_index(taxonomy, row.race))] += row.n_images;
    }
    for (const auto& row : plan.rows) {
      if (row.prompt_index != p) continue;
      const long long c =
          counts[taxonomy.gender_race_index(row.gender == "Male" ? 0 : 1, race_index(taxonomy, row.race))];
      EXPECT_GE(static_cast<double>(c) / static_cast<double>(d.n_determined() + added), 1.0 / 12 - 1e-9);
    }
  }
  // CEO: Male white holds 64 of the images with both labels; no Female cell reaches its target.
  int ceo_rows = 0;
  for (const auto& row : plan.rows) ceo_rows += row.prompt_id == "ceo" ? 1 : 0;
  EXPECT_GE(ceo_rows, 6);
}

TEST(StudyData, FormatShareWritesLikePython) {
  EXPECT_EQ(format_share(0.0), "0.0");
  EXPECT_EQ(format_share(7.0 / 100), "0.07");
  EXPECT_EQ(format_share(20.0 / 100), "0.2");
  EXPECT_EQ(format_share(1.0), "1.0");
  EXPECT_EQ(format_share(1.0 / 3), "0.3333333333333333");
}

TEST(StudyData, AuditOfTwoRunsComparesThem) {
  PromptSet prompts = read_prompts_csv(seed_dir() / "prompts_info.csv");
  std::vector<audit::Run> runs = {
      read_detections(seed_dir() / "study_results" / "prompts_results.csv", "sd21", prompts, study_options()),
      read_detections(seed_dir() / "study_results" / "dreambooth" / "dream_detect_poly.csv", "poly_300", prompts,
                      study_options())};
  Taxonomy taxonomy;
  AuditSettings settings;
  settings.bootstrap.resamples = 200;
  settings.homogeneity_resamples = 200;
  AuditResult result = run_audit(prompts, runs, taxonomy, Target(taxonomy, prompts.size()), nullptr, settings);
  ASSERT_EQ(result.runs.size(), 2u);
  EXPECT_EQ(result.common_prompts.size(), 9u);  // the DreamBooth runs lack "cleaning"
  EXPECT_FALSE(result.runs[1].has_prompt[prompts.find("cleaning")]);
  const auto& am = result.runs[0].metrics.at(Attribute::gender);
  const int ceo = prompts.find("ceo");
  // CEO gender among faces: count Male and Female from the CSV, the Shen bias is |p_m - p_f|.
  const GroupDistribution& d = result.runs[0].distributions.at(Attribute::gender)[ceo];
  const double p_m = d.share_of_determined(0);
  EXPECT_NEAR(am.prompts[ceo].estimates[0].value, std::fabs(2 * p_m - 1), 1e-12);
  EXPECT_LE(am.prompts[ceo].estimates[0].ci.low, am.prompts[ceo].estimates[0].value);
  EXPECT_GE(am.prompts[ceo].estimates[0].ci.high, am.prompts[ceo].estimates[0].value);
  ASSERT_EQ(result.comparisons.size(), 1u);
  EXPECT_EQ(result.comparisons[0].prompts.size(), 9u);
  // Deterministic: the same seed gives the same intervals.
  AuditResult again = run_audit(prompts, runs, taxonomy, Target(taxonomy, prompts.size()), nullptr, settings);
  EXPECT_EQ(again.runs[1].metrics.at(Attribute::race).average[1].ci.low,
            result.runs[1].metrics.at(Attribute::race).average[1].ci.low);
}

}  // namespace
}  // namespace fairdiff::audit
