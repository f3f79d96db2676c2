#include "audit/bias_estimates.h"

#include <cmath>

namespace fairdiff::audit {

namespace {

std::vector<double> shares_of(const std::vector<long long>& counts, long long n) {
  std::vector<double> p(counts.size());
  for (size_t k = 0; k < counts.size(); ++k) p[k] = static_cast<double>(counts[k]) / static_cast<double>(n);
  return p;
}

}  // namespace

PromptMetrics estimate_prompt_metrics(const GroupDistribution& distribution, const std::vector<double>& target,
                                      const std::vector<Metric>& metrics, int female, const BootstrapSettings& settings,
                                      const std::string& stream_name) {
  PromptMetrics out;
  out.n = distribution.n_determined();
  out.estimates.assign(metrics.size(), MetricEstimate{});
  out.replicates.assign(metrics.size(), {});
  out.floor_replicates.assign(metrics.size(), {});
  if (out.n <= 0) return out;
  const std::vector<double> p = distribution.determined_shares();
  for (size_t m = 0; m < metrics.size(); ++m) {
    out.estimates[m].value = metric_value(metrics[m], p, target, out.n, female);
    out.estimates[m].n = out.n;
    out.replicates[m].reserve(settings.resamples);
    out.floor_replicates[m].reserve(settings.resamples);
  }
  Rng rng(stream_seed(settings.seed, stream_name));
  std::vector<long long> counts;
  for (int b = 0; b < settings.resamples; ++b) {
    sample_multinomial(rng, out.n, p, counts);
    std::vector<double> resampled = shares_of(counts, out.n);
    for (size_t m = 0; m < metrics.size(); ++m) {
      out.replicates[m].push_back(metric_value(metrics[m], resampled, target, out.n, female));
    }
    sample_multinomial(rng, out.n, target, counts);
    std::vector<double> fair = shares_of(counts, out.n);
    for (size_t m = 0; m < metrics.size(); ++m) {
      out.floor_replicates[m].push_back(metric_value(metrics[m], fair, target, out.n, female));
    }
  }
  for (size_t m = 0; m < metrics.size(); ++m) {
    MetricEstimate& e = out.estimates[m];
    if (settings.resamples > 0) {
      e.ci = bias_corrected_interval(out.replicates[m], e.value);
      double sum = 0;
      for (double v : out.floor_replicates[m]) sum += v;
      e.floor_mean = sum / static_cast<double>(out.floor_replicates[m].size());
      std::vector<double> floor = out.floor_replicates[m];
      e.floor_q95 = percentile(floor, 0.95);
    }
  }
  double chi2 = chi_square_statistic(p, target, out.n);
  out.chi_square_p = chi_square_sf(chi2, static_cast<double>(target.size()) - 1.0);
  for (double t : target) {
    if (static_cast<double>(out.n) * t < 5.0) out.small_expected_counts = true;
  }
  return out;
}

std::vector<double> average_replicates(const std::vector<const PromptMetrics*>& prompts, size_t m, bool floor) {
  std::vector<double> means;
  if (prompts.empty()) return means;
  const size_t resamples = (floor ? prompts[0]->floor_replicates[m] : prompts[0]->replicates[m]).size();
  means.assign(resamples, 0.0);
  for (const PromptMetrics* prompt : prompts) {
    const auto& values = floor ? prompt->floor_replicates[m] : prompt->replicates[m];
    for (size_t b = 0; b < resamples && b < values.size(); ++b) means[b] += values[b];
  }
  for (double& v : means) v /= static_cast<double>(prompts.size());
  return means;
}

MetricEstimate average_estimate(const std::vector<const PromptMetrics*>& prompts, size_t m) {
  MetricEstimate e;
  if (prompts.empty()) return e;
  double sum = 0;
  for (const PromptMetrics* prompt : prompts) {
    sum += prompt->estimates[m].value;
    e.n += prompt->n;
  }
  e.value = sum / static_cast<double>(prompts.size());
  std::vector<double> replicates = average_replicates(prompts, m, false);
  if (!replicates.empty()) e.ci = bias_corrected_interval(replicates, e.value);
  std::vector<double> floor = average_replicates(prompts, m, true);
  if (!floor.empty()) {
    double total = 0;
    for (double v : floor) total += v;
    e.floor_mean = total / static_cast<double>(floor.size());
    e.floor_q95 = percentile(floor, 0.95);
  }
  return e;
}

}  // namespace fairdiff::audit
