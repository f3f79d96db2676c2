// Comparisons between runs (e.g. before and after fine-tuning): chi-square tests of homogeneity of a
// prompt's group counts across runs, differences of shares with Newcombe intervals, and differences of bias
// metrics with bootstrap intervals.
#pragma once

#include <string>
#include <vector>

#include "audit/bias_estimates.h"
#include "audit/stats.h"

namespace fairdiff::audit {

struct HomogeneityTest {
  double statistic = std::numeric_limits<double>::quiet_NaN();
  int df = 0;
  double p_value = std::numeric_limits<double>::quiet_NaN();     // asymptotic chi-square
  double p_value_mc = std::numeric_limits<double>::quiet_NaN();  // Monte Carlo under the pooled shares
  bool small_expected_counts = false;  // more than 20% of expected counts below 5 (Cochran's rule)
  int groups_used = 0;                 // groups with a non-zero total
};

// Pearson's chi-square test that every row (run) of `table` (rows x groups) draws from the same
// distribution. Groups with a zero total are dropped; df = (rows - 1)(groups used - 1). The Monte Carlo
// p-value redraws every row from Multinomial(row total, pooled shares) `mc_resamples` times.
HomogeneityTest chi_square_homogeneity(const std::vector<std::vector<long long>>& table, int mc_resamples,
                                       uint64_t seed);

struct Difference {
  double value = std::numeric_limits<double>::quiet_NaN();
  Interval ci{std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
};

// p1 - p2 for k1/n1 and k2/n2, Newcombe interval.
Difference share_difference(long long k1, long long n1, long long k2, long long n2);

// value_a - value_b with the percentile interval of replicate differences (independent bootstraps).
Difference metric_difference(double value_a, const std::vector<double>& replicates_a, double value_b,
                             const std::vector<double>& replicates_b);

}  // namespace fairdiff::audit
