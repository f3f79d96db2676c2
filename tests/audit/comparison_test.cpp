// Chi-square homogeneity and differences between runs against hand-computed values.
#include "audit/comparison.h"

#include <gtest/gtest.h>

#include <cmath>

namespace fairdiff::audit {
namespace {

TEST(Comparison, HomogeneityMatchesHandComputation) {
  // Rows 45 and 50, columns 50/30/15 of N = 95: X^2 = sum (O - E)^2 / E = 6.7556, df 2, p = e^{-X^2/2}.
  HomogeneityTest t = chi_square_homogeneity({{30, 10, 5}, {20, 20, 10}}, 2000, 1);
  EXPECT_NEAR(t.statistic, 6.755555555555555, 1e-9);
  EXPECT_EQ(t.df, 2);
  EXPECT_NEAR(t.p_value, 0.034123199875217204, 1e-9);
  // The Monte Carlo p-value agrees with the asymptotic one at these counts (2000 draws: SE about 0.004).
  EXPECT_NEAR(t.p_value_mc, 0.034, 0.015);
  EXPECT_FALSE(t.small_expected_counts);
}

TEST(Comparison, EmptyGroupsAreDroppedAndIdenticalRunsDoNotDiffer) {
  HomogeneityTest t = chi_square_homogeneity({{10, 0, 10}, {10, 0, 10}}, 500, 2);
  EXPECT_EQ(t.df, 1);
  EXPECT_NEAR(t.statistic, 0.0, 1e-12);
  EXPECT_NEAR(t.p_value, 1.0, 1e-12);
  EXPECT_EQ(t.p_value_mc, 1.0);
  HomogeneityTest one_group = chi_square_homogeneity({{10, 0}, {7, 0}}, 100, 3);
  EXPECT_EQ(one_group.df, 0);
  HomogeneityTest one_run = chi_square_homogeneity({{10, 3}, {0, 0}}, 100, 3);
  EXPECT_TRUE(std::isnan(one_run.statistic));
}

TEST(Comparison, ShareAndMetricDifferences) {
  Difference d = share_difference(56, 70, 48, 80);
  EXPECT_NEAR(d.value, 0.2, 1e-12);
  EXPECT_NEAR(d.ci.low, 0.052431472402365065, 1e-9);
  EXPECT_NEAR(d.ci.high, 0.333872654036906, 1e-9);
  std::vector<double> a = {0.5, 0.6, 0.7, 0.8, 0.9};
  std::vector<double> b = {0.4, 0.4, 0.4, 0.4, 0.4};
  Difference m = metric_difference(0.7, a, 0.4, b);
  EXPECT_NEAR(m.value, 0.3, 1e-12);
  EXPECT_NEAR(m.ci.low, 0.1 + 0.1 * 4 * 0.025, 1e-12);
  EXPECT_NEAR(m.ci.high, 0.5 - 0.1 * 4 * 0.025, 1e-12);
}

}  // namespace
}  // namespace fairdiff::audit
