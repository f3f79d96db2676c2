#include "report/charts.h"

#include "report/headline.h"
#include "report/metrics_json.h"

namespace fairdiff::report {

using audit::Attribute;

namespace {

const char* kSchema = "https://vega.github.io/schema/vega-lite/v6.json";
const char* kNoFaceColor = "#bdbdbd";

// Distinct colours for up to 20 groups (Tableau 20), "--" always grey.
const std::vector<std::string>& palette() {
  static const std::vector<std::string> colors = {
      "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#79706e",
      "#a0cbe8", "#ffbe7d", "#ff9d9a", "#86bcb6", "#8cd17d", "#f1ce63", "#d4a6c8", "#fabfd2", "#d7b5a6", "#bab0ac"};
  return colors;
}

Json names_of_runs(const audit::AuditResult& result) {
  Json names = Json::array();
  for (const auto& run : result.runs) names.push_back(run.name);
  return names;
}

Json prompt_ids(const audit::AuditResult& result) {
  Json ids = Json::array();
  for (const auto& id : result.prompts.ids) ids.push_back(id);
  return ids;
}

Json row_facet(const audit::AuditResult& result) {
  return {{"field", "prompt"},
          {"type", "nominal"},
          {"sort", prompt_ids(result)},
          {"title", nullptr},
          {"header", {{"labelAngle", 0}, {"labelAlign", "left"}, {"labelFontWeight", "bold"}}}};
}

Chart composition_chart(const audit::AuditResult& result, Attribute attribute) {
  std::vector<std::string> groups =
      attribute == Attribute::age ? result.age_labels : result.taxonomy.group_labels(attribute);
  groups.push_back(audit::kNoFace);
  Json values = Json::array();
  for (const auto& run : result.runs) {
    for (int p = 0; p < result.prompts.size(); ++p) {
      if (!run.has_prompt[p]) continue;
      const audit::GroupDistribution& d = run.distributions.at(attribute)[p];
      for (int k = 0; k <= d.num_groups(); ++k) {
        const bool none = k == d.num_groups();
        const long long count = none ? d.n_none : d.counts[k];
        if (count == 0) continue;
        const audit::Interval ci = none ? d.wilson_none() : d.wilson_of_all(k);
        values.push_back({{"prompt", result.prompts.ids[p]},
                          {"run", run.name},
                          {"group", groups[k]},
                          {"order", k},
                          {"share", none ? d.none_share() : d.share_of_all(k)},
                          {"low", ci.low},
                          {"high", ci.high},
                          {"count", count},
                          {"n", d.n_images}});
      }
    }
  }
  Json range = Json::array();
  for (size_t k = 0; k + 1 < groups.size(); ++k) range.push_back(palette()[k % palette().size()]);
  range.push_back(kNoFaceColor);
  const std::string name = audit::attribute_name(attribute);
  Chart chart;
  chart.id = "chart-composition-" + name;
  chart.section = "distributions";
  chart.title = "Composition by prompt: " + (attribute == Attribute::gender_race ? std::string("gender x race") : name);
  chart.caption =
      "Share of all images of each prompt (the study's convention); grey is '--' (no face or no answer). "
      "Hover a segment for its count and Wilson 95% interval.";
  chart.spec = {{"$schema", kSchema},
                {"data", {{"values", values}}},
                {"facet", {{"row", row_facet(result)}}},
                {"spacing", 4},
                {"spec",
                 {{"width", 460},
                  {"height", {{"step", 13}}},
                  {"mark", {{"type", "bar"}}},
                  {"encoding",
                   {{"y", {{"field", "run"}, {"type", "nominal"}, {"sort", names_of_runs(result)}, {"title", nullptr}}},
                    {"x",
                     {{"field", "share"},
                      {"type", "quantitative"},
                      {"stack", "zero"},
                      {"scale", {{"domain", {0, 1}}}},
                      {"axis", {{"format", "%"}}},
                      {"title", "share of all images"}}},
                    {"color",
                     {{"field", "group"},
                      {"type", "nominal"},
                      {"sort", groups},
                      {"scale", {{"domain", groups}, {"range", range}}},
                      {"legend", {{"title", name}, {"columns", attribute == Attribute::gender_race ? 2 : 1}}}}},
                    {"order", {{"field", "order"}, {"type", "quantitative"}}},
                    {"tooltip", Json::array({{{"field", "prompt"}},
                                             {{"field", "run"}},
                                             {{"field", "group"}},
                                             {{"field", "count"}},
                                             {{"field", "n"}, {"title", "images"}},
                                             {{"field", "share"}, {"format", ".1%"}},
                                             {{"field", "low"}, {"format", ".1%"}},
                                             {{"field", "high"}, {"format", ".1%"}}})}}}}}};
  return chart;
}

Chart interval_chart(const audit::AuditResult& result, Attribute attribute) {
  Json values = Json::array();
  for (const auto& run : result.runs) {
    for (int p = 0; p < result.prompts.size(); ++p) {
      const audit::GroupDistribution& d = run.distributions.at(attribute)[p];
      if (!run.has_prompt[p] || d.n_determined() == 0) continue;
      for (int k = 0; k < d.num_groups(); ++k) {
        const audit::Interval ci = d.wilson_of_determined(k);
        values.push_back({{"prompt", result.prompts.ids[p]},
                          {"run", run.name},
                          {"group", d.labels[k]},
                          {"share", d.share_of_determined(k)},
                          {"low", ci.low},
                          {"high", ci.high},
                          {"count", d.counts[k]},
                          {"n", d.n_determined()}});
      }
    }
  }
  const std::string name = audit::attribute_name(attribute);
  const Json groups = result.taxonomy.group_labels(attribute);
  Json shared = {
      {"y", {{"field", "group"}, {"type", "nominal"}, {"sort", groups}, {"title", nullptr}}},
      {"yOffset", {{"field", "run"}, {"type", "nominal"}, {"sort", names_of_runs(result)}}},
      {"color",
       {{"field", "run"}, {"type", "nominal"}, {"sort", names_of_runs(result)}, {"legend", {{"title", "run"}}}}}};
  Chart chart;
  chart.id = "chart-intervals-" + name;
  chart.section = "distributions";
  chart.title = "Shares with Wilson 95% intervals: " + name;
  chart.caption = "Share of each group among the images where the " + name +
                  " was determined, per run; the line is the Wilson 95% interval.";
  chart.spec = {{"$schema", kSchema},
                {"data", {{"values", values}}},
                {"facet", {{"row", row_facet(result)}}},
                {"spacing", 6},
                {"spec",
                 {{"width", 460},
                  {"height", {{"step", static_cast<int>(6 * result.runs.size() + 4)}}},
                  {"encoding", shared},
                  {"layer", Json::array({{{"mark", {{"type", "rule"}}},
                                          {"encoding",
                                           {{"x",
                                             {{"field", "low"},
                                              {"type", "quantitative"},
                                              {"scale", {{"domain", {0, 1}}}},
                                              {"axis", {{"format", "%"}}},
                                              {"title", "share of determined images"}}},
                                            {"x2", {{"field", "high"}}}}}},
                                         {{"mark", {{"type", "point"}, {"filled", true}, {"size", 30}}},
                                          {"encoding",
                                           {{"x", {{"field", "share"}, {"type", "quantitative"}}},
                                            {"tooltip", Json::array({{{"field", "run"}},
                                                                     {{"field", "group"}},
                                                                     {{"field", "count"}},
                                                                     {{"field", "n"}},
                                                                     {{"field", "share"}, {"format", ".1%"}},
                                                                     {{"field", "low"}, {"format", ".1%"}},
                                                                     {{"field", "high"}, {"format", ".1%"}}})}}}}})}}}};
  return chart;
}

Chart bias_chart(const audit::AuditResult& result) {
  Json values = Json::array();
  for (const auto& run : result.runs) {
    for (Attribute a : audit::scored_attributes()) {
      const audit::AttributeMetrics& am = run.metrics.at(a);
      const int m = metric_position(am, audit::Metric::shen_bias_normalized);
      for (int p = 0; p < result.prompts.size(); ++p) {
        if (am.prompts[p].n == 0) continue;
        const audit::MetricEstimate& e = am.prompts[p].estimates[m];
        values.push_back({{"attribute", audit::attribute_name(a)},
                          {"prompt", result.prompts.ids[p]},
                          {"run", run.name},
                          {"value", e.value},
                          {"low", json_number(e.ci.low)},
                          {"high", json_number(e.ci.high)},
                          {"floor", json_number(e.floor_q95)},
                          {"n", e.n}});
      }
    }
  }
  Json shared = {{"y", {{"field", "prompt"}, {"type", "nominal"}, {"sort", prompt_ids(result)}, {"title", nullptr}}},
                 {"yOffset", {{"field", "run"}, {"type", "nominal"}, {"sort", names_of_runs(result)}}},
                 {"color", {{"field", "run"}, {"type", "nominal"}, {"sort", names_of_runs(result)}}}};
  Json tooltip = Json::array({{{"field", "prompt"}},
                              {{"field", "run"}},
                              {{"field", "value"}, {"format", ".3f"}},
                              {{"field", "low"}, {"format", ".3f"}},
                              {{"field", "high"}, {"format", ".3f"}},
                              {{"field", "floor"}, {"format", ".3f"}, {"title", "noise floor (95th pct)"}},
                              {{"field", "n"}}});
  Chart chart;
  chart.id = "chart-bias-per-prompt";
  chart.section = "metrics";
  chart.title = "Normalized Shen bias per prompt";
  chart.caption =
      "Dot: normalized Shen bias (0 = every group equally often, 1 = one group only) with its bootstrap "
      "95% interval; grey tick: the 95th percentile a perfectly fair generator would still reach with "
      "the same number of faces (the sampling-noise floor).";
  chart.spec = {
      {"$schema", kSchema},
      {"data", {{"values", values}}},
      {"facet",
       {{"column",
         {{"field", "attribute"},
          {"type", "nominal"},
          {"sort", {"gender", "race", "gender_race"}},
          {"title", nullptr}}}}},
      {"spec",
       {{"width", 230},
        {"height", {{"step", static_cast<int>(5 * result.runs.size() + 6)}}},
        {"encoding", shared},
        {"layer",
         Json::array(
             {{{"mark", {{"type", "rule"}}},
               {"encoding",
                {{"x",
                  {{"field", "low"},
                   {"type", "quantitative"},
                   {"scale", {{"domain", {0, 1}}}},
                   {"title", "normalized Shen bias"}}},
                 {"x2", {{"field", "high"}}}}}},
              {{"mark", {{"type", "tick"}, {"color", "#888"}, {"thickness", 2}, {"size", 6}}},
               {"encoding", {{"x", {{"field", "floor"}, {"type", "quantitative"}}}, {"color", {{"value", "#888"}}}}}},
              {{"mark", {{"type", "point"}, {"filled", true}, {"size", 28}}},
               {"encoding", {{"x", {{"field", "value"}, {"type", "quantitative"}}}, {"tooltip", tooltip}}}}})}}}};
  return chart;
}

Chart average_chart(const audit::AuditResult& result) {
  Json values = Json::array();
  for (const auto& run : result.runs) {
    for (Attribute a : audit::scored_attributes()) {
      const audit::AttributeMetrics& am = run.metrics.at(a);
      const int m = metric_position(am, audit::Metric::shen_bias_normalized);
      const audit::MetricEstimate& e = am.average[m];
      if (!e.defined()) continue;
      values.push_back({{"attribute", audit::attribute_name(a)},
                        {"run", run.name},
                        {"value", e.value},
                        {"low", json_number(e.ci.low)},
                        {"high", json_number(e.ci.high)},
                        {"floor", json_number(e.floor_q95)}});
    }
  }
  Json x = {{"field", "run"},
            {"type", "nominal"},
            {"sort", names_of_runs(result)},
            {"title", nullptr},
            {"axis", {{"labelAngle", -40}}}};
  Chart chart;
  chart.id = "chart-bias-average";
  chart.section = "headline";
  chart.title = "Average normalized Shen bias over prompts";
  chart.caption =
      "Bars: mean over the run's prompts; lines: bootstrap 95% interval; grey ticks: noise floor (95th "
      "percentile for a fair generator at the same sample sizes).";
  chart.spec = {
      {"$schema", kSchema},
      {"data", {{"values", values}}},
      {"facet",
       {{"column",
         {{"field", "attribute"},
          {"type", "nominal"},
          {"sort", {"gender", "race", "gender_race"}},
          {"title", nullptr}}}}},
      {"spec",
       {{"width", {{"step", 26}}},
        {"height", 200},
        {"encoding", {{"x", x}}},
        {"layer",
         Json::array(
             {{{"mark", {{"type", "bar"}}},
               {"encoding",
                {{"y",
                  {{"field", "value"},
                   {"type", "quantitative"},
                   {"scale", {{"domain", {0, 1}}}},
                   {"title", "normalized Shen bias"}}},
                 {"color",
                  {{"field", "run"}, {"type", "nominal"}, {"sort", names_of_runs(result)}, {"legend", nullptr}}},
                 {"tooltip", Json::array({{{"field", "run"}},
                                          {{"field", "value"}, {"format", ".3f"}},
                                          {{"field", "low"}, {"format", ".3f"}},
                                          {{"field", "high"}, {"format", ".3f"}}})}}}},
              {{"mark", {{"type", "rule"}}},
               {"encoding", {{"y", {{"field", "low"}, {"type", "quantitative"}}}, {"y2", {{"field", "high"}}}}}},
              {{"mark", {{"type", "tick"}, {"color", "#555"}, {"thickness", 2}}},
               {"encoding", {{"y", {{"field", "floor"}, {"type", "quantitative"}}}}}}})}}}};
  return chart;
}

Chart corrected_chart(const audit::AuditResult& result, Attribute attribute) {
  Json values = Json::array();
  const audit::RunAudit& run = result.runs[0];
  const auto& per_prompt = run.corrected.at(attribute);
  const auto labels = result.taxonomy.group_labels(attribute);
  for (int p = 0; p < result.prompts.size(); ++p) {
    const audit::CorrectedShares& c = per_prompt[p];
    for (size_t k = 0; k < c.raw.size(); ++k) {
      values.push_back({{"prompt", result.prompts.ids[p]},
                        {"group", labels[k]},
                        {"kind", "raw"},
                        {"share", c.raw[k]},
                        {"low", c.raw_ci[k].low},
                        {"high", c.raw_ci[k].high}});
      values.push_back({{"prompt", result.prompts.ids[p]},
                        {"group", labels[k]},
                        {"kind", "corrected"},
                        {"share", c.corrected[k]},
                        {"low", c.corrected_ci[k].low},
                        {"high", c.corrected_ci[k].high}});
    }
  }
  const std::string name = audit::attribute_name(attribute);
  Json shared = {{"y", {{"field", "group"}, {"type", "nominal"}, {"sort", labels}, {"title", nullptr}}},
                 {"yOffset", {{"field", "kind"}, {"type", "nominal"}, {"sort", {"raw", "corrected"}}}},
                 {"color",
                  {{"field", "kind"},
                   {"type", "nominal"},
                   {"sort", {"raw", "corrected"}},
                   {"scale", {{"range", {"#9e9e9e", "#d62728"}}}}}}};
  Chart chart;
  chart.id = "chart-corrected-" + name;
  chart.section = "correction";
  chart.title = "Raw and corrected " + name + " shares (" + run.name + ")";
  chart.caption =
      "Raw: the classifier's labels (Wilson 95% interval). Corrected: the shares that, passed through the "
      "classifier's confusion matrix, best explain the raw ones (bootstrap 95% interval).";
  chart.spec = {{"$schema", kSchema},
                {"data", {{"values", values}}},
                {"facet", {{"row", row_facet(result)}}},
                {"spacing", 6},
                {"spec",
                 {{"width", 420},
                  {"height", {{"step", 14}}},
                  {"encoding", shared},
                  {"layer", Json::array({{{"mark", {{"type", "rule"}}},
                                          {"encoding",
                                           {{"x",
                                             {{"field", "low"},
                                              {"type", "quantitative"},
                                              {"scale", {{"domain", {0, 1}}}},
                                              {"axis", {{"format", "%"}}},
                                              {"title", "share"}}},
                                            {"x2", {{"field", "high"}}}}}},
                                         {{"mark", {{"type", "point"}, {"filled", true}}},
                                          {"encoding", {{"x", {{"field", "share"}, {"type", "quantitative"}}}}}}})}}}};
  return chart;
}

}  // namespace

std::vector<Chart> make_charts(const audit::AuditResult& result) {
  std::vector<Chart> charts;
  charts.push_back(average_chart(result));
  for (Attribute a : audit::described_attributes()) charts.push_back(composition_chart(result, a));
  charts.push_back(interval_chart(result, Attribute::gender));
  charts.push_back(interval_chart(result, Attribute::race));
  charts.push_back(bias_chart(result));
  if (result.confusion) {
    for (Attribute a : {Attribute::gender, Attribute::race}) {
      if (result.runs[0].corrected.count(a)) charts.push_back(corrected_chart(result, a));
    }
  }
  return charts;
}

}  // namespace fairdiff::report
