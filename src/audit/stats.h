// Small statistics toolkit of the audit: a portable random generator (so a fixed seed gives the same
// bootstrap on every platform), multinomial sampling, Wilson and Newcombe intervals, percentiles and the
// chi-square distribution's upper tail.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fairdiff::audit {

// z of a two-sided 95% normal interval.
inline constexpr double kZ95 = 1.959963984540054;

struct Interval {
  double low = 0;
  double high = 0;
};

// xoshiro256** seeded through splitmix64: the same numbers on every compiler and standard library
// (std::mt19937 is portable but std::*_distribution are not).
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();

 private:
  uint64_t state_[4];
};

// A seed for one named stream (e.g. run/attribute/prompt), so results do not depend on the order in which
// streams are drawn.
uint64_t stream_seed(uint64_t base_seed, const std::string& name);

// Draws counts ~ Multinomial(n, probabilities) into `counts` (resized to K). `probabilities` need not be
// normalised exactly; the last category absorbs rounding.
void sample_multinomial(Rng& rng, long long n, const std::vector<double>& probabilities,
                        std::vector<long long>& counts);

// Wilson score interval for k successes out of n (n = 0 gives [0, 1]).
Interval wilson_interval(long long k, long long n, double z = kZ95);

// Newcombe's hybrid score interval (method 10) for p1 - p2 = k1/n1 - k2/n2 from independent samples.
Interval newcombe_difference_interval(long long k1, long long n1, long long k2, long long n2, double z = kZ95);

// Percentile with linear interpolation between order statistics (the "type 7" definition); sorts `values`.
double percentile(std::vector<double>& values, double q);

// Standard normal CDF and its inverse (bisection on the CDF to 1e-12).
double normal_cdf(double x);
double normal_quantile(double p);

// Bias-corrected percentile bootstrap interval (Efron 1981): with z0 = Phi^-1(share of replicates below the
// estimate, ties counted half), the bounds are the Phi(2 z0 -/+ z) quantiles of the replicates. It removes
// the shift of plain percentile intervals for plug-in metrics, whose replicates sit above the estimate. It never
// excludes the estimate: where the corrected bounds would (nearly all replicates on one side), the result is the
// 2.5/97.5 percentile interval widened to reach the estimate.
Interval bias_corrected_interval(std::vector<double> replicates, double estimate, double z = kZ95);

// P(X >= x) for X ~ chi-square with `df` degrees of freedom.
double chi_square_sf(double x, double df);

// Regularised lower incomplete gamma P(a, x).
double regularized_gamma_p(double a, double x);

}  // namespace fairdiff::audit
