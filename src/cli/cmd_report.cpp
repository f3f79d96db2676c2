// fairdiff report: distributions, bias metrics with intervals, run comparisons and the HTML report from
// detection CSVs. With no --run it reports the study's own detections (data/seed).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "audit/audit_result.h"
#include "audit/correction.h"
#include "audit/detections.h"
#include "audit/study_runs.h"
#include "audit/target.h"
#include "cli/args.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/json.h"
#include "core/strings.h"
#include "faces/profiles.h"
#include "report/assets.h"
#include "report/headline.h"
#include "report/html_report.h"
#include "report/tables.h"

namespace fairdiff::cli {

namespace {

namespace fs = std::filesystem;

// The confusion matrices to correct with when none was given: those of the profile that labelled every run, as
// `analyze` recorded it beside the run's detections (faces/profiles.h, analysis.json). Empty, with the reason in
// `why`, when a run does not say, the runs were labelled by different profiles, or the profile ships none.
fs::path recorded_confusion(const std::vector<std::pair<std::string, std::string>>& runs, std::string& why) {
  std::string profile;
  fs::path confusion;
  for (const auto& [name, csv] : runs) {
    const fs::path info_file = fs::path(csv).parent_path() / kAnalysisInfoFile;
    if (!fs::is_regular_file(info_file)) {
      why = "run '" + name + "' does not say which face profile labelled it (no " + info_file.string() + ")";
      return {};
    }
    Json info;
    try {
      info = read_json_file(info_file);
    } catch (const InputError& e) {
      why = e.what();
      return {};
    }
    const std::string run_profile = info.value("profile", std::string());
    const fs::path run_confusion = info.value("confusion", std::string());
    if (!profile.empty() && (run_profile != profile || run_confusion != confusion)) {
      why = "the runs were labelled by different face profiles ('" + profile + "', '" + run_profile + "')";
      return {};
    }
    profile = run_profile;
    confusion = run_confusion;
  }
  if (confusion.empty()) {
    why = "face profile '" + profile + "' ships no confusion matrix";
    return {};
  }
  if (!fs::is_regular_file(confusion)) {
    why = "face profile '" + profile + "''s confusion matrix " + confusion.string() + " is gone";
    return {};
  }
  return confusion;
}

int run_report(const std::vector<std::string>& argv) {
  audit::AuditSettings settings;
  report::ReportOptions report_options;
  fs::path prompts_arg, target_path, confusion_path, out_dir = "out/study-report";
  std::string races;
  bool no_thumbnails = false, no_correction = false;
  OptionTable table;
  table.value("prompts", "CSV", "prompt_id,prompt CSV (default with no --run: data/seed/prompts_info.csv)", prompts_arg)
      .unbound({{"run", "NAME=CSV", "a run's detections; the first run is the baseline of comparisons", true}})
      .value("target", "CSV", "target shares: attribute,group,share[,prompt_id] (default uniform)", target_path)
      .value("confusion", "JSON",
             "classifier confusion matrices for error correction ({labels, confusion} or per attribute); default:\n"
             "those of the face profile that labelled every run (analysis.json beside its detections)",
             confusion_path)
      .flag("no-correction", "report the classifier's labels as they are, without error correction", no_correction)
      .unbound({{"map", "COL:FROM=TO",
                 "map an input label or prompt (e.g. race:race=--, prompt:delivery_driver=delivery)", true}})
      .value("races", "LIST",
             "race taxonomy, comma-separated (default: asian,indian,white,black,middle eastern,latino hispanic)", races)
      .value("bootstrap", "N", "bootstrap and noise-floor resamples (0 = no intervals)", settings.bootstrap.resamples,
             0, 100000, "bootstrap.resamples")
      .value("seed", "N", "random seed of the bootstraps", settings.bootstrap.seed, 0, 1LL << 62, "bootstrap.seed")
      .unbound({{"images-root", "[NAME=]DIR",
                 "where the images named in the detections are, for thumbnails: DIR for every run (a run's own\n"
                 "sub-folder DIR/NAME when there is one), NAME=DIR for one run; repeatable",
                 true}})
      .value("thumbnails-per-group", "N", "thumbnails per prompt and group", report_options.thumbnails.per_group, 1, 50,
             "thumbnails.per_group")
      .flag("no-thumbnails", "leave the image grid out", no_thumbnails)
      .value("out", "DIR", "output directory", out_dir);
  Args args("report",
            "Distributions with Wilson intervals, bias metrics with bootstrap intervals and noise floors, run\n"
            "comparisons and a self-contained HTML report from detection CSVs (the study's layout\n"
            "prompt,path,gender,age,race or fairdiff's per-face CSV). With no --run: the study's detections\n"
            "(SD 2.1-base and six DreamBooth models) from data/seed.",
            table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  const auto started = std::chrono::steady_clock::now();
  audit::DetectionOptions detection_options;
  table.with_flag_names([&] {
    if (!races.empty()) detection_options.taxonomy.races = audit::parse_race_list(races);
    for (const auto& entry : args.get_all("map")) detection_options.label_map.add(entry);
  });
  settings.homogeneity_resamples = std::max(settings.bootstrap.resamples, 200);
  report_options.with_thumbnails = !no_thumbnails;
  for (const std::string& text : args.get_all("images-root")) {
    // NAME=DIR names one run; a bare DIR (which may itself hold '=' only when it exists as given) serves all.
    const size_t eq = text.find('=');
    const bool named = eq != std::string::npos && eq > 0 && !fs::is_directory(text);
    const fs::path dir = named ? fs::path(text.substr(eq + 1)) : fs::path(text);
    if (!fs::is_directory(dir)) {
      throw UsageError("report: --images-root " + text + ": " + dir.string() +
                       " is not a directory (expected DIR or NAME=DIR)");
    }
    if (named) {
      const std::string name = text.substr(0, eq);
      if (!report_options.thumbnails.run_images_roots.emplace(name, dir).second)
        throw UsageError("report: --images-root gives run '" + name + "' twice");
    } else {
      if (!report_options.thumbnails.images_root.empty())
        throw UsageError("report: --images-root DIR is given twice (use NAME=DIR for a run's own folder)");
      report_options.thumbnails.images_root = dir;
    }
  }

  std::vector<std::pair<std::string, std::string>> run_args;
  for (const auto& text : args.get_all("run")) {
    run_args.push_back(table.with_flag_names([&] { return audit::parse_run_argument(text); }));
  }
  for (size_t i = 0; i < run_args.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (run_args[i].first == run_args[j].first)
        throw UsageError("report: run name '" + run_args[i].first + "' is used twice");
    }
  }
  fs::path prompts_path;
  if (run_args.empty()) {
    audit::StudyData study;
    try {
      study = audit::find_study_data();
    } catch (const InputError& e) {
      throw InputError(std::string("no --run given and ") + e.what() +
                       "; pass --prompts CSV and --run NAME=DETECTIONS.csv");
    }
    prompts_path = prompts_arg.empty() ? study.prompts : prompts_arg;
    for (const auto& run : study.runs) run_args.emplace_back(run.name, run.detections.string());
    audit::add_study_label_map(detection_options.label_map);
    std::fprintf(stderr, "report: no --run given: the study's detections from %s\n", study.dir.string().c_str());
  } else {
    if (prompts_arg.empty()) throw UsageError("report: --prompts is required with --run (a prompt_id,prompt CSV)");
    prompts_path = prompts_arg;
  }
  for (const auto& [name, dir] : report_options.thumbnails.run_images_roots) {
    const bool known = std::any_of(run_args.begin(), run_args.end(), [&](const auto& r) { return r.first == name; });
    if (!known) throw UsageError("report: --images-root " + name + "=" + dir.string() + " names no run");
  }
  for (const auto& [name, path] : run_args) {
    if (!fs::is_regular_file(path)) {
      throw InputError("report: detections of run '" + name + "' " + path + " do not exist (expected a CSV file)");
    }
  }
  if (!target_path.empty() && !fs::is_regular_file(target_path)) {
    throw InputError("report: --target " + target_path.string() + " does not exist (expected a CSV file)");
  }
  if (no_correction && !confusion_path.empty())
    throw UsageError("report: --confusion and --no-correction contradict each other; give one");
  if (!no_correction && confusion_path.empty() && !args.get_all("run").empty()) {
    std::string why;
    confusion_path = recorded_confusion(run_args, why);
    if (confusion_path.empty()) {
      std::fprintf(stderr, "report: shares are not corrected for the classifier's errors: %s (pass --confusion JSON)\n",
                   why.c_str());
    } else {
      std::fprintf(stderr,
                   "report: correcting the classifier's errors with its profile's confusion matrices %s "
                   "(--no-correction turns this off)\n",
                   confusion_path.string().c_str());
    }
  }
  if (!confusion_path.empty() && !fs::is_regular_file(confusion_path)) {
    throw InputError("report: --confusion " + confusion_path.string() + " does not exist (expected a JSON file)");
  }
  report::find_node_modules();  // fail early, before the work, when the charting library is missing

  const PromptSet prompts = read_prompts_csv(prompts_path);
  std::vector<audit::Run> runs;
  for (const auto& [name, path] : run_args)
    runs.push_back(audit::read_detections(path, name, prompts, detection_options));
  audit::Target target(detection_options.taxonomy, prompts.size());
  if (!target_path.empty()) target = audit::read_target(target_path, detection_options.taxonomy, prompts);
  std::optional<audit::ConfusionSet> confusion;
  if (!confusion_path.empty()) confusion = audit::read_confusion_json(confusion_path, detection_options.taxonomy);

  audit::AuditResult result =
      audit::run_audit(prompts, runs, detection_options.taxonomy, target, confusion ? &*confusion : nullptr, settings);
  report_options.label_map = detection_options.label_map.describe();
  report_options.command_line = "fairdiff report " + join(argv, " ");
  report::ReportFiles files = report::write_report(result, runs, out_dir, report_options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  for (const auto& run : result.runs) {
    const auto& am = run.metrics.at(audit::Attribute::gender_race);
    const auto& average = am.average[report::metric_position(am, audit::Metric::shen_bias_normalized)];
    std::string text = "-";
    if (average.defined()) {
      text = report::format_number(average.value, 3);
      if (!std::isnan(average.ci.low)) {  // there were bootstrap resamples
        text +=
            " [" + report::format_number(average.ci.low, 3) + ", " + report::format_number(average.ci.high, 3) + "]";
      }
    }
    std::printf("%-14s %5lld images  avg normalized Shen bias (gender x race) %s\n", run.name.c_str(), run.n_images,
                text.c_str());
  }
  std::printf("wrote %s (%d charts, %d thumbnails), %s and %zu tables in %s in %.1f s\n", files.html.string().c_str(),
              files.charts, files.thumbnails, files.json.string().c_str(), files.tables.size(),
              (out_dir / "tables").string().c_str(), seconds);
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("report", "bias statistics, run comparisons and an HTML report from detection CSVs", run_report);

}  // namespace fairdiff::cli
