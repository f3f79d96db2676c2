#include "report/tables.h"

#include <cmath>
#include <cstdio>

#include "audit/planner.h"
#include "core/csv.h"
#include "core/fs.h"

namespace fairdiff::report {

using audit::Attribute;
using audit::AuditResult;
using audit::GroupDistribution;

std::string format_number(double value, int decimals) {
  if (std::isnan(value)) return "";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", decimals, value);
  std::string text = buffer;
  if (text.find('.') != std::string::npos) {
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
  }
  return text == "-0" ? "0" : text;
}

namespace {

// Group columns of the study layout: "gender", "race" or "gender,race"; the "--" row last.
std::vector<std::string> group_columns(Attribute attribute) {
  if (attribute == Attribute::gender_race) return {"gender", "race"};
  return {audit::attribute_name(attribute)};
}

std::vector<std::vector<std::string>> group_rows(const AuditResult& result, Attribute attribute) {
  std::vector<std::vector<std::string>> rows;
  if (attribute == Attribute::gender_race) {
    for (const auto& g : result.taxonomy.genders) {
      for (const auto& r : result.taxonomy.races) rows.push_back({g, r});
    }
    rows.push_back({audit::kNoFace, audit::kNoFace});
  } else {
    for (const auto& label :
         attribute == Attribute::age ? result.age_labels : result.taxonomy.group_labels(attribute)) {
      rows.push_back({label});
    }
    rows.push_back({audit::kNoFace});
  }
  return rows;
}

// Share of all images of group row `k` (the last row is "--").
double share_of_row(const GroupDistribution& d, int k) {
  return k < d.num_groups() ? d.share_of_all(k) : d.none_share();
}

std::string exact_share(long long count, long long n) {
  return n > 0 ? audit::format_share(static_cast<double>(count) / static_cast<double>(n)) : "";
}

}  // namespace

std::string prompt_table_csv(const AuditResult& result, Attribute attribute) {
  std::vector<std::string> header = {"prompt_id"};
  for (const auto& c : group_columns(attribute)) header.push_back(c);
  for (const auto& run : result.runs) header.push_back(run.name);
  std::string out = csv_line(header);
  const auto rows = group_rows(result, attribute);
  for (int p = 0; p < result.prompts.size(); ++p) {
    for (size_t k = 0; k < rows.size(); ++k) {
      std::vector<std::string> fields = {result.prompts.ids[p]};
      fields.insert(fields.end(), rows[k].begin(), rows[k].end());
      for (const auto& run : result.runs) {
        const GroupDistribution& d = run.distributions.at(attribute)[p];
        if (!run.has_prompt[p]) {
          fields.push_back("");
        } else {
          long long count = static_cast<int>(k) < d.num_groups() ? d.counts[k] : d.n_none;
          fields.push_back(exact_share(count, d.n_images));
        }
      }
      out += csv_line(fields);
    }
  }
  return out;
}

std::string summary_table_csv(const AuditResult& result, Attribute attribute) {
  std::vector<std::string> header = group_columns(attribute);
  for (const auto& run : result.runs) header.push_back(run.name);
  std::string out = csv_line(header);
  const auto rows = group_rows(result, attribute);
  for (size_t k = 0; k < rows.size(); ++k) {
    std::vector<std::string> fields = rows[k];
    for (const auto& run : result.runs) {
      double sum = 0;
      for (int p : result.common_prompts) sum += share_of_row(run.distributions.at(attribute)[p], static_cast<int>(k));
      fields.push_back(result.common_prompts.empty() ? "" : format_number(sum / result.common_prompts.size()));
    }
    out += csv_line(fields);
  }
  return out;
}

namespace {

std::string distributions_csv(const AuditResult& result) {
  std::string out =
      csv_line({"run", "prompt_id", "attribute", "group", "count", "n_images", "share_all", "share_all_low",
                "share_all_high", "n_determined", "share_determined", "share_determined_low", "share_determined_high"});
  for (const auto& run : result.runs) {
    for (Attribute attribute : audit::described_attributes()) {
      for (int p = -1; p < result.prompts.size(); ++p) {
        if (p >= 0 && !run.has_prompt[p]) continue;
        const GroupDistribution& d = p < 0 ? run.overall.at(attribute) : run.distributions.at(attribute)[p];
        const std::string prompt = p < 0 ? "all" : result.prompts.ids[p];
        for (int k = 0; k <= d.num_groups(); ++k) {
          const bool none = k == d.num_groups();
          const long long count = none ? d.n_none : d.counts[k];
          const audit::Interval all = none ? d.wilson_none() : d.wilson_of_all(k);
          std::vector<std::string> fields = {run.name,
                                             prompt,
                                             audit::attribute_name(attribute),
                                             none ? audit::kNoFace : d.labels[k],
                                             std::to_string(count),
                                             std::to_string(d.n_images),
                                             exact_share(count, d.n_images),
                                             format_number(all.low),
                                             format_number(all.high),
                                             std::to_string(d.n_determined())};
          if (none) {
            fields.insert(fields.end(), {"", "", ""});
          } else {
            const audit::Interval det = d.wilson_of_determined(k);
            fields.insert(fields.end(),
                          {exact_share(count, d.n_determined()), format_number(det.low), format_number(det.high)});
          }
          out += csv_line(fields);
        }
      }
    }
  }
  return out;
}

std::string metrics_csv(const AuditResult& result) {
  std::string out = csv_line({"run", "attribute", "prompt_id", "metric", "value", "ci_low", "ci_high", "floor_mean",
                              "floor_q95", "n", "chi_square_p"});
  for (const auto& run : result.runs) {
    for (Attribute attribute : audit::scored_attributes()) {
      const audit::AttributeMetrics& am = run.metrics.at(attribute);
      for (int p = 0; p <= result.prompts.size(); ++p) {
        const bool average = p == result.prompts.size();
        if (!average && am.prompts[p].n == 0) continue;
        for (size_t m = 0; m < am.metrics.size(); ++m) {
          const audit::MetricEstimate& e = average ? am.average[m] : am.prompts[p].estimates[m];
          if (!e.defined()) continue;
          std::string p_value = !average && am.metrics[m] == audit::Metric::chi_square
                                    ? format_number(am.prompts[p].chi_square_p, 8)
                                    : "";
          out += csv_line({run.name, audit::attribute_name(attribute), average ? "average" : result.prompts.ids[p],
                           audit::metric_info(am.metrics[m]).key, format_number(e.value), format_number(e.ci.low),
                           format_number(e.ci.high), format_number(e.floor_mean), format_number(e.floor_q95),
                           std::to_string(e.n), p_value});
        }
      }
    }
  }
  return out;
}

std::string comparisons_csv(const AuditResult& result) {
  std::string out = csv_line({"run", "baseline", "attribute", "prompt_id", "chi_square", "df", "p_value", "p_value_mc",
                              "small_expected_counts"});
  for (const auto& c : result.comparisons) {
    for (Attribute attribute : audit::scored_attributes()) {
      for (int p : c.prompts) {
        const audit::HomogeneityTest& t = c.tests.at(attribute)[p];
        out += csv_line({result.runs[c.run].name, result.runs[c.baseline].name, audit::attribute_name(attribute),
                         result.prompts.ids[p], format_number(t.statistic), std::to_string(t.df),
                         format_number(t.p_value, 8), format_number(t.p_value_mc, 8),
                         t.small_expected_counts ? "yes" : "no"});
      }
    }
  }
  return out;
}

std::string corrected_csv(const AuditResult& result) {
  std::string out = csv_line({"run", "attribute", "prompt_id", "group", "n_determined", "raw", "raw_low", "raw_high",
                              "corrected", "corrected_low", "corrected_high"});
  for (const auto& run : result.runs) {
    for (const auto& [attribute, per_prompt] : run.corrected) {
      for (int p = 0; p < result.prompts.size(); ++p) {
        const audit::CorrectedShares& c = per_prompt[p];
        if (c.n == 0) continue;
        const auto labels = result.taxonomy.group_labels(attribute);
        for (size_t k = 0; k < c.raw.size(); ++k) {
          out += csv_line({run.name, audit::attribute_name(attribute), result.prompts.ids[p], labels[k],
                           std::to_string(c.n), format_number(c.raw[k]), format_number(c.raw_ci[k].low),
                           format_number(c.raw_ci[k].high), format_number(c.corrected[k]),
                           format_number(c.corrected_ci[k].low), format_number(c.corrected_ci[k].high)});
        }
      }
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> write_tables(const AuditResult& result, const std::filesystem::path& tables_dir) {
  ensure_directory(tables_dir, "tables directory");
  std::vector<std::pair<std::string, std::string>> files;
  for (Attribute attribute : audit::scored_attributes()) {
    files.emplace_back("prompt_" + audit::attribute_name(attribute) + ".csv", prompt_table_csv(result, attribute));
  }
  for (Attribute attribute : audit::scored_attributes()) {
    files.emplace_back("summary_" + audit::attribute_name(attribute) + ".csv", summary_table_csv(result, attribute));
  }
  files.emplace_back("distributions.csv", distributions_csv(result));
  files.emplace_back("metrics.csv", metrics_csv(result));
  if (!result.comparisons.empty()) files.emplace_back("comparisons.csv", comparisons_csv(result));
  if (result.confusion) files.emplace_back("corrected.csv", corrected_csv(result));
  std::vector<std::string> names;
  for (const auto& [name, text] : files) {
    write_file_atomic(tables_dir / name, text);
    names.push_back(name);
  }
  return names;
}

}  // namespace fairdiff::report
