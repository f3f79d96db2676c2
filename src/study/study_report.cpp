#include "study/study_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "audit/audit_result.h"
#include "audit/correction.h"
#include "audit/detections.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/prompts.h"
#include "report/headline.h"
#include "report/html_parts.h"
#include "report/html_report.h"

namespace fairdiff::study {
namespace fs = std::filesystem;
namespace {

using report::html_escape;

std::string number(double value, int decimals = 3) {
  if (std::isnan(value)) return "&ndash;";
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

std::string with_interval(double value, double low, double high, int decimals = 3) {
  std::string text = number(value, decimals);
  if (!std::isnan(low) && !std::isnan(high)) text += " [" + number(low, decimals) + ", " + number(high, decimals) + "]";
  return text;
}

// "reduced" when the whole 95% interval is below 0, "increased" when above, else "no clear change".
std::string verdict(double low, double high) {
  if (std::isnan(low) || std::isnan(high)) return "&ndash;";
  if (high < 0) return "<b>reduced</b>";
  if (low > 0) return "increased";
  return "no clear change";
}

// The training loss as a small inline SVG line (step on x, loss on y).
std::string loss_curve_svg(const std::string& csv_text) {
  const CsvTable table = parse_csv(csv_text, "loss_curve.csv");
  const int step_column = table.require_column("step"), loss_column = table.require_column("loss");
  std::vector<std::pair<double, double>> points;
  for (const auto& row : table.rows)
    points.emplace_back(std::stod(row.fields[step_column]), std::stod(row.fields[loss_column]));
  if (points.size() < 2) return "";
  double x_max = 0, y_min = points[0].second, y_max = points[0].second;
  for (const auto& [x, y] : points) {
    x_max = std::max(x_max, x);
    y_min = std::min(y_min, y);
    y_max = std::max(y_max, y);
  }
  const double width = 240, height = 60, span = y_max > y_min ? y_max - y_min : 1.0;
  std::string polyline;
  for (const auto& [x, y] : points) {
    polyline +=
        number(x / std::max(1.0, x_max) * width, 1) + "," + number(height - (y - y_min) / span * height, 1) + " ";
  }
  return "<svg width=\"" + number(width, 0) + "\" height=\"" + number(height + 4, 0) +
         "\" role=\"img\" aria-label=\"training loss\"><polyline fill=\"none\" stroke=\"#3465a4\" stroke-width=\"1.5\" "
         "points=\"" +
         polyline + "\"/></svg><br><small>loss " + number(points.front().second, 4) + " &rarr; " +
         number(points.back().second, 4) + " over " + std::to_string(static_cast<long long>(x_max)) + " steps</small>";
}

struct RunFacts {
  std::string name;
  Json info;                      // model, lora, generation settings, face profile
  std::optional<ModelRow> model;  // fine-tuned runs
};

std::string grid_section(const audit::AuditResult& result, const std::vector<RunFacts>& facts, size_t position) {
  std::string html =
      "<section id=\"grid\"><h2>Mitigation grid</h2>\n<p>Average normalized Shen bias over gender &times; race "
      "(0 = every group equally often, 1 = one group only) of each fine-tuned model, and its change from the base "
      "model with a 95% bootstrap interval. A change whose whole interval is below 0 is a reduction the sampling "
      "noise cannot explain.</p>\n<table><thead><tr><th>run</th><th>method</th><th>lr_scheduler</th><th>class "
      "images</th><th>steps</th><th>final loss</th><th>bias [95% CI]</th><th>change vs base [95% CI]</th>"
      "<th>verdict</th></tr></thead><tbody>\n";
  const auto& base = result.runs[0].metrics.at(audit::Attribute::gender_race).average[position];
  html += "<tr><td>" + html_escape(result.runs[0].name) + " (base)</td><td colspan=\"5\"></td><td>" +
          with_interval(base.value, base.ci.low, base.ci.high) + "</td><td></td><td></td></tr>\n";
  for (const auto& c : result.comparisons) {
    const RunFacts& f = facts[static_cast<size_t>(c.run)];
    if (!f.model || !f.model->settings.contains("use_lora")) continue;  // training-free: in the ranking only
    const auto& avg =
        result.runs[static_cast<size_t>(c.run)].metrics.at(audit::Attribute::gender_race).average[position];
    const auto& change = c.average_changes.at(audit::Attribute::gender_race)[position];
    std::string method = "&ndash;", schedule = "&ndash;", classes = "&ndash;", steps = "&ndash;", loss = "&ndash;";
    if (f.model) {
      const Json& s = f.model->settings;
      method = s.value("use_lora", false) ? "LoRA" : "DreamBooth";
      schedule = html_escape(s.value("lr_scheduler", std::string()));
      classes = s.value("with_prior_preservation", false) ? std::to_string(s.value("num_class_images", 0)) : "none";
      steps = std::to_string(s.value("max_train_steps", 0));
      loss = number(f.model->final_loss, 4);
    }
    html += "<tr><td>" + html_escape(f.name) + "</td><td>" + method + "</td><td>" + schedule + "</td><td>" + classes +
            "</td><td>" + steps + "</td><td>" + loss + "</td><td>" + with_interval(avg.value, avg.ci.low, avg.ci.high) +
            "</td><td>" + with_interval(change.value, change.ci.low, change.ci.high) + "</td><td>" +
            verdict(change.ci.low, change.ci.high) + "</td></tr>\n";
  }
  return html + "</tbody></table></section>\n";
}

std::string targeted_section(const audit::AuditResult& result, const audit::Taxonomy& taxonomy,
                             const std::vector<std::map<std::string, std::string>>& plan) {
  std::string html =
      "<section id=\"targeted\"><h2>Targeted groups</h2>\n<p>The gender &times; race groups the plan chose to "
      "augment: their share of each prompt's images with a face (95% Wilson interval) in the base model, and in "
      "each fine-tuned model with the change from the base (95% Newcombe interval).</p>\n";
  if (plan.empty()) return html + "<p>The plan targeted no group.</p></section>\n";
  html += "<table><thead><tr><th>prompt</th><th>group</th><th>base share</th>";
  for (const auto& c : result.comparisons)
    html += "<th>" + html_escape(result.runs[static_cast<size_t>(c.run)].name) + "</th>";
  html += "</tr></thead><tbody>\n";
  for (const auto& row : plan) {
    const int p = result.prompts.find(row.at("prompt_id"));
    const int g = audit::gender_index(taxonomy, row.at("gender"));
    const int r = audit::race_index(taxonomy, row.at("race"));
    if (p < 0 || g < 0 || r < 0) continue;
    const int k = taxonomy.gender_race_index(g, r);
    const auto& base = result.runs[0].distributions.at(audit::Attribute::gender_race)[static_cast<size_t>(p)];
    const auto base_ci = base.wilson_of_determined(k);
    html += "<tr><td>" + html_escape(row.at("prompt_id")) + "</td><td>" +
            html_escape(row.at("gender") + " " + row.at("race")) + "</td><td>" +
            with_interval(base.share_of_determined(k), base_ci.low, base_ci.high) + "</td>";
    for (const auto& c : result.comparisons) {
      const auto& dist = result.runs[static_cast<size_t>(c.run)].distributions.at(
          audit::Attribute::gender_race)[static_cast<size_t>(p)];
      const auto& changes = c.share_changes.at(audit::Attribute::gender_race)[static_cast<size_t>(p)];
      std::string cell = number(dist.share_of_determined(k));
      if (static_cast<size_t>(k) < changes.size()) {
        const auto& d = changes[static_cast<size_t>(k)];
        cell += "<br><small>change " + with_interval(d.value, d.ci.low, d.ci.high) + "</small>";
      }
      html += "<td>" + cell + "</td>";
    }
    html += "</tr>\n";
  }
  return html + "</tbody></table></section>\n";
}

// What a run's method is called in the report: the fine-tuning method, the training-free method, or "base".
std::string method_name(const RunFacts& f) {
  if (f.model && f.model->settings.contains("use_lora"))
    return f.model->settings.value("use_lora", false) ? "LoRA" : "DreamBooth";
  if (f.info.contains("mitigation")) return f.info["mitigation"].value("method", std::string());
  if (f.model) return f.model->settings.value("method", std::string("edited model"));
  return "base";
}

// Seconds a run cost: its preparation (fine-tuning or edit) and its images.
double run_seconds(RunStore& store, const std::string& run) {
  double seconds = 0;
  for (const std::string& stage : {"finetune:" + run, "edit:" + run, "generate:" + run}) {
    if (auto record = store.stage(stage)) seconds += record->seconds;
  }
  return seconds;
}

// The share of a run's images in which a face was found and its gender read.
double face_share(const audit::RunAudit& run) {
  const auto& overall = run.overall.at(audit::Attribute::gender);
  return overall.n_images > 0 ? 1.0 - overall.none_share() : 0.0;
}

// The plan's targeted groups: their mean share (of the images with both labels) in `run`.
std::optional<double> targeted_share(const audit::RunAudit& run, const audit::AuditResult& result,
                                     const audit::Taxonomy& taxonomy,
                                     const std::vector<std::map<std::string, std::string>>& plan) {
  double total = 0;
  int n = 0;
  for (const auto& row : plan) {
    const int p = result.prompts.find(row.at("prompt_id"));
    const int g = audit::gender_index(taxonomy, row.at("gender"));
    const int r = audit::race_index(taxonomy, row.at("race"));
    if (p < 0 || g < 0 || r < 0) continue;
    const auto& dist = run.distributions.at(audit::Attribute::gender_race)[static_cast<size_t>(p)];
    if (dist.n_determined() == 0) continue;
    total += dist.share_of_determined(taxonomy.gender_race_index(g, r));
    ++n;
  }
  if (n == 0) return std::nullopt;
  return total / n;
}

std::string ranking_section(RunStore& store, const audit::AuditResult& result, const std::vector<RunFacts>& facts,
                            const audit::Taxonomy& taxonomy,
                            const std::vector<std::map<std::string, std::string>>& plan) {
  auto position = [&](audit::Attribute a) {
    return static_cast<size_t>(
        report::metric_position(result.runs[0].metrics.at(a), audit::Metric::shen_bias_normalized));
  };
  const audit::Attribute attributes[] = {audit::Attribute::gender, audit::Attribute::race,
                                         audit::Attribute::gender_race};
  std::vector<const audit::BaselineComparison*> order;
  for (const auto& c : result.comparisons) order.push_back(&c);
  const size_t gxr = position(audit::Attribute::gender_race);
  std::stable_sort(order.begin(), order.end(), [&](const auto* a, const auto* b) {
    return a->average_changes.at(audit::Attribute::gender_race)[gxr].value <
           b->average_changes.at(audit::Attribute::gender_race)[gxr].value;
  });
  std::string html =
      "<section id=\"ranking\"><h2>Mitigations ranked</h2>\n<p>Every method of the study against the same base "
      "audit, best first: the change of the average normalized Shen bias (0 = every group equally often) over "
      "gender, race and gender &times; race, with its 95% bootstrap interval (a change whose whole interval is "
      "below 0 is a reduction the sampling noise cannot explain); the mean share of the groups the plan targeted, "
      "in the base and with the method; the share of images in which a face was found and read (a method that "
      "removes faces removes bias trivially); and the cost, in seconds of this machine: training or editing plus "
      "generating the audit's images.</p>\n<table><thead><tr><th>rank</th><th>run</th><th>method</th>"
      "<th>gender change</th><th>race change</th><th>gender &times; race change</th><th>verdict</th>"
      "<th>targeted groups' share</th><th>faces</th><th>cost (s)</th></tr></thead><tbody>\n";
  const auto base_targeted = targeted_share(result.runs[0], result, taxonomy, plan);
  html += "<tr><td></td><td>" + html_escape(result.runs[0].name) + "</td><td>base</td><td colspan=\"4\"></td><td>" +
          (base_targeted ? number(*base_targeted) : "&ndash;") + "</td><td>" + number(face_share(result.runs[0]), 2) +
          "</td><td>" + number(run_seconds(store, result.runs[0].name), 1) + "</td></tr>\n";
  int rank = 0;
  for (const auto* c : order) {
    const auto& run = result.runs[static_cast<size_t>(c->run)];
    html += "<tr><td>" + std::to_string(++rank) + "</td><td>" + html_escape(run.name) + "</td><td>" +
            html_escape(method_name(facts[static_cast<size_t>(c->run)])) + "</td>";
    for (const auto a : attributes) {
      const auto& d = c->average_changes.at(a)[position(a)];
      html += "<td>" + with_interval(d.value, d.ci.low, d.ci.high) + "</td>";
    }
    const auto& d = c->average_changes.at(audit::Attribute::gender_race)[gxr];
    const auto targeted = targeted_share(run, result, taxonomy, plan);
    html += "<td>" + verdict(d.ci.low, d.ci.high) + "</td><td>" +
            (base_targeted && targeted ? number(*base_targeted) + " &rarr; " + number(*targeted) : "&ndash;") +
            "</td><td>" + number(face_share(run), 2) + "</td><td>" + number(run_seconds(store, run.name), 1) +
            "</td></tr>\n";
  }
  return html + "</tbody></table></section>\n";
}

std::string provenance_section(const std::vector<RunFacts>& facts) {
  std::string html =
      "<section id=\"provenance\"><h2>Provenance</h2>\n<p>What made each run: the model, the generation settings "
      "and seeds (image i of every prompt uses seed + i, so runs are compared under the same noise), the face "
      "profile, and for fine-tuned models their training settings and loss curve.</p>\n<table><thead><tr>"
      "<th>run</th><th>model</th><th>generation</th><th>face profile</th><th>fine-tuning or method</th></tr></thead>"
      "<tbody>\n";
  for (const auto& f : facts) {
    const Json g = f.info.value("generation", Json::object());
    std::string generation = "seed " + std::to_string(g.value("seed", 0ULL)) + ", " +
                             std::to_string(g.value("steps", 0)) + " steps " + g.value("scheduler", std::string()) +
                             ", guidance " + number(g.value("guidance", 0.0), 2) + ", " +
                             g.value("dtype", std::string()) + " on " + g.value("device", std::string());
    const Json profile = f.info.value("face_profile", Json::object());
    std::string face = profile.value("profile", std::string()) + " (" + profile.value("detector", std::string());
    for (const auto& name : profile.value("classifiers", std::vector<std::string>())) face += ", " + name;
    face += ")";
    std::string model = f.info.value("model", std::string());
    if (!f.info.value("lora", std::string()).empty()) model += " + LoRA " + f.info.value("lora", std::string());
    std::string tuning = "&ndash;";
    if (f.model && !f.model->settings.contains("use_lora")) {
      // An edited (not fine-tuned) model: its edit settings, no loss curve.
      const Json& s = f.model->settings;
      tuning = html_escape(
          s.value("method", std::string("edited model")) + " of " + s.value("attribute", std::string()) +
          ", preserve scale " + number(s.value("preserve_scale", 0.0), 3) + ", lambda " +
          number(s.value("lambda", 0.0), 3) + ", edit scale " + number(s.value("edit_scale", 0.0), 3) + ", step " +
          number(s.value("step", 0.0), 3) + (s.value("with_to_k", true) ? ", to_k and to_v" : ", to_v only"));
    } else if (f.model) {
      const Json& s = f.model->settings;
      tuning = html_escape(
          (s.value("use_lora", false) ? "LoRA rank " + std::to_string(s.value("lora_rank", 0)) : "full UNet") +
          ", lr " + number(s.value("learning_rate", 0.0), 8) + " " + s.value("lr_scheduler", std::string()) + ", " +
          std::to_string(s.value("max_train_steps", 0)) + " steps, batch " +
          std::to_string(s.value("train_batch_size", 0)) + ", seed " + std::to_string(s.value("seed", 0ULL)) +
          ", mixed precision " + s.value("mixed_precision", std::string()));
      if (s.value("with_prior_preservation", false)) {
        const size_t classes = s.contains("class_concepts") ? s["class_concepts"].size() : 1;
        tuning += ", prior preservation: " + std::to_string(classes) + " class(es) x " +
                  std::to_string(s.value("num_class_images", 0)) + " images";
      }
      tuning += "<br>" + loss_curve_svg(f.model->loss_curve_csv);
    } else if (f.info.contains("mitigation")) {
      tuning = html_escape(f.info["mitigation"].dump());
    }
    html += "<tr><td>" + html_escape(f.name) + "</td><td>" + html_escape(model) + "</td><td>" +
            html_escape(generation) + "</td><td>" + html_escape(face) + "</td><td>" + tuning + "</td></tr>\n";
  }
  return html + "</tbody></table></section>\n";
}

std::string paired_section(RunStore& store, const StudyReportInputs& in, const PromptSet& prompts,
                           const fs::path& out_dir) {
  if (in.paired_images <= 0) return "";
  std::string html =
      "<section id=\"paired\"><h2>Same seed, base beside each model</h2>\n<p>Image i of a prompt uses the same "
      "seed in every run, so each column shows what fine-tuning changed for the same starting noise. Click an "
      "image for full size.</p>\n";
  std::map<std::string, std::map<std::pair<std::string, int64_t>, std::string>> files;  // run -> (prompt, i) -> file
  for (const auto& run : in.runs)
    for (const auto& image : store.images(run)) files[run][{image.prompt_id, image.index}] = image.file;
  for (int p = 0; p < prompts.size(); ++p) {
    const std::string& id = prompts.ids[static_cast<size_t>(p)];
    html += "<h3>" + html_escape(prompts.texts[static_cast<size_t>(p)]) + "</h3>\n<table class=\"paired\"><tbody>\n";
    for (const auto& run : in.runs) {
      html += "<tr><th>" + html_escape(run) + "</th>";
      for (int i = 0; i < in.paired_images; ++i) {
        auto it = files[run].find({id, i});
        if (it == files[run].end()) {
          html += "<td></td>";
          continue;
        }
        const std::string href = fs::relative(in.study_dir / it->second, out_dir).generic_string();
        html += "<td><a href=\"" + html_escape(href) + "\"><img src=\"" + html_escape(href) +
                "\" width=\"128\" height=\"128\" loading=\"lazy\" alt=\"" +
                html_escape(run + " " + id + " " + std::to_string(i)) + "\"></a></td>";
      }
      html += "</tr>\n";
    }
    html += "</tbody></table>\n";
  }
  return html + "</section>\n";
}

}  // namespace

std::string format_interval(const std::vector<double>& v) {
  if (v.empty()) return "-";
  char text[96];
  if (v.size() >= 3 && !std::isnan(v[1]) && !std::isnan(v[2])) {
    std::snprintf(text, sizeof(text), "%.3f [%.3f, %.3f]", v[0], v[1], v[2]);
  } else {
    std::snprintf(text, sizeof(text), "%.3f", v[0]);
  }
  return text;
}

namespace {

// `path` relative to the study folder (with ".." where it lies outside), so that the report's numbers and
// provenance do not depend on where the study folder is.
std::string study_relative(const fs::path& path, const fs::path& study_dir) {
  const fs::path relative =
      fs::absolute(path).lexically_normal().lexically_relative(fs::absolute(study_dir).lexically_normal());
  return relative.empty() ? path.string() : relative.string();
}

}  // namespace

StudyReportResult write_study_report(RunStore& store, const StudyReportInputs& in, const fs::path& out_dir) {
  PromptSet prompts = read_prompts_csv(in.prompts);
  prompts.source = study_relative(in.prompts, in.study_dir);
  audit::DetectionOptions options;
  std::vector<audit::Run> runs;
  std::vector<RunFacts> facts;
  for (const auto& run : in.runs) {
    const fs::path detections = in.study_dir / "runs" / run / "detections.csv";
    runs.push_back(audit::read_detections(detections, run, prompts, options));
    runs.back().source = study_relative(detections, in.study_dir);
    facts.push_back({run, store.run_info(run), store.model(run)});
  }
  std::optional<audit::ConfusionSet> confusion;
  if (!in.confusion.empty()) {
    confusion = audit::read_confusion_json(in.confusion, options.taxonomy);
    confusion->source = study_relative(in.confusion, in.study_dir);
  }
  audit::AuditSettings settings;
  settings.bootstrap.resamples = in.bootstrap;
  settings.bootstrap.seed = in.bootstrap_seed;
  settings.homogeneity_resamples = std::max(in.bootstrap, 200);
  const audit::AuditResult result =
      audit::run_audit(prompts, runs, options.taxonomy, audit::Target(options.taxonomy, prompts.size()),
                       confusion ? &*confusion : nullptr, settings);
  const size_t position = static_cast<size_t>(report::metric_position(
      result.runs[0].metrics.at(audit::Attribute::gender_race), audit::Metric::shen_bias_normalized));

  report::ReportOptions report_options;
  report_options.command_line = in.command_line;
  if (in.runs.size() > 1) {
    report_options.study_sections_html = ranking_section(store, result, facts, options.taxonomy, store.plan()) +
                                         grid_section(result, facts, position) +
                                         targeted_section(result, options.taxonomy, store.plan()) +
                                         paired_section(store, in, prompts, out_dir) + provenance_section(facts);
    report_options.study_links = {{"ranking", "Mitigations ranked"},
                                  {"grid", "Mitigation grid"},
                                  {"targeted", "Targeted groups"},
                                  {"paired", "Same seed"},
                                  {"provenance", "Provenance"}};
  } else {
    report_options.study_sections_html = provenance_section(facts);
    report_options.study_links = {{"provenance", "Provenance"}};
  }
  const report::ReportFiles files = report::write_report(result, runs, out_dir, report_options);

  StudyReportResult out;
  out.html = files.html;
  for (size_t i = 0; i < result.runs.size(); ++i) {
    const auto& avg = result.runs[i].metrics.at(audit::Attribute::gender_race).average[position];
    out.metrics.push_back({result.runs[i].name, "shen_gender_race_normalized", avg.value, avg.ci.low, avg.ci.high});
  }
  for (size_t i = 0; i < result.runs.size(); ++i) {
    const double faces = face_share(result.runs[i]);
    out.metrics.push_back({result.runs[i].name, "face_share", faces, faces, faces});
  }
  for (const auto& c : result.comparisons) {
    const std::string& run = result.runs[static_cast<size_t>(c.run)].name;
    for (const auto& [attribute, key] : {std::pair{audit::Attribute::gender_race, "change_shen_gender_race_normalized"},
                                         std::pair{audit::Attribute::gender, "change_shen_gender_normalized"},
                                         std::pair{audit::Attribute::race, "change_shen_race_normalized"}}) {
      const size_t at = static_cast<size_t>(
          report::metric_position(result.runs[0].metrics.at(attribute), audit::Metric::shen_bias_normalized));
      const auto& d = c.average_changes.at(attribute)[at];
      out.metrics.push_back({run, key, d.value, d.ci.low, d.ci.high});
    }
  }
  return out;
}

}  // namespace fairdiff::study
