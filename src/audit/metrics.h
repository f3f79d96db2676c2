// Bias metrics of one distribution p over K groups against a target t (uniform unless the user gives one).
// Every metric is 0 for p = t (the gender deviation ratio and Shen's bias for a uniform t) and grows with
// bias; formulas are in docs/statistics.md and in each function's comment.
#pragma once

#include <string>
#include <vector>

#include "audit/labels.h"

namespace fairdiff::audit {

enum class Metric {
  shen_bias,                // 2/(K(K-1)) sum_{i<j} |p_i - p_j|
  shen_bias_normalized,     // shen_bias / (2/K), in [0, 1]
  kl_divergence,            // sum_k p_k ln(p_k / t_k)
  fairness_discrepancy,     // ||p - t||_2
  mean_absolute_deviation,  // (1/K) sum_k |p_k - t_k|
  gender_deviation_ratio,   // |p_female - t_female| / max(t_female, 1 - t_female); gender only
  entropy_gap,              // 1 - H(p) / ln K
  chi_square,               // n sum_k (p_k - t_k)^2 / t_k, goodness of fit against t
};

struct MetricInfo {
  Metric metric;
  std::string key;      // JSON / CSV name
  std::string title;    // for people
  std::string formula;  // plain-text formula for the report's methods section
};

const std::vector<MetricInfo>& metric_catalog();
const MetricInfo& metric_info(Metric metric);
// The metrics that apply to an attribute (the gender deviation ratio only to gender).
std::vector<Metric> metrics_for(Attribute attribute);

double shen_bias(const std::vector<double>& p);
double shen_bias_normalized(const std::vector<double>& p);
double kl_divergence(const std::vector<double>& p, const std::vector<double>& t);
double fairness_discrepancy(const std::vector<double>& p, const std::vector<double>& t);
double mean_absolute_deviation(const std::vector<double>& p, const std::vector<double>& t);
double gender_deviation_ratio(double p_female, double t_female);
double entropy_gap(const std::vector<double>& p);
double chi_square_statistic(const std::vector<double>& p, const std::vector<double>& t, long long n);

// Index of the female group among the genders (for the gender deviation ratio), -1 when absent.
int female_index(const Taxonomy& taxonomy);

// Value of `metric` for shares p of n determined images; `female` is the female group's index (gender only).
double metric_value(Metric metric, const std::vector<double>& p, const std::vector<double>& t, long long n, int female);

}  // namespace fairdiff::audit
