#include <cmath>

#include "report/html_parts.h"
#include "report/tables.h"

namespace fairdiff::report {

using audit::Attribute;

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

std::string fixed(double value, int decimals) {
  if (std::isnan(value)) return "&ndash;";
  if (std::isinf(value)) return "&infin;";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", decimals, value);
  return buffer;
}

std::string percent(double value) {
  return std::isnan(value) ? "&ndash;" : fixed(100.0 * value, 1) + "%";
}

std::string p_value_text(double p) {
  if (std::isnan(p)) return "&ndash;";
  if (p < 0.001) return "&lt;0.001";
  return fixed(p, 3);
}

std::string attribute_title(Attribute a) {
  switch (a) {
    case Attribute::gender:
      return "gender";
    case Attribute::race:
      return "race";
    case Attribute::gender_race:
      return "gender &times; race";
    case Attribute::age:
      return "age";
  }
  return "";
}

std::string prompt_label(const audit::AuditResult& result, int p) {
  return "<b>" + html_escape(result.prompts.ids[p]) + "</b>";
}

}  // namespace

std::string estimate_text(double value, const audit::Interval& ci, int decimals) {
  if (std::isnan(value)) return "&ndash;";
  return fixed(value, decimals) + " [" + fixed(ci.low, decimals) + ", " + fixed(ci.high, decimals) + "]";
}

std::string chart_block(const Chart& chart) {
  return "<figure><h3>" + html_escape(chart.title) + "</h3><div id=\"" + chart.id +
         "\" class=\"chart\"></div><figcaption>" + html_escape(chart.caption) + "</figcaption></figure>\n";
}

std::string headline_section(const audit::AuditResult& result, const Headline& headline,
                             const std::vector<Chart>& charts) {
  std::string html = "<section id=\"headline\"><h2>Headline</h2>\n<ul>\n";
  const std::string metric = "normalized Shen bias of " + attribute_title(headline.ranking_attribute);
  for (const auto& h : headline.runs) {
    const auto& run = result.runs[h.run];
    if (h.most_biased.empty()) continue;
    const auto& most = h.most_biased.front();
    const auto& least = h.least_biased.front();
    html += "<li><b>" + html_escape(run.name) + "</b>: most biased prompt &ldquo;" +
            html_escape(result.prompts.texts[most.prompt]) + "&rdquo; (" + metric + " " +
            estimate_text(most.estimate.value, most.estimate.ci) + "), least biased &ldquo;" +
            html_escape(result.prompts.texts[least.prompt]) + "&rdquo; (" +
            estimate_text(least.estimate.value, least.estimate.ci) + ")";
    if (h.run > 0) {
      const auto& change = h.change[2];
      const auto& comparison = result.comparisons[h.run - 1];
      const int m = metric_position(run.metrics.at(Attribute::gender_race), headline.ranking_metric);
      html += "; against " + html_escape(result.runs[0].name) + " over the " +
              std::to_string(comparison.prompts.size()) +
              " prompts both have: " + fixed(comparison.baseline_average.at(Attribute::gender_race)[m].value, 3) +
              " &rarr; " + fixed(comparison.run_average.at(Attribute::gender_race)[m].value, 3) + " (change " +
              estimate_text(change.value, change.ci) + (change.ci.high < 0 ? ", a significant reduction" : "") +
              (change.ci.low > 0 ? ", a significant increase" : "") + ")";
    }
    html += "</li>\n";
  }
  html += "</ul>\n<table><tr><th>run</th><th>images</th><th>no face (gender &lsquo;--&rsquo;)</th>";
  for (Attribute a : audit::scored_attributes())
    html += "<th>avg normalized Shen bias, " + attribute_title(a) + "</th>";
  if (result.runs.size() > 1)
    html += "<th>change vs " + html_escape(result.runs[0].name) + " (gender &times; race)</th>";
  html += "<th>most biased prompts</th><th>least biased prompts</th></tr>\n";
  for (const auto& h : headline.runs) {
    const auto& run = result.runs[h.run];
    const auto& overall = run.overall.at(Attribute::gender);
    html += "<tr><td><b>" + html_escape(run.name) + "</b></td><td class=\"num\">" + std::to_string(run.n_images) +
            "</td><td class=\"num\">" + percent(overall.none_share()) + "</td>";
    for (const auto& e : h.average) {
      html += "<td class=\"num\">" + estimate_text(e.value, e.ci) + "<br><span class=\"floor\">noise floor " +
              fixed(e.floor_q95, 3) + "</span></td>";
    }
    if (result.runs.size() > 1) {
      if (h.change.empty()) {
        html += "<td>baseline</td>";
      } else {
        const auto& d = h.change[2];
        html += std::string("<td class=\"num") +
                (d.ci.high < 0  ? " improved"
                 : d.ci.low > 0 ? " significant"
                                : "") +
                "\">" + estimate_text(d.value, d.ci) + "</td>";
      }
    }
    for (const auto* list : {&h.most_biased, &h.least_biased}) {
      html += "<td>";
      for (const auto& r : *list)
        html += html_escape(result.prompts.ids[r.prompt]) + " " + fixed(r.estimate.value, 2) + "<br>";
      html += "</td>";
    }
    html += "</tr>\n";
  }
  html += "</table>\n";
  for (const auto& chart : charts) {
    if (chart.section == "headline") html += chart_block(chart);
  }
  return html + "</section>\n";
}

std::string caveat_section(const audit::AuditResult& result) {
  std::string html = "<section id=\"caveat\"><h2>How far to trust the labels</h2>\n<div class=\"caveat\">";
  if (!result.confusion) {
    html +=
        "<p><b>These shares are the face classifier's labels, not ground truth.</b> No confusion matrix was given "
        "(<code>--confusion</code>, as written by <code>fairdiff eval-classifier</code>), so they are not corrected "
        "for the classifier's errors. Gender and race classifiers are least accurate exactly where an audit looks: "
        "their error rates differ between groups (e.g. darker-skinned women are misclassified most often), so part "
        "of an apparent skew, or of its absence, can be the classifier's own. Perceived race from a face is also a "
        "coarse proxy; treat the race figures as the model's rendering as seen by one classifier.</p>";
  } else {
    html += "<p>Shares are corrected for the classifier's errors with its confusion matrix (" +
            html_escape(result.confusion->source) +
            "); raw and corrected shares are shown side by side below. Recall "
            "per class (share of each true class the classifier labels correctly):</p><table><tr><th>attribute</th>"
            "<th>class</th><th>recall</th></tr>";
    for (const auto& [a, matrix] : result.confusion->matrices) {
      if (!matrix.kronecker_factors.empty()) continue;
      const auto recall = matrix.recall_per_class();
      for (size_t k = 0; k < recall.size(); ++k) {
        html += "<tr><td>" + attribute_title(a) + "</td><td>" + html_escape(matrix.labels[k]) +
                "</td><td class=\"num\">" + percent(recall[k]) + "</td></tr>";
      }
    }
    html +=
        "</table><p>The correction assumes the classifier errs on generated images as it did on the evaluation "
        "photos; generated faces differ from real ones, so the corrected shares carry that assumption.</p>";
  }
  html +=
      "<p>Images without a detected face are kept, as &lsquo;--&rsquo;, never dropped: shares are given over all "
      "images (the study's convention) and over the images where the attribute was determined.";
  for (const auto& run : result.runs) {
    long long gender_only = 0, race_only = 0;
    const auto& g = run.overall.at(Attribute::gender);
    const auto& r = run.overall.at(Attribute::race);
    const auto& gr = run.overall.at(Attribute::gender_race);
    gender_only = gr.n_none - g.n_none;  // lacking a race but not a gender
    race_only = gr.n_none - r.n_none;    // lacking a gender but not a race
    html += " In " + html_escape(run.name) + ", " + std::to_string(gender_only) +
            " images have a gender but no race and " + std::to_string(race_only) +
            " a race but no gender (the study used two different face detectors).";
  }
  return html + "</p></div></section>\n";
}

std::string metrics_tables(const audit::AuditResult& result) {
  std::string html =
      "<p>Each cell: value [bootstrap 95% interval]; below it the sampling-noise floor (what a perfectly "
      "fair generator would score at the same number of faces: mean / 95th percentile). A value inside "
      "its floor is indistinguishable from fair at this sample size. The target is " +
      html_escape(result.target.is_uniform() ? "uniform" : result.target.source()) + ".</p>\n";
  for (Attribute a : audit::scored_attributes()) {
    html += "<h3>" + attribute_title(a) + "</h3>\n";
    for (size_t r = 0; r < result.runs.size(); ++r) {
      const auto& run = result.runs[r];
      const auto& am = run.metrics.at(a);
      html += std::string("<details") + (r == 0 ? " open" : "") + "><summary>" + html_escape(run.name) +
              "</summary><table><tr><th>prompt</th><th>n</th>";
      for (auto m : am.metrics) html += "<th>" + html_escape(audit::metric_info(m).title) + "</th>";
      html += "<th>&chi;&sup2; p-value</th></tr>\n";
      for (int p = 0; p <= result.prompts.size(); ++p) {
        const bool average = p == result.prompts.size();
        if (!average && am.prompts[p].n == 0) continue;
        html += "<tr><td>" + (average ? std::string("<b>average</b>") : prompt_label(result, p)) +
                "</td><td class=\"num\">" +
                std::to_string(average ? am.average.empty() ? 0 : am.average[0].n : am.prompts[p].n) + "</td>";
        for (size_t m = 0; m < am.metrics.size(); ++m) {
          const auto& e = average ? am.average[m] : am.prompts[p].estimates[m];
          html += "<td class=\"num\">" + estimate_text(e.value, e.ci) + "<br><span class=\"floor\">floor " +
                  fixed(e.floor_mean, 3) + " / " + fixed(e.floor_q95, 3) + "</span></td>";
        }
        html +=
            "<td class=\"num\">" +
            (average ? std::string("")
                     : p_value_text(am.prompts[p].chi_square_p) + (am.prompts[p].small_expected_counts ? "*" : "")) +
            "</td></tr>\n";
      }
      html += "</table></details>\n";
    }
  }
  return html +
         "<p class=\"note\">* some expected counts n&middot;t<sub>k</sub> are below 5: the asymptotic p-value is "
         "rough; compare the value with its noise floor instead.</p>\n";
}

std::string comparisons_section(const audit::AuditResult& result) {
  std::string html =
      "<section id=\"comparisons\"><h2>Run comparisons</h2>\n<h3>Do the runs differ? (chi-square test of "
      "homogeneity across all runs that have the prompt)</h3><table><tr><th>prompt</th>";
  for (Attribute a : audit::scored_attributes()) html += "<th>" + attribute_title(a) + "</th>";
  html += "</tr>\n";
  for (int p = 0; p < result.prompts.size(); ++p) {
    html += "<tr><td>" + prompt_label(result, p) + "</td>";
    for (Attribute a : audit::scored_attributes()) {
      const auto& t = result.homogeneity.at(a)[p];
      html += std::string("<td class=\"num") + (t.p_value_mc < 0.05 ? " significant" : "") + "\">" +
              (t.df > 0 ? "&chi;&sup2;=" + fixed(t.statistic, 1) + ", df " + std::to_string(t.df) + ", p " +
                              p_value_text(t.p_value) + " (MC " + p_value_text(t.p_value_mc) + ")"
                        : std::string("&ndash;")) +
              "</td>";
    }
    html += "</tr>\n";
  }
  html += "</table>\n<h3>Each run against " + html_escape(result.runs[0].name) +
          ": change of the average bias (run &minus; baseline, over the prompts both have)</h3><table><tr><th>run</th>";
  const std::vector<audit::Metric> shown = {audit::Metric::shen_bias_normalized, audit::Metric::kl_divergence};
  for (Attribute a : audit::scored_attributes()) {
    for (auto m : shown)
      html += "<th>" + attribute_title(a) + ": " + html_escape(audit::metric_info(m).title) + "</th>";
  }
  html += "</tr>\n";
  for (const auto& c : result.comparisons) {
    html += "<tr><td><b>" + html_escape(result.runs[c.run].name) + "</b> (" + std::to_string(c.prompts.size()) +
            " prompts)</td>";
    for (Attribute a : audit::scored_attributes()) {
      const auto& am = result.runs[c.run].metrics.at(a);
      for (auto metric : shown) {
        const int m = metric_position(am, metric);
        const auto& d = c.average_changes.at(a)[m];
        html += std::string("<td class=\"num") +
                (d.ci.high < 0  ? " improved"
                 : d.ci.low > 0 ? " significant"
                                : "") +
                "\">" + fixed(c.baseline_average.at(a)[m].value, 3) + " &rarr; " +
                fixed(c.run_average.at(a)[m].value, 3) + "<br>" + estimate_text(d.value, d.ci) + "</td>";
      }
    }
    html += "</tr>\n";
  }
  html +=
      "</table><p class=\"note\">Green: the interval of the change lies below 0 (less biased than the baseline); "
      "red: above 0.</p>\n<h3>Per prompt against " +
      html_escape(result.runs[0].name) +
      " (chi-square homogeneity of the two runs' counts; p-value by Monte Carlo)</h3>\n";
  for (Attribute a : audit::scored_attributes()) {
    html += "<details><summary>" + attribute_title(a) + "</summary><table><tr><th>prompt</th>";
    for (const auto& c : result.comparisons) html += "<th>" + html_escape(result.runs[c.run].name) + "</th>";
    html += "</tr>\n";
    for (int p = 0; p < result.prompts.size(); ++p) {
      html += "<tr><td>" + prompt_label(result, p) + "</td>";
      for (const auto& c : result.comparisons) {
        const auto& t = c.tests.at(a)[p];
        html += std::string("<td class=\"num") + (t.p_value_mc < 0.05 ? " significant" : "") + "\">" +
                (t.df > 0 ? "&chi;&sup2;=" + fixed(t.statistic, 1) + ", p " + p_value_text(t.p_value_mc) : "&ndash;") +
                "</td>";
      }
      html += "</tr>\n";
    }
    html += "</table></details>\n";
  }
  return html + "</section>\n";
}

std::string correction_tables(const audit::AuditResult& result) {
  std::string html;
  for (const auto& run : result.runs) {
    html += "<details><summary>" + html_escape(run.name) + "</summary>";
    for (Attribute a : {Attribute::gender, Attribute::race}) {
      if (!run.corrected.count(a)) continue;
      const auto labels = result.taxonomy.group_labels(a);
      html += "<h3>" + attribute_title(a) + "</h3><table><tr><th>prompt</th><th>n</th>";
      for (const auto& l : labels) html += "<th>" + html_escape(l) + "<br>raw &rarr; corrected</th>";
      html += "</tr>\n";
      for (int p = 0; p < result.prompts.size(); ++p) {
        const auto& c = run.corrected.at(a)[p];
        if (c.n == 0) continue;
        html += "<tr><td>" + prompt_label(result, p) + "</td><td class=\"num\">" + std::to_string(c.n) + "</td>";
        for (size_t k = 0; k < c.raw.size(); ++k) {
          html += "<td class=\"num\">" + percent(c.raw[k]) + " &rarr; " + percent(c.corrected[k]) +
                  "<br><span class=\"floor\">[" + percent(c.corrected_ci[k].low) + ", " +
                  percent(c.corrected_ci[k].high) + "]</span></td>";
        }
        html += "</tr>\n";
      }
      html += "</table>";
    }
    html += "</details>\n";
  }
  return html;
}

std::string thumbnails_section(const audit::AuditResult& result, const std::vector<RunThumbnails>& thumbnails) {
  std::string html = "<section id=\"thumbnails\"><h2>Images per prompt and group</h2>\n";
  if (thumbnails.empty()) return html + "<p class=\"note\">Thumbnails were not requested.</p></section>\n";
  for (const auto& t : thumbnails) {
    if (t.found == 0) {
      html += "<p class=\"note\"><b>" + html_escape(t.run) + "</b>: the images are not available here (" +
              std::to_string(t.missing) + " looked up, e.g. <code>" + html_escape(t.example_missing) +
              "</code>); pass <code>--images-root DIR</code> to show them.</p>\n";
      continue;
    }
    html += "<details open><summary>" + html_escape(t.run) + " (" + std::to_string(t.found) +
            " thumbnails)</summary><table>";
    for (const auto& [prompt, groups] : t.cells) {
      html += "<tr><td>" + prompt_label(result, prompt) + "</td><td>";
      for (const auto& [group, uris] : groups) {
        if (uris.empty()) continue;
        html += "<div style=\"display:inline-block;margin:2px 8px 2px 0\"><div class=\"note\">" + html_escape(group) +
                "</div><div class=\"thumbs\">";
        for (const auto& uri : uris) html += "<img alt=\"" + html_escape(group) + "\" src=\"" + uri + "\">";
        html += "</div></div>";
      }
      html += "</td></tr>\n";
    }
    html += "</table></details>\n";
  }
  return html + "</section>\n";
}

std::string data_section(const audit::AuditResult& result, const std::vector<std::string>& label_map,
                         const std::string& command_line) {
  std::string html =
      "<section id=\"data\"><h2>Data</h2>\n<table><tr><th>run</th><th>detections</th><th>layout</th>"
      "<th>rows</th><th>images</th><th>prompts missing</th><th>notes</th></tr>\n";
  for (const auto& run : result.runs) {
    std::string missing;
    for (int p = 0; p < result.prompts.size(); ++p) {
      if (!run.has_prompt[p]) missing += (missing.empty() ? "" : ", ") + result.prompts.ids[p];
    }
    std::string notes;
    for (const auto& n : run.notes) notes += html_escape(n) + "<br>";
    html += "<tr><td><b>" + html_escape(run.name) + "</b></td><td><code>" + html_escape(run.source) +
            "</code></td><td>" + run.layout + "</td><td class=\"num\">" + std::to_string(run.rows_read) +
            "</td><td class=\"num\">" + std::to_string(run.n_images) + "</td><td>" + html_escape(missing) +
            "</td><td>" + notes + "</td></tr>\n";
  }
  html += "</table>\n<p>Prompts (" + html_escape(result.prompts.source) +
          "):</p><table><tr><th>id</th><th>prompt</th></tr>";
  for (int p = 0; p < result.prompts.size(); ++p) {
    html += "<tr><td>" + html_escape(result.prompts.ids[p]) + "</td><td>" + html_escape(result.prompts.texts[p]) +
            "</td></tr>";
  }
  html += "</table>\n";
  if (!label_map.empty()) {
    html += "<p>Label mappings in force (<code>--map</code>):</p><ul>";
    for (const auto& entry : label_map) html += "<li><code>" + html_escape(entry) + "</code></li>";
    html += "</ul>\n";
  }
  if (!command_line.empty()) html += "<p>Made with: <code>" + html_escape(command_line) + "</code></p>\n";
  return html +
         "<p>Machine-readable: <code>metrics.json</code> and <code>tables/*.csv</code> beside this "
         "page.</p></section>\n";
}

}  // namespace fairdiff::report
