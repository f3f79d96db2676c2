// fairdiff report: distributions, bias metrics with intervals, run comparisons and the HTML report from
// detection CSVs. With no --run it reports the study's own detections (data/seed).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "audit/audit_result.h"
#include "audit/correction.h"
#include "audit/detections.h"
#include "audit/target.h"
#include "cli/args.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/strings.h"
#include "report/assets.h"
#include "report/headline.h"
#include "report/html_report.h"
#include "report/tables.h"

namespace fairdiff::cli {

namespace {

namespace fs = std::filesystem;

// The study's runs: SD 2.1-base and the six DreamBooth models (learning-rate schedule x class images).
const std::vector<std::pair<std::string, std::string>> kStudyRuns = {
    {"sd21", "seed/study_results/prompts_results.csv"},
    {"linear_300", "seed/study_results/dreambooth/dream_detect_linear.csv"},
    {"poly_300", "seed/study_results/dreambooth/dream_detect_poly.csv"},
    {"constant_300", "seed/study_results/dreambooth/dream_detect_constant.csv"},
    {"linear_20", "seed/study_results/dreambooth/dream_detect_linear_2.csv"},
    {"poly_20", "seed/study_results/dreambooth/dream_detect_poly_2.csv"},
    {"constant_20", "seed/study_results/dreambooth/dream_detect_constant_2.csv"},
};

// The study's data shipped with fairdiff: <project root>/data (found from the executable, then the current
// directory).
fs::path find_study_data_dir() {
  const fs::path root = report::find_project_root();
  std::error_code ec;
  if (!root.empty() && fs::is_directory(root / "data" / "seed", ec)) return root / "data";
  throw InputError("no --run given and the study's data (data/seed in the fairdiff source tree) was not found" +
                   std::string(root.empty() ? "" : " under " + root.string()) +
                   "; pass --prompts CSV and --run NAME=DETECTIONS.csv");
}

int run_report(const std::vector<std::string>& argv) {
  Args args("report",
            "Distributions with Wilson intervals, bias metrics with bootstrap intervals and noise floors, run\n"
            "comparisons and a self-contained HTML report from detection CSVs (the study's layout\n"
            "prompt,path,gender,age,race or fairdiff's per-face CSV). With no --run: the study's detections\n"
            "(SD 2.1-base and six DreamBooth models) from data/seed.",
            {{"prompts", "CSV", "prompt_id,prompt CSV (default with no --run: data/seed/prompts_info.csv)"},
             {"run", "NAME=CSV", "a run's detections; the first run is the baseline of comparisons", true},
             {"target", "CSV", "target shares: attribute,group,share[,prompt_id] (default uniform)"},
             {"confusion", "JSON",
              "classifier confusion matrices for error correction ({labels, confusion} or per attribute)"},
             {"map", "COL:FROM=TO", "map an input label or prompt (e.g. race:race=--, prompt:delivery_driver=delivery)",
              true},
             {"races", "LIST",
              "race taxonomy, comma-separated (default: asian,indian,white,black,middle eastern,latino hispanic)"},
             {"bootstrap", "N", "bootstrap and noise-floor resamples (default 1000; 0 = no intervals)"},
             {"seed", "N", "random seed of the bootstraps (default 20240917)"},
             {"images-root", "DIR", "where the images named in the detections are, for thumbnails"},
             {"thumbnails-per-group", "N", "thumbnails per prompt and group (default 4)"},
             {"no-thumbnails", "", "leave the image grid out"},
             {"out", "DIR", "output directory (default out/study-report)"}},
            argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  const auto started = std::chrono::steady_clock::now();
  audit::DetectionOptions detection_options;
  if (auto races = args.get("races")) detection_options.taxonomy.races = audit::parse_race_list(*races);
  for (const auto& entry : args.get_all("map")) detection_options.label_map.add(entry);
  audit::AuditSettings settings;
  settings.bootstrap.resamples = static_cast<int>(args.get_int("bootstrap", 1000, 0, 100000));
  settings.bootstrap.seed = static_cast<uint64_t>(args.get_int("seed", 20240917, 0, (1LL << 62)));
  settings.homogeneity_resamples = std::max(settings.bootstrap.resamples, 200);
  report::ReportOptions report_options;
  report_options.with_thumbnails = !args.flag("no-thumbnails");
  report_options.thumbnails.per_group = static_cast<int>(args.get_int("thumbnails-per-group", 4, 1, 50));
  if (auto root = args.get("images-root")) {
    report_options.thumbnails.images_root = *root;
    if (!fs::is_directory(*root)) throw UsageError("report: --images-root " + *root + " is not a directory");
  }
  const fs::path out_dir = args.get("out", "out/study-report");

  std::vector<std::pair<std::string, std::string>> run_args;
  for (const auto& text : args.get_all("run")) run_args.push_back(audit::parse_run_argument(text));
  for (size_t i = 0; i < run_args.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (run_args[i].first == run_args[j].first)
        throw UsageError("report: run name '" + run_args[i].first + "' is used twice");
    }
  }
  fs::path prompts_path;
  if (run_args.empty()) {
    const fs::path shared = find_study_data_dir();
    prompts_path = args.get("prompts", (shared / "seed" / "prompts_info.csv").string());
    for (const auto& [name, relative] : kStudyRuns) run_args.emplace_back(name, (shared / relative).string());
    // The study's CSVs hold the literal label "race" where DeepFace returned no race: read it as "--".
    if (detection_options.label_map.apply("race", "race") == "race") detection_options.label_map.add("race:race=--");
    std::fprintf(stderr, "report: no --run given: the study's detections from %s\n", shared.string().c_str());
  } else {
    prompts_path = args.require("prompts");
  }
  for (const auto& [name, path] : run_args) {
    if (!fs::is_regular_file(path)) {
      throw InputError("report: detections of run '" + name + "' " + path + " do not exist (expected a CSV file)");
    }
  }
  if (auto target = args.get("target"); target && !fs::is_regular_file(*target)) {
    throw InputError("report: --target " + *target + " does not exist (expected a CSV file)");
  }
  if (auto confusion = args.get("confusion"); confusion && !fs::is_regular_file(*confusion)) {
    throw InputError("report: --confusion " + *confusion + " does not exist (expected a JSON file)");
  }
  report::find_node_modules();  // fail early, before the work, when the charting library is missing

  const audit::PromptSet prompts = audit::read_prompts(prompts_path);
  std::vector<audit::Run> runs;
  for (const auto& [name, path] : run_args)
    runs.push_back(audit::read_detections(path, name, prompts, detection_options));
  audit::Target target(detection_options.taxonomy, prompts.size());
  if (auto path = args.get("target")) target = audit::read_target(*path, detection_options.taxonomy, prompts);
  std::optional<audit::ConfusionSet> confusion;
  if (auto path = args.get("confusion")) confusion = audit::read_confusion_json(*path, detection_options.taxonomy);

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
