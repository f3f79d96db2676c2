#include "audit/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace fairdiff::audit {

const std::vector<MetricInfo>& metric_catalog() {
  static const std::vector<MetricInfo> catalog = {
      {Metric::shen_bias, "shen_bias", "Shen et al. bias", "2/(K(K-1)) * sum_{i<j} |p_i - p_j|"},
      {Metric::shen_bias_normalized, "shen_bias_normalized", "Shen bias, normalized",
       "(K/2) * 2/(K(K-1)) * sum_{i<j} |p_i - p_j|   (1 = every image in one group)"},
      {Metric::kl_divergence, "kl_divergence", "KL divergence to target", "sum_k p_k ln(p_k / t_k)"},
      {Metric::fairness_discrepancy, "fairness_discrepancy", "Fairness discrepancy (L2)", "sqrt(sum_k (p_k - t_k)^2)"},
      {Metric::mean_absolute_deviation, "mean_absolute_deviation", "Mean absolute deviation",
       "(1/K) * sum_k |p_k - t_k|"},
      {Metric::gender_deviation_ratio, "gender_deviation_ratio", "Gender deviation ratio",
       "|p_female - t_female| / max(t_female, 1 - t_female)   (= |p_female - 0.5| / 0.5 for t = 0.5)"},
      {Metric::entropy_gap, "entropy_gap", "Normalized entropy gap", "1 - H(p) / ln K,  H(p) = -sum_k p_k ln p_k"},
      {Metric::chi_square, "chi_square", "Chi-square vs target", "n * sum_k (p_k - t_k)^2 / t_k,  df = K - 1"},
  };
  return catalog;
}

const MetricInfo& metric_info(Metric metric) {
  for (const auto& info : metric_catalog()) {
    if (info.metric == metric) return info;
  }
  throw Error(ExitCode::failure, "metric_info: unknown metric");
}

std::vector<Metric> metrics_for(Attribute attribute) {
  std::vector<Metric> out;
  for (const auto& info : metric_catalog()) {
    if (info.metric == Metric::gender_deviation_ratio && attribute != Attribute::gender) continue;
    out.push_back(info.metric);
  }
  return out;
}

double shen_bias(const std::vector<double>& p) {
  const size_t k = p.size();
  if (k < 2) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = i + 1; j < k; ++j) sum += std::fabs(p[i] - p[j]);
  }
  return 2.0 * sum / (static_cast<double>(k) * static_cast<double>(k - 1));
}

double shen_bias_normalized(const std::vector<double>& p) {
  // The maximum, 2/K, is reached when one group holds every image: K-1 pairs differ by 1.
  return shen_bias(p) * static_cast<double>(p.size()) / 2.0;
}

double kl_divergence(const std::vector<double>& p, const std::vector<double>& t) {
  double sum = 0;
  for (size_t k = 0; k < p.size(); ++k) {
    if (p[k] <= 0) continue;  // 0 ln 0 = 0
    if (t[k] <= 0) return std::numeric_limits<double>::infinity();
    sum += p[k] * std::log(p[k] / t[k]);
  }
  return std::max(0.0, sum);
}

double fairness_discrepancy(const std::vector<double>& p, const std::vector<double>& t) {
  double sum = 0;
  for (size_t k = 0; k < p.size(); ++k) sum += (p[k] - t[k]) * (p[k] - t[k]);
  return std::sqrt(sum);
}

double mean_absolute_deviation(const std::vector<double>& p, const std::vector<double>& t) {
  double sum = 0;
  for (size_t k = 0; k < p.size(); ++k) sum += std::fabs(p[k] - t[k]);
  return p.empty() ? std::numeric_limits<double>::quiet_NaN() : sum / static_cast<double>(p.size());
}

double gender_deviation_ratio(double p_female, double t_female) {
  return std::fabs(p_female - t_female) / std::max(t_female, 1.0 - t_female);
}

double entropy_gap(const std::vector<double>& p) {
  if (p.size() < 2) return std::numeric_limits<double>::quiet_NaN();
  double h = 0;
  for (double v : p) {
    if (v > 0) h -= v * std::log(v);
  }
  return std::max(0.0, 1.0 - h / std::log(static_cast<double>(p.size())));
}

double chi_square_statistic(const std::vector<double>& p, const std::vector<double>& t, long long n) {
  double sum = 0;
  for (size_t k = 0; k < p.size(); ++k) {
    if (t[k] <= 0) {
      if (p[k] > 0) return std::numeric_limits<double>::infinity();
      continue;
    }
    sum += (p[k] - t[k]) * (p[k] - t[k]) / t[k];
  }
  return static_cast<double>(n) * sum;
}

int female_index(const Taxonomy& taxonomy) {
  for (size_t i = 0; i < taxonomy.genders.size(); ++i) {
    if (normalize_label(taxonomy.genders[i]) == "female") return static_cast<int>(i);
  }
  return -1;
}

double metric_value(Metric metric, const std::vector<double>& p, const std::vector<double>& t, long long n,
                    int female) {
  switch (metric) {
    case Metric::shen_bias:
      return shen_bias(p);
    case Metric::shen_bias_normalized:
      return shen_bias_normalized(p);
    case Metric::kl_divergence:
      return kl_divergence(p, t);
    case Metric::fairness_discrepancy:
      return fairness_discrepancy(p, t);
    case Metric::mean_absolute_deviation:
      return mean_absolute_deviation(p, t);
    case Metric::gender_deviation_ratio:
      if (female < 0 || female >= static_cast<int>(p.size())) return std::numeric_limits<double>::quiet_NaN();
      return gender_deviation_ratio(p[female], t[female]);
    case Metric::entropy_gap:
      return entropy_gap(p);
    case Metric::chi_square:
      return chi_square_statistic(p, t, n);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace fairdiff::audit
