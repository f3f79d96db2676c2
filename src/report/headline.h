// The headline of a report: for each run, the most and least biased prompts (normalized Shen bias of
// gender x race, the attribute the study plans on), and each run's average against the baseline.
#pragma once

#include <string>
#include <vector>

#include "audit/audit_result.h"

namespace fairdiff::report {

struct RankedPrompt {
  int prompt = -1;
  audit::MetricEstimate estimate;
};

struct RunHeadline {
  int run = 0;
  std::vector<RankedPrompt> most_biased;   // up to 3, most biased first
  std::vector<RankedPrompt> least_biased;  // up to 3, least biased first
  // Averages over each attribute of the normalized Shen bias, and (for runs after the first) the change
  // against the baseline over the prompts both have.
  std::vector<audit::MetricEstimate> average;  // gender, race, gender_race
  std::vector<audit::Difference> change;       // same order; empty for the baseline
};

struct Headline {
  audit::Attribute ranking_attribute = audit::Attribute::gender_race;
  audit::Metric ranking_metric = audit::Metric::shen_bias_normalized;
  std::vector<RunHeadline> runs;
};

Headline make_headline(const audit::AuditResult& result);

// Index of `metric` in the metric list of an attribute, or -1.
int metric_position(const audit::AttributeMetrics& metrics, audit::Metric metric);

}  // namespace fairdiff::report
