// Intervals, the chi-square tail and the random generator; interval coverage by simulation.
#include "audit/stats.h"

#include <gtest/gtest.h>

#include <cmath>

#include "audit/bias_estimates.h"

namespace fairdiff::audit {
namespace {

TEST(Stats, WilsonInterval) {
  Interval a = wilson_interval(5, 10);
  EXPECT_NEAR(a.low, 0.236593090512564, 1e-12);
  EXPECT_NEAR(a.high, 0.7634069094874361, 1e-12);
  Interval b = wilson_interval(0, 20);
  EXPECT_NEAR(b.low, 0.0, 1e-12);
  EXPECT_NEAR(b.high, 0.16112515805281938, 1e-12);
  Interval c = wilson_interval(64, 100);
  EXPECT_NEAR(c.low, 0.5423540245160874, 1e-12);
  EXPECT_NEAR(c.high, 0.7272877959859567, 1e-12);
  Interval none = wilson_interval(0, 0);
  EXPECT_EQ(none.low, 0.0);
  EXPECT_EQ(none.high, 1.0);
}

TEST(Stats, NewcombeDifferenceMatchesPublishedExample) {
  // Newcombe (1998), Table II example: 56/70 vs 48/80, method 10 gives [0.0524, 0.3339].
  Interval d = newcombe_difference_interval(56, 70, 48, 80);
  EXPECT_NEAR(d.low, 0.052431472402365065, 1e-9);
  EXPECT_NEAR(d.high, 0.333872654036906, 1e-9);
}

TEST(Stats, ChiSquareTail) {
  EXPECT_NEAR(chi_square_sf(3.841458820694124, 1), 0.05, 1e-9);
  EXPECT_NEAR(chi_square_sf(11.070497693516351, 5), 0.05, 1e-9);
  // Even df have closed forms: df 2: e^{-x/2}; df 4: e^{-x/2}(1 + x/2).
  EXPECT_NEAR(chi_square_sf(62.0, 2), std::exp(-31.0), 1e-20);
  EXPECT_NEAR(chi_square_sf(3.0, 4), std::exp(-1.5) * 2.5, 1e-12);
  EXPECT_NEAR(chi_square_sf(0.5, 2), std::exp(-0.25), 1e-12);
  EXPECT_EQ(chi_square_sf(0.0, 3), 1.0);
}

TEST(Stats, NormalQuantileAndBiasCorrectedInterval) {
  EXPECT_NEAR(normal_cdf(1.959963984540054), 0.975, 1e-12);
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-9);
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-9);
  // Replicates centred on the estimate: z0 = 0 and the interval is the plain 2.5/97.5 percentiles.
  std::vector<double> symmetric;
  for (int i = 0; i <= 1000; ++i) symmetric.push_back(i / 1000.0);
  Interval a = bias_corrected_interval(symmetric, 0.5);
  EXPECT_NEAR(a.low, 0.025, 1e-9);
  EXPECT_NEAR(a.high, 0.975, 1e-9);
  // Replicates shifted up (84.13% above the estimate, z0 = -1): bounds at Phi(-2 -/+ 1.96) = 0.00005, 0.4840.
  Interval b = bias_corrected_interval(symmetric, 0.15866);
  EXPECT_NEAR(b.low, normal_cdf(-2 * 1.0 - 1.959963984540054), 2e-3);
  EXPECT_NEAR(b.high, normal_cdf(-2 * 1.0 + 1.959963984540054), 2e-3);
}

// Issue 15 item 8: with nearly every replicate on one side, the corrected bounds fell in one tail and the report
// printed intervals such as 0.473 [0.436, 0.437] that exclude their own estimate. The interval now always holds it.
TEST(Stats, BiasCorrectedIntervalNeverExcludesItsEstimate) {
  std::vector<double> replicates;
  for (int i = 0; i <= 1000; ++i) replicates.push_back(0.3 + 0.137 * i / 1000.0);  // 0.300 .. 0.437
  Interval above = bias_corrected_interval(replicates, 0.473);                     // every replicate below the estimate
  EXPECT_LE(above.low, 0.473);
  EXPECT_GE(above.high, 0.473);
  EXPECT_NEAR(above.low, 0.3 + 0.137 * 0.025, 1e-9);  // the plain percentile bound, not a collapsed one
  EXPECT_DOUBLE_EQ(above.high, 0.473);
  Interval inside = bias_corrected_interval(replicates, 0.3005);  // 99.6% of the replicates above
  EXPECT_LE(inside.low, 0.3005);
  EXPECT_GE(inside.high, 0.3005);
  EXPECT_GT(inside.high - inside.low, 0.1);
  for (double estimate : {0.2, 0.3, 0.31, 0.35, 0.43, 0.437, 0.5}) {
    Interval i = bias_corrected_interval(replicates, estimate);
    EXPECT_LE(i.low, estimate) << estimate;
    EXPECT_GE(i.high, estimate) << estimate;
  }
}

TEST(Stats, PercentileInterpolates) {
  std::vector<double> v = {4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(percentile(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(v, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(percentile(v, 0.5), 2.5);
}

TEST(Stats, RngIsReproducibleAndUniform) {
  Rng a(42), b(42), c(43);
  EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(Rng(42).next(), c.next());
  Rng rng(7);
  double sum = 0;
  for (int i = 0; i < 100000; ++i) sum += rng.uniform();
  EXPECT_NEAR(sum / 100000, 0.5, 0.01);
  EXPECT_NE(stream_seed(1, "run/gender/ceo"), stream_seed(1, "run/gender/doctor"));
}

TEST(Stats, MultinomialMatchesProbabilities) {
  Rng rng(11);
  std::vector<long long> counts;
  sample_multinomial(rng, 200000, {0.5, 0.0, 0.3, 0.2}, counts);
  EXPECT_EQ(counts[0] + counts[1] + counts[2] + counts[3], 200000);
  EXPECT_EQ(counts[1], 0);
  EXPECT_NEAR(counts[0] / 200000.0, 0.5, 0.005);
  EXPECT_NEAR(counts[2] / 200000.0, 0.3, 0.005);
}

// A 95% interval should contain the truth in about 95% of samples. 4000 simulated samples give a standard
// error of 0.34 points, so [93.5%, 96.5%] allows more than 4 standard errors of slack.
TEST(Coverage, WilsonIntervalCoversNearNominal) {
  Rng rng(2024);
  std::vector<long long> counts;
  for (double p : {0.5, 0.2, 0.1}) {
    int covered = 0;
    const int samples = 4000;
    for (int s = 0; s < samples; ++s) {
      sample_multinomial(rng, 100, {p, 1 - p}, counts);
      Interval ci = wilson_interval(counts[0], 100);
      covered += (ci.low <= p && p <= ci.high) ? 1 : 0;
    }
    double coverage = covered / static_cast<double>(samples);
    std::printf("Wilson coverage p=%.1f n=100: %.3f\n", p, coverage);
    EXPECT_GT(coverage, 0.925) << "p = " << p;
    EXPECT_LT(coverage, 0.975) << "p = " << p;
  }
}

// Bootstrap percentile intervals of the metrics on a clearly biased generator (the study's typical prompt:
// 64% one cell), n = 100 faces per sample, 2000 samples of 400 resamples each.
TEST(Coverage, BootstrapIntervalsOfMetricsCoverNearNominal) {
  const std::vector<double> truth = {0.64, 0.16, 0.08, 0.06, 0.04, 0.02};
  const std::vector<double> target(6, 1.0 / 6);
  const std::vector<Metric> metrics = {Metric::shen_bias_normalized, Metric::kl_divergence,
                                       Metric::fairness_discrepancy, Metric::entropy_gap};
  BootstrapSettings settings;
  settings.resamples = 400;
  Rng rng(99);
  std::vector<int> covered(metrics.size(), 0);
  const int samples = 2000;
  std::vector<long long> counts;
  for (int s = 0; s < samples; ++s) {
    sample_multinomial(rng, 100, truth, counts);
    GroupDistribution d;
    d.attribute = Attribute::race;
    d.labels = {"a", "b", "c", "d", "e", "f"};
    d.counts = counts;
    d.n_images = 100;
    settings.seed = static_cast<uint64_t>(s) + 1;
    PromptMetrics pm = estimate_prompt_metrics(d, target, metrics, -1, settings, "coverage");
    for (size_t m = 0; m < metrics.size(); ++m) {
      const double true_value = metric_value(metrics[m], truth, target, 100, -1);
      covered[m] += (pm.estimates[m].ci.low <= true_value && true_value <= pm.estimates[m].ci.high) ? 1 : 0;
    }
  }
  for (size_t m = 0; m < metrics.size(); ++m) {
    const double coverage = covered[m] / static_cast<double>(samples);
    // Percentile intervals of plug-in metrics run a little low at n = 100; 90% to 97.5% with 2000 samples
    // (standard error 0.5 points) separates "works" from "broken" (a wrong interval covers far less).
    EXPECT_GT(coverage, 0.90) << metric_info(metrics[m]).key << " coverage " << coverage;
    EXPECT_LT(coverage, 0.975) << metric_info(metrics[m]).key << " coverage " << coverage;
    RecordProperty("coverage_" + metric_info(metrics[m]).key, std::to_string(coverage));
    std::printf("bootstrap coverage %-22s %.3f\n", metric_info(metrics[m]).key.c_str(), coverage);
  }
}

TEST(NoiseFloor, FairGeneratorScoresItsOwnFloor) {
  // A prompt whose counts are exactly uniform has metric 0 and a positive floor that shrinks with n.
  GroupDistribution small, large;
  for (auto* d : {&small, &large}) {
    d->attribute = Attribute::gender;
    d->labels = {"Male", "Female"};
  }
  small.counts = {10, 10};
  small.n_images = 20;
  large.counts = {500, 500};
  large.n_images = 1000;
  BootstrapSettings settings;
  settings.resamples = 2000;
  const std::vector<Metric> metrics = {Metric::shen_bias_normalized};
  PromptMetrics a = estimate_prompt_metrics(small, {0.5, 0.5}, metrics, 1, settings, "small");
  PromptMetrics b = estimate_prompt_metrics(large, {0.5, 0.5}, metrics, 1, settings, "large");
  EXPECT_NEAR(a.estimates[0].value, 0.0, 1e-12);
  EXPECT_GT(a.estimates[0].floor_mean, b.estimates[0].floor_mean * 3);
  // For gender, |p_m - p_f| = |2X/n - 1| with X ~ Bin(n, 1/2): mean E|2X/n - 1| summed exactly over the binomial.
  EXPECT_NEAR(a.estimates[0].floor_mean, 0.176197, 0.01);   // exact: 0.176197
  EXPECT_NEAR(b.estimates[0].floor_mean, 0.025225, 0.002);  // exact: 0.025225
}

}  // namespace
}  // namespace fairdiff::audit
