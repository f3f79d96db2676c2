// Bootstrap intervals and sampling-noise floors of the bias metrics, per prompt and averaged over prompts.
//  - interval: bias-corrected percentile bootstrap; each replicate redraws the prompt's determined images
//    from the observed shares (Multinomial(n, p_hat)) and recomputes the metric;
//  - noise floor: what a perfectly fair generator (one that draws from the target) would score with the
//    same n, by simulation: the mean and the 95th percentile of the metric over Multinomial(n, t) samples.
// Averages over prompts resample every prompt independently and average per replicate. Each prompt's
// random stream is seeded from (seed, stream name), so results do not depend on evaluation order.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "audit/distribution.h"
#include "audit/metrics.h"
#include "audit/stats.h"

namespace fairdiff::audit {

struct BootstrapSettings {
  int resamples = 1000;
  uint64_t seed = 20240917;
};

struct MetricEstimate {
  double value = std::numeric_limits<double>::quiet_NaN();
  Interval ci{std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
  double floor_mean = std::numeric_limits<double>::quiet_NaN();
  double floor_q95 = std::numeric_limits<double>::quiet_NaN();
  long long n = 0;  // determined images behind the value (for an average: their sum)

  bool defined() const { return n > 0 && value == value; }
};

struct PromptMetrics {
  long long n = 0;                                                 // images where the attribute was determined
  std::vector<MetricEstimate> estimates;                           // one per metric
  std::vector<std::vector<double>> replicates;                     // [metric][resample], bootstrap values
  std::vector<std::vector<double>> floor_replicates;               // [metric][resample], fair-generator values
  double chi_square_p = std::numeric_limits<double>::quiet_NaN();  // asymptotic, df = K - 1
  bool small_expected_counts = false;                              // some n t_k < 5: the asymptotic p-value is rough
};

struct AttributeMetrics {
  Attribute attribute = Attribute::gender;
  std::vector<Metric> metrics;
  std::vector<PromptMetrics> prompts;   // indexed like the PromptSet; n = 0 where the run lacks the prompt
  std::vector<MetricEstimate> average;  // one per metric, over `averaged_prompts`
  std::vector<int> averaged_prompts;    // prompts with n > 0
};

PromptMetrics estimate_prompt_metrics(const GroupDistribution& distribution, const std::vector<double>& target,
                                      const std::vector<Metric>& metrics, int female, const BootstrapSettings& settings,
                                      const std::string& stream_name);

// Mean over `prompts` of metric `m`, with the interval and floor from the per-replicate means.
MetricEstimate average_estimate(const std::vector<const PromptMetrics*>& prompts, size_t m);

// Per-replicate mean over `prompts` of metric `m` (bootstrap or floor replicates).
std::vector<double> average_replicates(const std::vector<const PromptMetrics*>& prompts, size_t m, bool floor);

}  // namespace fairdiff::audit
