// Every bias metric against values worked out by hand (see the comments for the arithmetic).
#include "audit/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace fairdiff::audit {
namespace {

const std::vector<double> kP = {0.7, 0.2, 0.1};
const std::vector<double> kUniform = {1.0 / 3, 1.0 / 3, 1.0 / 3};

TEST(Metrics, ShenBias) {
  // Pairs: |0.7-0.2| + |0.7-0.1| + |0.2-0.1| = 1.2; 2/(3*2) * 1.2 = 0.4.
  EXPECT_NEAR(shen_bias(kP), 0.4, 1e-12);
  // Maximum 2/K = 2/3 for K = 3, normalised to 1; 0.4 / (2/3) = 0.6.
  EXPECT_NEAR(shen_bias_normalized(kP), 0.6, 1e-12);
  EXPECT_NEAR(shen_bias_normalized({1.0, 0.0, 0.0}), 1.0, 1e-12);
  EXPECT_NEAR(shen_bias_normalized({0.0, 1.0}), 1.0, 1e-12);
  EXPECT_NEAR(shen_bias({0.25, 0.25, 0.25, 0.25}), 0.0, 1e-12);
  // Gender 0.8/0.2: one pair, 2/(2*1) * 0.6 = 0.6.
  EXPECT_NEAR(shen_bias({0.8, 0.2}), 0.6, 1e-12);
}

TEST(Metrics, KlDivergence) {
  // 0.7 ln 2.1 + 0.2 ln 0.6 + 0.1 ln 0.3.
  EXPECT_NEAR(kl_divergence(kP, kUniform), 0.29679373612477233, 1e-12);
  EXPECT_NEAR(kl_divergence(kP, {0.5, 0.3, 0.2}), 0.0851228259572216, 1e-12);
  // 0 ln 0 = 0: ln 2 for one of two groups.
  EXPECT_NEAR(kl_divergence({1.0, 0.0}, {0.5, 0.5}), std::log(2.0), 1e-12);
  EXPECT_NEAR(kl_divergence(kUniform, kUniform), 0.0, 1e-12);
}

TEST(Metrics, FairnessDiscrepancyAndMeanAbsoluteDeviation) {
  // Deviations 11/30, -4/30, -7/30: sqrt(121 + 16 + 49)/30 = sqrt(186)/30.
  EXPECT_NEAR(fairness_discrepancy(kP, kUniform), std::sqrt(186.0) / 30.0, 1e-12);
  EXPECT_NEAR(mean_absolute_deviation(kP, kUniform), (11.0 + 4.0 + 7.0) / 90.0, 1e-12);
}

TEST(Metrics, GenderDeviationRatio) {
  EXPECT_NEAR(gender_deviation_ratio(0.2, 0.5), 0.6, 1e-12);
  EXPECT_NEAR(gender_deviation_ratio(0.5, 0.5), 0.0, 1e-12);
  EXPECT_NEAR(gender_deviation_ratio(1.0, 0.5), 1.0, 1e-12);
  // Target 0.8 female: the largest possible gap is 0.8 (p = 0), so 0.4 away is 0.5.
  EXPECT_NEAR(gender_deviation_ratio(0.4, 0.8), 0.5, 1e-12);
  Taxonomy taxonomy;
  const int female = female_index(taxonomy);
  EXPECT_EQ(female, 1);
  EXPECT_NEAR(metric_value(Metric::gender_deviation_ratio, {0.8, 0.2}, {0.5, 0.5}, 100, female), 0.6, 1e-12);
}

TEST(Metrics, EntropyGap) {
  // H = 0.7*0.356675 + 0.2*1.609438 + 0.1*2.302585 = 0.801819; 1 - H / ln 3.
  EXPECT_NEAR(entropy_gap(kP), 0.27015330083790257, 1e-12);
  EXPECT_NEAR(entropy_gap(kUniform), 0.0, 1e-12);
  EXPECT_NEAR(entropy_gap({1.0, 0.0, 0.0, 0.0}), 1.0, 1e-12);
}

TEST(Metrics, ChiSquare) {
  // Counts 70, 20, 10 against 100/3 each: (36.67^2 + 13.33^2 + 23.33^2) / 33.33 = 62.
  EXPECT_NEAR(chi_square_statistic(kP, kUniform, 100), 62.0, 1e-9);
  EXPECT_NEAR(chi_square_statistic(kP, {0.5, 0.3, 0.2}, 100), 16.333333333333333, 1e-9);
  EXPECT_TRUE(std::isinf(chi_square_statistic({0.5, 0.5}, {1.0, 0.0}, 10)));
}

TEST(Metrics, CatalogCoversEveryAttribute) {
  EXPECT_EQ(metrics_for(Attribute::gender).size(), metric_catalog().size());
  auto race = metrics_for(Attribute::race);
  EXPECT_EQ(std::count(race.begin(), race.end(), Metric::gender_deviation_ratio), 0);
  for (const auto& info : metric_catalog()) {
    EXPECT_FALSE(info.key.empty());
    EXPECT_FALSE(info.formula.empty());
  }
}

}  // namespace
}  // namespace fairdiff::audit
