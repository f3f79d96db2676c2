// One audit of one or more runs: distributions, bias metrics with intervals and noise floors, corrected
// shares when a confusion matrix is given, and comparisons of every run with the first (the baseline).
// Plain data for the report module to print.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "audit/bias_estimates.h"
#include "audit/comparison.h"
#include "audit/correction.h"
#include "audit/detections.h"
#include "audit/distribution.h"
#include "audit/target.h"

namespace fairdiff::audit {

struct AuditSettings {
  BootstrapSettings bootstrap;
  int homogeneity_resamples = 2000;  // Monte Carlo draws per homogeneity test
};

// The attributes that bias metrics are computed for (age is described, not scored).
const std::vector<Attribute>& scored_attributes();
const std::vector<Attribute>& described_attributes();  // gender, race, gender_race, age

struct RunAudit {
  std::string name;
  std::string source;
  std::string layout;
  int rows_read = 0;
  long long n_images = 0;
  std::vector<std::string> notes;
  std::vector<bool> has_prompt;                                       // [prompt]
  std::map<Attribute, std::vector<GroupDistribution>> distributions;  // [attribute][prompt]
  std::map<Attribute, GroupDistribution> overall;                     // all prompts pooled
  std::map<Attribute, AttributeMetrics> metrics;                      // scored attributes
  std::map<Attribute, std::vector<CorrectedShares>> corrected;        // [attribute][prompt], with --confusion
};

struct BaselineComparison {
  int run = 0;                                                              // index into AuditResult::runs
  int baseline = 0;                                                         // index of the baseline run (0)
  std::vector<int> prompts;                                                 // prompts both runs have
  std::map<Attribute, std::vector<HomogeneityTest>> tests;                  // [attribute][prompt]
  std::map<Attribute, std::vector<std::vector<Difference>>> share_changes;  // [attribute][prompt][group]
  std::map<Attribute, std::vector<MetricEstimate>> run_average;             // over `prompts`
  std::map<Attribute, std::vector<MetricEstimate>> baseline_average;        // over `prompts`
  std::map<Attribute, std::vector<Difference>> average_changes;             // run - baseline, [metric]
};

struct AuditResult {
  PromptSet prompts;
  Taxonomy taxonomy;
  std::vector<std::string> age_labels;
  Target target;
  std::optional<ConfusionSet> confusion;
  AuditSettings settings;
  std::vector<RunAudit> runs;
  std::vector<int> common_prompts;                                // prompts every run has
  std::map<Attribute, std::vector<HomogeneityTest>> homogeneity;  // [attribute][prompt], all runs with it
  std::vector<BaselineComparison> comparisons;                    // runs[1..] against runs[0]
};

AuditResult run_audit(const PromptSet& prompts, const std::vector<Run>& runs, const Taxonomy& taxonomy,
                      const Target& target, const ConfusionSet* confusion, const AuditSettings& settings);

// Averages of a run's metric `m` over `prompts` (recomputed from its per-prompt replicates).
MetricEstimate average_over(const AttributeMetrics& metrics, const std::vector<int>& prompts, size_t m);

}  // namespace fairdiff::audit
