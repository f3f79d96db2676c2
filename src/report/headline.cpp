#include "report/headline.h"

#include <algorithm>

namespace fairdiff::report {

using audit::Attribute;

int metric_position(const audit::AttributeMetrics& metrics, audit::Metric metric) {
  for (size_t m = 0; m < metrics.metrics.size(); ++m) {
    if (metrics.metrics[m] == metric) return static_cast<int>(m);
  }
  return -1;
}

Headline make_headline(const audit::AuditResult& result) {
  Headline headline;
  for (size_t r = 0; r < result.runs.size(); ++r) {
    const auto& run = result.runs[r];
    RunHeadline h;
    h.run = static_cast<int>(r);
    const audit::AttributeMetrics& am = run.metrics.at(headline.ranking_attribute);
    const int m = metric_position(am, headline.ranking_metric);
    std::vector<RankedPrompt> ranked;
    for (int p = 0; p < result.prompts.size(); ++p) {
      if (am.prompts[p].n > 0) ranked.push_back({p, am.prompts[p].estimates[m]});
    }
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const RankedPrompt& a, const RankedPrompt& b) { return a.estimate.value > b.estimate.value; });
    for (size_t i = 0; i < ranked.size() && i < 3; ++i) h.most_biased.push_back(ranked[i]);
    for (size_t i = 0; i < ranked.size() && i < 3; ++i) h.least_biased.push_back(ranked[ranked.size() - 1 - i]);
    for (Attribute attribute : audit::scored_attributes()) {
      const audit::AttributeMetrics& metrics = run.metrics.at(attribute);
      const int position = metric_position(metrics, headline.ranking_metric);
      h.average.push_back(metrics.average[position]);
      if (r > 0) h.change.push_back(result.comparisons[r - 1].average_changes.at(attribute)[position]);
    }
    headline.runs.push_back(h);
  }
  return headline;
}

}  // namespace fairdiff::report
