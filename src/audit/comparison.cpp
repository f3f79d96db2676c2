#include "audit/comparison.h"

#include <algorithm>

namespace fairdiff::audit {

namespace {

double pearson_statistic(const std::vector<std::vector<long long>>& table, const std::vector<size_t>& columns,
                         const std::vector<double>& row_totals, const std::vector<double>& pooled) {
  double statistic = 0;
  for (size_t r = 0; r < table.size(); ++r) {
    for (size_t c = 0; c < columns.size(); ++c) {
      const double expected = row_totals[r] * pooled[c];
      if (expected <= 0) continue;
      const double diff = static_cast<double>(table[r][columns[c]]) - expected;
      statistic += diff * diff / expected;
    }
  }
  return statistic;
}

}  // namespace

HomogeneityTest chi_square_homogeneity(const std::vector<std::vector<long long>>& table, int mc_resamples,
                                       uint64_t seed) {
  HomogeneityTest test;
  std::vector<std::vector<long long>> rows;
  for (const auto& row : table) {
    long long total = 0;
    for (long long v : row) total += v;
    if (total > 0) rows.push_back(row);
  }
  if (rows.size() < 2) return test;
  const size_t groups = rows[0].size();
  std::vector<size_t> columns;
  double grand_total = 0;
  std::vector<double> column_totals;
  for (size_t c = 0; c < groups; ++c) {
    double total = 0;
    for (const auto& row : rows) total += static_cast<double>(row[c]);
    if (total > 0) {
      columns.push_back(c);
      column_totals.push_back(total);
      grand_total += total;
    }
  }
  test.groups_used = static_cast<int>(columns.size());
  test.df = static_cast<int>((rows.size() - 1) * (columns.size() > 0 ? columns.size() - 1 : 0));
  if (test.df == 0) {
    test.statistic = 0;
    test.p_value = 1;
    test.p_value_mc = 1;
    return test;
  }
  std::vector<double> row_totals;
  for (const auto& row : rows) {
    long long total = 0;
    for (size_t c : columns) total += row[c];
    row_totals.push_back(static_cast<double>(total));
  }
  std::vector<double> pooled;
  for (double total : column_totals) pooled.push_back(total / grand_total);
  int small = 0;
  for (double row_total : row_totals) {
    for (double share : pooled) small += row_total * share < 5.0 ? 1 : 0;
  }
  test.small_expected_counts = small * 5 > static_cast<int>(row_totals.size() * pooled.size());
  test.statistic = pearson_statistic(rows, columns, row_totals, pooled);
  test.p_value = chi_square_sf(test.statistic, test.df);
  if (mc_resamples > 0) {
    Rng rng(seed);
    int at_least = 0;
    std::vector<long long> counts;
    std::vector<std::vector<long long>> simulated(rows.size(), std::vector<long long>(columns.size()));
    std::vector<size_t> identity(columns.size());
    for (size_t c = 0; c < columns.size(); ++c) identity[c] = c;
    for (int b = 0; b < mc_resamples; ++b) {
      for (size_t r = 0; r < rows.size(); ++r) {
        sample_multinomial(rng, static_cast<long long>(row_totals[r]), pooled, counts);
        simulated[r] = counts;
      }
      // Re-estimate the pooled shares of the simulated table, as the observed statistic does.
      std::vector<double> sim_pooled(columns.size(), 0.0);
      for (const auto& row : simulated) {
        for (size_t c = 0; c < columns.size(); ++c) sim_pooled[c] += static_cast<double>(row[c]) / grand_total;
      }
      if (pearson_statistic(simulated, identity, row_totals, sim_pooled) >= test.statistic - 1e-9) ++at_least;
    }
    test.p_value_mc = (1.0 + at_least) / (1.0 + mc_resamples);
  }
  return test;
}

Difference share_difference(long long k1, long long n1, long long k2, long long n2) {
  Difference d;
  if (n1 <= 0 || n2 <= 0) return d;
  d.value = static_cast<double>(k1) / n1 - static_cast<double>(k2) / n2;
  d.ci = newcombe_difference_interval(k1, n1, k2, n2);
  return d;
}

Difference metric_difference(double value_a, const std::vector<double>& replicates_a, double value_b,
                             const std::vector<double>& replicates_b) {
  Difference d;
  d.value = value_a - value_b;
  const size_t n = std::min(replicates_a.size(), replicates_b.size());
  if (n == 0) return d;
  std::vector<double> diffs(n);
  for (size_t i = 0; i < n; ++i) diffs[i] = replicates_a[i] - replicates_b[i];
  d.ci = {percentile(diffs, 0.025), percentile(diffs, 0.975)};
  return d;
}

}  // namespace fairdiff::audit
