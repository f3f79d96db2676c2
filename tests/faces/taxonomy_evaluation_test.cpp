#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "faces/evaluation.h"
#include "faces/face_analyzer.h"
#include "faces/taxonomy.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

TEST(Taxonomy, MapsRacesToTheFinestCommonTaxonomy) {
  EXPECT_EQ(common_race_taxonomy(RaceTaxonomy::fairface7, RaceTaxonomy::deepface6), RaceTaxonomy::deepface6);
  EXPECT_EQ(common_race_taxonomy(RaceTaxonomy::five, RaceTaxonomy::fairface7), RaceTaxonomy::five);
  EXPECT_EQ(map_race("southeast asian", RaceTaxonomy::fairface7, RaceTaxonomy::deepface6), "asian");
  EXPECT_EQ(map_race("east asian", RaceTaxonomy::fairface7, RaceTaxonomy::five), "asian");
  EXPECT_EQ(map_race("middle eastern", RaceTaxonomy::fairface7, RaceTaxonomy::deepface6), "middle eastern");
  EXPECT_EQ(map_race("middle eastern", RaceTaxonomy::deepface6, RaceTaxonomy::five), "other");
  EXPECT_EQ(map_race("latino hispanic", RaceTaxonomy::fairface7, RaceTaxonomy::five), "other");
  EXPECT_EQ(map_race("indian", RaceTaxonomy::five, RaceTaxonomy::five), "indian");
  EXPECT_EQ(map_race("asian", RaceTaxonomy::fairface7, RaceTaxonomy::five), "");  // not a fairface7 label
  EXPECT_THROW(map_race("other", RaceTaxonomy::five, RaceTaxonomy::fairface7), UsageError);
  EXPECT_EQ(normalize_race("Latino_Hispanic"), "latino hispanic");
  EXPECT_EQ(normalize_race("Others"), "other");
  EXPECT_EQ(detect_race_taxonomy({"white", "east asian"}), RaceTaxonomy::fairface7);
  EXPECT_EQ(detect_race_taxonomy({"white", "other"}), RaceTaxonomy::five);
  EXPECT_EQ(detect_race_taxonomy({"asian", "middle eastern"}), RaceTaxonomy::deepface6);
  EXPECT_FALSE(detect_race_taxonomy({"white", "martian"}).has_value());
}

TEST(Taxonomy, AgeRanges) {
  EXPECT_EQ(fairface_age_range(2.9), "0-2");
  EXPECT_EQ(fairface_age_range(3), "3-9");
  EXPECT_EQ(fairface_age_range(69.5), "60-69");
  EXPECT_EQ(fairface_age_range(85), "70+");
  EXPECT_EQ(normalize_age("26"), "20-29");
  EXPECT_EQ(normalize_age("50-59"), "50-59");
  EXPECT_EQ(normalize_age("old"), "");
  EXPECT_EQ(study_age_range(30), "(25-32)");
  EXPECT_EQ(study_age_range(36), "(38-43)");
  EXPECT_EQ(study_age_range(90), "(60-100)");
}

TEST(Evaluation, ReadsLabelsAndNamesBadLines) {
  const auto dir = test::scratch_dir("labels");
  std::ofstream(dir / "ok.csv") << "file,gender,race,age\na.jpg,Male,East Asian,20-29\nb.jpg,female,White,3\n";
  LabeledSet set = read_labeled_set(dir, dir / "ok.csv");
  EXPECT_EQ(set.race_taxonomy, RaceTaxonomy::fairface7);
  ASSERT_EQ(set.photos.size(), 2u);
  EXPECT_EQ(set.photos[0].race, "east asian");
  EXPECT_EQ(set.photos[1].age, "3-9");
  EXPECT_EQ(set.photos[1].age_years, 3.0);

  std::ofstream(dir / "gender.csv") << "file,gender,race\na.jpg,male,white\nb.jpg,robot,white\n";
  try {
    read_labeled_set(dir, dir / "gender.csv");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("gender.csv:3"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "race.csv") << "file,gender,race\na.jpg,male,white\nb.jpg,male,martian\n";
  EXPECT_THROW(read_labeled_set(dir, dir / "race.csv"), InputError);
  try {
    read_labeled_set(dir, dir / "race.csv", RaceTaxonomy::five);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("race.csv:3"), std::string::npos) << e.what();
  }
}

TEST(Evaluation, ConfusionMatrixRowsAreTrueClasses) {
  ConfusionMatrix m({"male", "female"});
  m.add("male", "male");
  m.add("male", "female");
  m.add("female", "female");
  m.add("female", "female");
  Json j = m.to_json();
  EXPECT_EQ(j["labels"], Json({"male", "female"}));
  EXPECT_EQ(j["confusion"], Json({{1, 1}, {0, 2}}));
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(j["per_class"]["male"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["per_class"]["female"].get<double>(), 1.0);
}

TEST(FaceAnalyzer, StudyLabelsUseThePrincipalFace) {
  ImageAnalysis none;
  StudyLabels empty = study_labels(none);
  EXPECT_EQ(empty.gender, "--");
  EXPECT_EQ(empty.race, "--");
  EXPECT_EQ(empty.age, "--");
  ImageAnalysis a;
  Face f;
  f.attributes.predictions.push_back({"gender", "x", {"male", "female"}, {0.2f, 0.8f}, {}});
  f.attributes.predictions.push_back({"gender", "y", {"male", "female"}, {0.9f, 0.1f}, {}});
  f.attributes.predictions.push_back({"race", "x", {"white", "black"}, {0.3f, 0.7f}, {}});
  f.attributes.predictions.push_back({"age", "x", {"a"}, {1.0f}, 41.0f});
  a.faces.push_back(f);
  a.principal = 0;
  StudyLabels l = study_labels(a);
  EXPECT_EQ(l.gender, "Female");  // the first gender head is the profile's answer
  EXPECT_EQ(l.race, "black");
  EXPECT_EQ(l.age, "(38-43)");
}

}  // namespace
}  // namespace fairdiff
