// The known-truth scoring of eval-audit: a classifier that reads every label right has zero error and intervals
// that cover the truth, raw and corrected; a classifier that swaps a known share of genders is off by that share
// raw and, corrected with its own confusion matrix, close to the truth again.
#include "study/eval_audit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "audit/correction.h"
#include "audit/target.h"

namespace fairdiff::study {
namespace {

using audit::Attribute;

PromptSet two_prompts() {
  PromptSet prompts;
  prompts.source = "test prompts";
  prompts.ids = {"ceo", "nurse"};
  prompts.texts = {"A photo of a CEO", "A photo of a nurse"};
  prompts.templates = {"", ""};
  return prompts;
}

struct Drawn {
  std::string csv = "prompt,path,gender,age,race\n";
  std::vector<std::vector<int64_t>> truth;
};

// ceo: 60 Male white, 20 Male black, 20 Female asian; nurse: 70 Female white, 30 Female indian. `swap_every`:
// every swap_every-th face of each cell is read as the other gender (0: none).
Drawn draw(int swap_every) {
  const audit::Taxonomy taxonomy;
  struct Cell {
    const char* prompt;
    int gender;
    int race;
    int count;
  };
  const Cell cells[] = {
      {"ceo", 0, 2, 60}, {"ceo", 0, 3, 20}, {"ceo", 1, 0, 20}, {"nurse", 1, 2, 70}, {"nurse", 1, 1, 30}};
  Drawn out;
  out.truth.assign(2, std::vector<int64_t>(taxonomy.genders.size() * taxonomy.races.size(), 0));
  int image = 0;
  for (const Cell& cell : cells) {
    const size_t p = std::string(cell.prompt) == "ceo" ? 0 : 1;
    out.truth[p][static_cast<size_t>(taxonomy.gender_race_index(cell.gender, cell.race))] += cell.count;
    for (int i = 0; i < cell.count; ++i) {
      const bool swapped = swap_every > 0 && i % swap_every == 0;
      const int gender = swapped ? 1 - cell.gender : cell.gender;
      out.csv += std::string(cell.prompt) + "," + std::to_string(image++) + ".jpg," +
                 taxonomy.genders[static_cast<size_t>(gender)] + ",(25-32)," +
                 taxonomy.races[static_cast<size_t>(cell.race)] + "\n";
    }
  }
  return out;
}

EvalAuditResult score(const Drawn& drawn, const audit::ConfusionSet* confusion) {
  const audit::Taxonomy taxonomy;
  const PromptSet prompts = two_prompts();
  const std::vector<audit::Run> runs = {
      audit::parse_detections(drawn.csv, "drawn.csv", "photos", prompts, audit::DetectionOptions())};
  audit::AuditSettings settings;
  settings.bootstrap.resamples = 300;
  settings.homogeneity_resamples = 200;
  const audit::AuditResult result =
      audit::run_audit(prompts, runs, taxonomy, audit::Target(taxonomy, prompts.size()), confusion, settings);
  return score_against_truth(result, drawn.truth);
}

const ShareErrors& errors_of(const EvalAuditResult& result, Attribute attribute) {
  for (const ShareErrors& e : result.errors)
    if (e.attribute == attribute) return e;
  throw std::logic_error("no errors for the attribute");
}

TEST(EvalAuditScore, APerfectClassifierHasNoErrorAndCoversTheTruth) {
  const audit::Taxonomy taxonomy;
  const audit::ConfusionSet identity =
      audit::parse_confusion_json(Json::parse(R"({"gender":{"labels":["Male","Female"],"confusion":[[100,0],[0,100]]},
                      "race":{"labels":["asian","indian","white","black","middle eastern","latino hispanic"],
                              "confusion":[[50,0,0,0,0,0],[0,50,0,0,0,0],[0,0,50,0,0,0],[0,0,0,50,0,0],
                                           [0,0,0,0,50,0],[0,0,0,0,0,50]]}})"),
                                  "identity", taxonomy);
  const EvalAuditResult result = score(draw(0), &identity);
  EXPECT_EQ(result.prompt_ids, (std::vector<std::string>{"ceo", "nurse"}));
  EXPECT_EQ(result.images, (std::vector<int64_t>{100, 100}));
  EXPECT_EQ(result.determined, (std::vector<int64_t>{100, 100}));
  ASSERT_EQ(result.errors.size(), 3U);
  for (const ShareErrors& e : result.errors) {
    EXPECT_EQ(e.shares, 2 * static_cast<int64_t>(taxonomy.num_groups(e.attribute)));
    EXPECT_NEAR(e.mae_raw, 0.0, 1e-12);
    EXPECT_DOUBLE_EQ(e.coverage_raw, 1.0);
    ASSERT_TRUE(e.mae_corrected.has_value());
    EXPECT_NEAR(*e.mae_corrected, 0.0, 1e-9);
    EXPECT_DOUBLE_EQ(*e.coverage_corrected, 1.0);
  }
  // The shares' truth: ceo is 80% male, nurse 30% indian.
  bool seen_ceo = false, seen_nurse = false;
  for (const TruthShare& s : result.shares) {
    if (s.prompt_id == "ceo" && s.attribute == Attribute::gender && s.group == "Male") {
      EXPECT_DOUBLE_EQ(s.truth, 0.8);
      seen_ceo = true;
    }
    if (s.prompt_id == "nurse" && s.attribute == Attribute::race && s.group == "indian") {
      EXPECT_DOUBLE_EQ(s.truth, 0.3);
      seen_nurse = true;
    }
  }
  EXPECT_TRUE(seen_ceo && seen_nurse);
  EXPECT_NE(result.shares_csv().find("ceo,gender,Male,0.8,0.8,"), std::string::npos) << result.shares_csv();
  const Json json = result.to_json();
  EXPECT_EQ(json["images"], 200);
  EXPECT_EQ(json["confusion"], "identity");
  EXPECT_NE(result.summary().find("gender_race"), std::string::npos) << result.summary();
}

TEST(EvalAuditScore, SwappedGendersAreOffRawAndRecoveredByTheirConfusionMatrix) {
  const audit::Taxonomy taxonomy;
  // Every 5th face of a cell is read as the other gender: 20% of each gender, both ways.
  const Drawn drawn = draw(5);
  const EvalAuditResult raw = score(drawn, nullptr);
  const ShareErrors& gender_raw = errors_of(raw, Attribute::gender);
  // ceo: truth 0.8 male, read 0.8*0.8 + 0.2*0.2 = 0.68; nurse: truth 0 male, read 0.2. Mean over 4 shares: 0.16.
  EXPECT_NEAR(gender_raw.mae_raw, 0.16, 1e-9);
  EXPECT_NEAR(gender_raw.max_raw, 0.2, 1e-9);
  EXPECT_LT(gender_raw.coverage_raw, 0.5);
  EXPECT_FALSE(gender_raw.mae_corrected.has_value());
  EXPECT_TRUE(raw.confusion.empty());
  EXPECT_NEAR(errors_of(raw, Attribute::race).mae_raw, 0.0, 1e-12);  // races read right

  const audit::ConfusionSet swaps =
      audit::parse_confusion_json(Json::parse(R"({"gender":{"labels":["Male","Female"],"confusion":[[80,20],[20,80]]},
                      "race":{"labels":["asian","indian","white","black","middle eastern","latino hispanic"],
                              "confusion":[[50,0,0,0,0,0],[0,50,0,0,0,0],[0,0,50,0,0,0],[0,0,0,50,0,0],
                                           [0,0,0,0,50,0],[0,0,0,0,0,50]]}})"),
                                  "swaps", taxonomy);
  const EvalAuditResult corrected = score(drawn, &swaps);
  const ShareErrors& gender = errors_of(corrected, Attribute::gender);
  ASSERT_TRUE(gender.mae_corrected.has_value());
  EXPECT_LT(*gender.mae_corrected, 0.01);
  EXPECT_DOUBLE_EQ(*gender.coverage_corrected, 1.0);
  EXPECT_NEAR(gender.mae_raw, 0.16, 1e-9);  // the raw scores do not change
}

TEST(EvalAuditScore, TruthRowsMustMatchThePrompts) {
  const Drawn drawn = draw(0);
  Drawn short_truth = drawn;
  short_truth.truth.pop_back();
  EXPECT_THROW(score(short_truth, nullptr), std::invalid_argument);
}

TEST(EvalAuditPhotos, LabelsMapToTheStudysSixClassesAndOtherIsLeftOut) {
  const audit::Taxonomy taxonomy;
  LabeledSet utk;
  utk.race_taxonomy = RaceTaxonomy::five;
  auto photo = [](const std::string& file, const std::string& gender, const std::string& race) {
    fairdiff::LabeledPhoto p;
    p.file = file;
    p.gender = gender;
    p.race = race;
    return p;
  };
  utk.photos = {photo("a.jpg", "male", "white"), photo("b.jpg", "female", "other"), photo("c.jpg", "female", "indian")};
  int64_t left_out = -1;
  std::vector<audit::LabeledPhoto> photos = photos_in_taxonomy(utk, taxonomy, left_out);
  EXPECT_EQ(left_out, 1);
  ASSERT_EQ(photos.size(), 2U);
  EXPECT_EQ(photos[0].file, "a.jpg");
  EXPECT_EQ(taxonomy.races[static_cast<size_t>(photos[0].race)], "white");
  EXPECT_EQ(taxonomy.genders[static_cast<size_t>(photos[1].gender)], "Female");
  EXPECT_EQ(taxonomy.races[static_cast<size_t>(photos[1].race)], "indian");

  LabeledSet fairface;
  fairface.race_taxonomy = RaceTaxonomy::fairface7;
  fairface.photos = {photo("d.jpg", "male", "southeast asian"), photo("e.jpg", "female", "middle eastern")};
  photos = photos_in_taxonomy(fairface, taxonomy, left_out);
  EXPECT_EQ(left_out, 0);
  ASSERT_EQ(photos.size(), 2U);
  EXPECT_EQ(taxonomy.races[static_cast<size_t>(photos[0].race)], "asian");
  EXPECT_EQ(taxonomy.races[static_cast<size_t>(photos[1].race)], "middle eastern");
}

}  // namespace
}  // namespace fairdiff::study
