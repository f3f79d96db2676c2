#include "report/metrics_json.h"

#include <cmath>

namespace fairdiff::report {

using audit::Attribute;

Json json_number(double value) {
  if (std::isnan(value)) return nullptr;
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return value;
}

namespace {

Json interval_json(const audit::Interval& interval) {
  return Json::array({json_number(interval.low), json_number(interval.high)});
}

Json estimate_json(const audit::MetricEstimate& e) {
  return {{"value", json_number(e.value)},
          {"ci", interval_json(e.ci)},
          {"floor_mean", json_number(e.floor_mean)},
          {"floor_q95", json_number(e.floor_q95)},
          {"n", e.n}};
}

Json difference_json(const audit::Difference& d) {
  return {{"value", json_number(d.value)}, {"ci", interval_json(d.ci)}};
}

Json distribution_json(const audit::GroupDistribution& d) {
  Json share_all = Json::array(), share_all_ci = Json::array(), share_det = Json::array(), share_det_ci = Json::array();
  for (int k = 0; k < d.num_groups(); ++k) {
    share_all.push_back(d.share_of_all(k));
    share_all_ci.push_back(interval_json(d.wilson_of_all(k)));
    share_det.push_back(d.n_determined() > 0 ? Json(d.share_of_determined(k)) : Json(nullptr));
    share_det_ci.push_back(interval_json(d.wilson_of_determined(k)));
  }
  return {{"labels", d.labels},
          {"counts", d.counts},
          {"n_images", d.n_images},
          {"n_none", d.n_none},
          {"none_share", d.none_share()},
          {"none_share_ci", interval_json(d.wilson_none())},
          {"share_all", share_all},
          {"share_all_ci", share_all_ci},
          {"share_determined", share_det},
          {"share_determined_ci", share_det_ci}};
}

Json test_json(const audit::HomogeneityTest& t) {
  return {{"statistic", json_number(t.statistic)},
          {"df", t.df},
          {"p_value", json_number(t.p_value)},
          {"p_value_mc", json_number(t.p_value_mc)},
          {"small_expected_counts", t.small_expected_counts},
          {"groups_used", t.groups_used}};
}

Json run_json(const audit::AuditResult& result, const audit::RunAudit& run) {
  Json j = {{"name", run.name},         {"source", run.source},       {"layout", run.layout},
            {"n_images", run.n_images}, {"rows_read", run.rows_read}, {"notes", run.notes}};
  Json distributions = Json::object();
  for (Attribute a : audit::described_attributes())
    distributions["all"][audit::attribute_name(a)] = distribution_json(run.overall.at(a));
  for (int p = 0; p < result.prompts.size(); ++p) {
    if (!run.has_prompt[p]) continue;
    for (Attribute a : audit::described_attributes()) {
      distributions[result.prompts.ids[p]][audit::attribute_name(a)] = distribution_json(run.distributions.at(a)[p]);
    }
  }
  j["distributions"] = distributions;
  Json metrics = Json::object();
  for (Attribute a : audit::scored_attributes()) {
    const audit::AttributeMetrics& am = run.metrics.at(a);
    Json per_prompt = Json::object();
    for (int p = 0; p < result.prompts.size(); ++p) {
      if (am.prompts[p].n == 0) continue;
      Json entry = {{"n", am.prompts[p].n},
                    {"chi_square_p", json_number(am.prompts[p].chi_square_p)},
                    {"small_expected_counts", am.prompts[p].small_expected_counts}};
      for (size_t m = 0; m < am.metrics.size(); ++m) {
        entry[audit::metric_info(am.metrics[m]).key] = estimate_json(am.prompts[p].estimates[m]);
      }
      per_prompt[result.prompts.ids[p]] = entry;
    }
    Json average = Json::object();
    Json averaged = Json::array();
    for (int p : am.averaged_prompts) averaged.push_back(result.prompts.ids[p]);
    average["prompts"] = averaged;
    for (size_t m = 0; m < am.metrics.size(); ++m)
      average[audit::metric_info(am.metrics[m]).key] = estimate_json(am.average[m]);
    metrics[audit::attribute_name(a)] = {{"per_prompt", per_prompt}, {"average", average}};
  }
  j["metrics"] = metrics;
  if (!run.corrected.empty()) {
    Json corrected = Json::object();
    for (const auto& [a, per_prompt] : run.corrected) {
      const audit::AttributeMetrics& am = run.metrics.at(a);
      for (int p = 0; p < result.prompts.size(); ++p) {
        const audit::CorrectedShares& c = per_prompt[p];
        if (c.n == 0) continue;
        Json raw_ci = Json::array(), corrected_ci = Json::array(), metrics_entry = Json::object();
        for (const auto& i : c.raw_ci) raw_ci.push_back(interval_json(i));
        for (const auto& i : c.corrected_ci) corrected_ci.push_back(interval_json(i));
        for (size_t m = 0; m < am.metrics.size(); ++m) {
          metrics_entry[audit::metric_info(am.metrics[m]).key] = estimate_json(c.metrics[m]);
        }
        corrected[audit::attribute_name(a)][result.prompts.ids[p]] = {{"labels", result.taxonomy.group_labels(a)},
                                                                      {"n", c.n},
                                                                      {"raw", c.raw},
                                                                      {"raw_ci", raw_ci},
                                                                      {"corrected", c.corrected},
                                                                      {"corrected_ci", corrected_ci},
                                                                      {"metrics", metrics_entry}};
      }
    }
    j["corrected"] = corrected;
  }
  return j;
}

}  // namespace

Json metrics_json(const audit::AuditResult& result, const Headline& headline) {
  Json j;
  j["fairdiff_report"] = 1;
  j["settings"] = {{"bootstrap_resamples", result.settings.bootstrap.resamples},
                   {"seed", result.settings.bootstrap.seed},
                   {"homogeneity_resamples", result.settings.homogeneity_resamples},
                   {"target", result.target.is_uniform() ? std::string("uniform") : result.target.source()},
                   {"confusion", result.confusion ? Json(result.confusion->source) : Json(nullptr)},
                   {"prompts_csv", result.prompts.source}};
  Json prompts = Json::array();
  for (int p = 0; p < result.prompts.size(); ++p)
    prompts.push_back({{"id", result.prompts.ids[p]}, {"text", result.prompts.texts[p]}});
  j["prompts"] = prompts;
  j["taxonomy"] = {{"gender", result.taxonomy.genders}, {"race", result.taxonomy.races}, {"age", result.age_labels}};
  Json common = Json::array();
  for (int p : result.common_prompts) common.push_back(result.prompts.ids[p]);
  j["common_prompts"] = common;
  Json runs = Json::array();
  for (const auto& run : result.runs) runs.push_back(run_json(result, run));
  j["runs"] = runs;
  Json homogeneity = Json::object();
  for (const auto& [a, tests] : result.homogeneity) {
    for (int p = 0; p < result.prompts.size(); ++p) {
      if (tests[p].df > 0) homogeneity[audit::attribute_name(a)][result.prompts.ids[p]] = test_json(tests[p]);
    }
  }
  j["homogeneity"] = homogeneity;
  Json comparisons = Json::array();
  for (const auto& c : result.comparisons) {
    Json entry = {{"run", result.runs[c.run].name}, {"baseline", result.runs[c.baseline].name}};
    Json prompts_used = Json::array();
    for (int p : c.prompts) prompts_used.push_back(result.prompts.ids[p]);
    entry["prompts"] = prompts_used;
    for (Attribute a : audit::scored_attributes()) {
      const std::string name = audit::attribute_name(a);
      const audit::AttributeMetrics& am = result.runs[c.run].metrics.at(a);
      for (int p : c.prompts) {
        entry["tests"][name][result.prompts.ids[p]] = test_json(c.tests.at(a)[p]);
        Json changes = Json::array();
        for (const auto& d : c.share_changes.at(a)[p]) changes.push_back(difference_json(d));
        entry["share_changes"][name][result.prompts.ids[p]] = changes;
      }
      for (size_t m = 0; m < am.metrics.size(); ++m) {
        const std::string key = audit::metric_info(am.metrics[m]).key;
        entry["average_changes"][name][key] = {{"run", estimate_json(c.run_average.at(a)[m])},
                                               {"baseline", estimate_json(c.baseline_average.at(a)[m])},
                                               {"change", difference_json(c.average_changes.at(a)[m])}};
      }
    }
    comparisons.push_back(entry);
  }
  j["comparisons"] = comparisons;
  Json runs_headline = Json::array();
  for (const auto& h : headline.runs) {
    Json most = Json::array(), least = Json::array();
    for (const auto& r : h.most_biased)
      most.push_back({{"prompt_id", result.prompts.ids[r.prompt]}, {"estimate", estimate_json(r.estimate)}});
    for (const auto& r : h.least_biased)
      least.push_back({{"prompt_id", result.prompts.ids[r.prompt]}, {"estimate", estimate_json(r.estimate)}});
    runs_headline.push_back({{"run", result.runs[h.run].name}, {"most_biased", most}, {"least_biased", least}});
  }
  j["headline"] = {{"attribute", audit::attribute_name(headline.ranking_attribute)},
                   {"metric", audit::metric_info(headline.ranking_metric).key},
                   {"runs", runs_headline}};
  return j;
}

}  // namespace fairdiff::report
