// Classifier-error correction on synthetic data with a known confusion matrix.
#include "audit/correction.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "test_paths.h"

namespace fairdiff::audit {
namespace {

// A 6-race classifier that is good on some classes and poor on others (rows true, columns predicted).
const Matrix kRaceConfusion = {
    {0.80, 0.05, 0.05, 0.02, 0.04, 0.04},  // asian
    {0.04, 0.70, 0.03, 0.08, 0.10, 0.05},  // indian
    {0.02, 0.01, 0.90, 0.01, 0.04, 0.02},  // white
    {0.01, 0.06, 0.02, 0.85, 0.02, 0.04},  // black
    {0.02, 0.08, 0.15, 0.02, 0.63, 0.10},  // middle eastern
    {0.03, 0.05, 0.12, 0.05, 0.10, 0.65},  // latino hispanic
};

std::vector<double> observed_from(const Matrix& c, const std::vector<double>& p) {
  std::vector<double> q(p.size(), 0.0);
  for (size_t i = 0; i < p.size(); ++i) {
    for (size_t j = 0; j < p.size(); ++j) q[j] += p[i] * c[i][j];
  }
  return q;
}

TEST(Correction, RecoversTrueSharesFromExactObservations) {
  const std::vector<double> truth = {0.10, 0.05, 0.50, 0.15, 0.12, 0.08};
  std::vector<double> p = correct_shares(kRaceConfusion, observed_from(kRaceConfusion, truth));
  for (size_t k = 0; k < truth.size(); ++k) EXPECT_NEAR(p[k], truth[k], 1e-9) << k;
}

TEST(Correction, StaysOnTheSimplexWhenTheUnconstrainedSolutionWouldNot) {
  // Observed shares that no true distribution explains exactly (class 1 seen less often than its
  // misclassification floor): the unconstrained inverse goes negative, the constrained one clips at 0.
  const Matrix c = {{0.9, 0.1}, {0.2, 0.8}};
  std::vector<double> p = correct_shares(c, {0.95, 0.05});
  EXPECT_NEAR(p[0], 1.0, 1e-9);
  EXPECT_NEAR(p[1], 0.0, 1e-9);
  // Least squares on the simplex for 3 classes with one clipped class, checked against the KKT conditions.
  const Matrix c3 = {{0.8, 0.1, 0.1}, {0.1, 0.8, 0.1}, {0.1, 0.1, 0.8}};
  std::vector<double> q = {0.05, 0.475, 0.475};
  std::vector<double> r = correct_shares(c3, q);
  EXPECT_NEAR(r[0], 0.0, 1e-9);
  EXPECT_NEAR(r[1], 0.5, 1e-9);
  EXPECT_NEAR(r[2], 0.5, 1e-9);
}

TEST(Correction, SimulatedClassifierIsCorrectedWithinItsInterval) {
  // 3000 images with true races drawn from `truth`, each label passed through the confusion matrix.
  const std::vector<double> truth = {0.05, 0.05, 0.60, 0.10, 0.10, 0.10};
  Rng rng(5);
  GroupDistribution observed;
  observed.attribute = Attribute::race;
  observed.labels = Taxonomy().races;
  observed.counts.assign(6, 0);
  std::vector<long long> one;
  for (int i = 0; i < 3000; ++i) {
    sample_multinomial(rng, 1, truth, one);
    int true_class = static_cast<int>(std::max_element(one.begin(), one.end()) - one.begin());
    sample_multinomial(rng, 1, kRaceConfusion[true_class], one);
    ++observed.counts[std::max_element(one.begin(), one.end()) - one.begin()];
  }
  observed.n_images = 3000;
  ConfusionMatrix confusion;
  confusion.labels = Taxonomy().races;
  confusion.entries = kRaceConfusion;
  BootstrapSettings settings;
  settings.resamples = 300;
  CorrectedShares result = correct_distribution(observed, confusion, std::vector<double>(6, 1.0 / 6),
                                                {Metric::shen_bias_normalized}, -1, settings, "sim");
  double raw_error = 0, corrected_error = 0;
  int covered = 0;
  for (size_t k = 0; k < truth.size(); ++k) {
    raw_error += std::fabs(result.raw[k] - truth[k]);
    corrected_error += std::fabs(result.corrected[k] - truth[k]);
    EXPECT_NEAR(result.corrected[k], truth[k], 0.03) << k;
    covered += result.corrected_ci[k].low <= truth[k] && truth[k] <= result.corrected_ci[k].high ? 1 : 0;
  }
  // Six 95% intervals: all six cover about 74% of the time, five or more about 97%.
  EXPECT_GE(covered, 5);
  EXPECT_LT(corrected_error, raw_error / 2) << "raw " << raw_error << " corrected " << corrected_error;
  EXPECT_LT(corrected_error, 0.06);
}

TEST(Correction, ParsesFlatAndNestedJsonWithCountsOrRates) {
  Taxonomy taxonomy;
  Json flat = Json::parse(R"({"labels": ["Female", "Male"], "confusion": [[90, 10], [5, 95]]})");
  ConfusionSet a = parse_confusion_json(flat, "flat.json", taxonomy);
  ASSERT_TRUE(a.matrices.count(Attribute::gender));
  const ConfusionMatrix& g = a.matrices.at(Attribute::gender);
  EXPECT_TRUE(g.counts);
  // Reordered to the taxonomy (Male, Female): row Male = [95, 5].
  EXPECT_NEAR(g.rates()[0][0], 0.95, 1e-12);
  EXPECT_NEAR(g.rates()[1][1], 0.90, 1e-12);
  EXPECT_NEAR(g.rates()[1][0], 0.10, 1e-12);

  Json nested = Json::parse(R"({
    "n": 200, "gender": {"accuracy": 0.9, "labels": ["Male", "Female"], "confusion": [[0.9, 0.1], [0.2, 0.8]]},
    "race": {"labels": ["asian","indian","black","white","middle eastern","latino hispanic"],
             "confusion": [[8,1,0,1,0,0],[1,7,1,0,1,0],[0,0,9,1,0,0],[0,0,0,10,0,0],[0,1,0,2,6,1],[0,0,1,2,1,6]]}})");
  ConfusionSet b = parse_confusion_json(nested, "eval.json", taxonomy);
  ASSERT_TRUE(b.matrices.count(Attribute::race));
  EXPECT_FALSE(b.matrices.at(Attribute::gender).counts);
  EXPECT_TRUE(b.matrices.at(Attribute::race).counts);
  // "black" is listed before "white" in the file; taxonomy order is white (2), black (3).
  EXPECT_NEAR(b.matrices.at(Attribute::race).rates()[2][2], 1.0, 1e-12);
  EXPECT_NEAR(b.matrices.at(Attribute::race).rates()[3][3], 0.9, 1e-12);
  // The gender x race matrix is the Kronecker product: P(Male asian -> Male asian) = 0.9 * 0.8.
  ASSERT_TRUE(b.matrices.count(Attribute::gender_race));
  Matrix joint = b.matrices.at(Attribute::gender_race).rates();
  ASSERT_EQ(joint.size(), 12u);
  EXPECT_NEAR(joint[0][0], 0.9 * 0.8, 1e-12);
  EXPECT_NEAR(joint[6][0], 0.2 * 0.8, 1e-12);
}

TEST(Correction, FoldsFairFacesSevenRacesIntoTheStudysSix) {
  Taxonomy taxonomy;  // the study's 6 races: asian = FairFace's east asian + southeast asian
  Json seven = Json::parse(R"({"race": {
    "labels": ["white","black","latino hispanic","east asian","southeast asian","indian","middle eastern"],
    "confusion": [[50,0,0,0,0,0,0],[0,40,0,0,0,0,0],[0,0,30,0,0,0,0],
                  [0,0,0,8,2,0,0],[0,0,0,3,6,1,0],[0,0,0,0,0,20,0],[0,0,0,0,0,0,10]]}})");
  const ConfusionSet set = parse_confusion_json(seven, "fairface.json", taxonomy);
  const ConfusionMatrix& race = set.matrices.at(Attribute::race);
  EXPECT_TRUE(race.counts);
  ASSERT_EQ(race.entries.size(), 6u);
  // asian (index 0): true east asian 10 + southeast asian 10 faces; 8+2+3+6 = 19 read as asian, 1 as indian.
  EXPECT_DOUBLE_EQ(race.entries[0][0], 19);
  EXPECT_DOUBLE_EQ(race.entries[0][1], 1);
  EXPECT_NEAR(race.rates()[0][0], 0.95, 1e-12);
  EXPECT_DOUBLE_EQ(race.entries[2][2], 50);  // white
  // Rates cannot be folded (the rows' sizes are unknown); a label twice is refused.
  EXPECT_THROW(parse_confusion_json(Json::parse(R"({"labels":["white","black","latino hispanic","east asian",
      "southeast asian","indian","middle eastern"],"confusion":[[1,0,0,0,0,0,0],[0,1,0,0,0,0,0],[0,0,1,0,0,0,0],
      [0,0,0,1,0,0,0],[0,0,0,0,1,0,0],[0,0,0,0,0,1,0],[0,0,0,0,0,0,1]]})"),
                                    "rates.json", taxonomy),
               InputError);
  EXPECT_THROW(parse_confusion_json(Json::parse(R"({"labels":["white","black","latino hispanic","east asian",
      "east asian","indian","middle eastern"],"confusion":[[5,0,0,0,0,0,0],[0,5,0,0,0,0,0],[0,0,5,0,0,0,0],
      [0,0,0,5,0,0,0],[0,0,0,0,5,0,0],[0,0,0,0,0,5,0],[0,0,0,0,0,0,5]]})"),
                                    "twice.json", taxonomy),
               InputError);
  // The committed FairFace heads' matrices (7 races, counts) now load for the study's taxonomy.
  const ConfusionSet committed =
      read_confusion_json(test::source_dir() / "models/faces/fairface_heads.confusion.json", taxonomy);
  EXPECT_TRUE(committed.matrices.count(Attribute::gender));
  EXPECT_TRUE(committed.matrices.count(Attribute::race));
  EXPECT_TRUE(committed.matrices.count(Attribute::gender_race));
}

TEST(Correction, RejectsBadMatrices) {
  Taxonomy taxonomy;
  EXPECT_THROW(
      parse_confusion_json(Json::parse(R"({"labels":["Male","Robot"],"confusion":[[1,0],[0,1]]})"), "x", taxonomy),
      InputError);
  EXPECT_THROW(
      parse_confusion_json(Json::parse(R"({"labels":["Male","Female"],"confusion":[[1,0],[0,0]]})"), "x", taxonomy),
      InputError);
  EXPECT_THROW(parse_confusion_json(Json::parse(R"({"labels":["Male","Female"],"confusion":[[0.5,0.2],[0.1,0.9]]})"),
                                    "x", taxonomy),
               InputError);
  EXPECT_THROW(parse_confusion_json(Json::parse(R"({"gender":{"confusion":[[1,0],[0,1]]}})"), "x", taxonomy),
               InputError);
  EXPECT_THROW(parse_confusion_json(Json::parse(R"({"accuracy":0.5})"), "x", taxonomy), InputError);
}

}  // namespace
}  // namespace fairdiff::audit
