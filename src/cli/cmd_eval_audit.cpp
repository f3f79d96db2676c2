// fairdiff eval-audit: a known-truth audit. Labeled photos are drawn per prompt to a gender x race mix (by default
// the one the study measured for SD 2.1-base), analyzed and audited like generated images, and every reported
// share is compared with the photos' true labels: mean absolute error and 95% interval coverage, raw and
// classifier-error-corrected (study/eval_audit.h).
#include <cmath>
#include <cstdio>

#include "audit/builtin_dataset.h"
#include "audit/correction.h"
#include "audit/study_runs.h"
#include "audit/target.h"
#include "cli/args.h"
#include "cli/cmd_face_profile.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/strings.h"
#include "report/assets.h"
#include "report/html_report.h"
#include "study/eval_audit.h"

namespace fairdiff::cli {
namespace {

namespace fs = std::filesystem;

int run_eval_audit(const std::vector<std::string>& argv) {
  fs::path images, labels, prompts_path, target_path, confusion_path, out;
  std::string label_taxonomy;
  bool no_correction = false, no_report = false;
  study::EvalAuditOptions options;
  std::string profile = "default";
  ProfileOptions profile_options;
  OptionTable table;
  table.value("images", "DIR", "folder of labeled photos", images)
      .value("labels", "CSV", "labels: file,gender,race[,age] (default: DIR/labels.csv)", labels)
      .value("label-taxonomy", "NAME", "race labels' taxonomy: fairface7, deepface6, utkface5 (default: detected)",
             label_taxonomy)
      .value("prompts", "CSV", "prompt_id,prompt CSV (with --target; default: the study's 10 prompts)", prompts_path)
      .value("target", "CSV",
             "the mix to draw each prompt's photos to: prompt_id,attribute,group,share (audit target format;\n"
             "default: the gender x race mix the study measured for SD 2.1-base)",
             target_path)
      .value("images-per-prompt", "N", "photos per prompt, at most (fewer where a group's photos run out)",
             options.images_per_prompt, 1, 100000)
      .value("seed", "S", "seed of the draw", options.seed, 0, (1LL << 53))
      .value("confusion", "JSON", "confusion matrices to correct with (default: those the face profile ships)",
             confusion_path)
      .flag("no-correction", "score the raw labels only", no_correction)
      .value("calibrate-on", "F",
             "set aside this fraction of the photos (per gender x race group) to measure the classifier's confusion\n"
             "matrices (OUT/confusion.json, usable as report --confusion) and correct the audit of the rest with them",
             options.calibrate_fraction, 0.0, 0.9)
      .value("bootstrap", "N", "bootstrap resamples of the intervals", options.bootstrap.resamples, 0, 100000,
             "bootstrap.resamples")
      .flag("no-report", "skip the HTML report (the JSON and CSVs are still written)", no_report)
      .value("out", "DIR", "output folder: eval-audit.json, shares.csv, detections.csv, report/", out);
  bind_face_profile(table, profile, profile_options);
  Args args("eval-audit",
            "A known-truth audit: labeled photos drawn per prompt to a gender x race mix, analyzed and audited\n"
            "like generated images; prints, per attribute, the mean absolute error of the reported shares and how\n"
            "often their 95% intervals cover the truth, raw and corrected for the classifier's errors.",
            table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (images.empty()) throw UsageError("eval-audit: --images is required");
  require_directory(images, "--images");
  if (labels.empty()) labels = images / "labels.csv";
  require_file(labels, "--labels");
  if (out.empty()) throw UsageError("eval-audit: --out is required");
  if (prompts_path.empty() != target_path.empty())
    throw UsageError("eval-audit: --prompts and --target go together (neither: the study's prompts and mix)");
  if (no_correction && !confusion_path.empty())
    throw UsageError("eval-audit: --confusion and --no-correction contradict each other; give one");
  if (args.has("calibrate-on") && (no_correction || !confusion_path.empty()))
    throw UsageError(
        "eval-audit: --calibrate-on measures its own confusion matrices; drop --confusion/--no-correction");
  if (args.has("calibrate-on") && options.calibrate_fraction <= 0)
    throw UsageError("eval-audit: --calibrate-on " + std::to_string(options.calibrate_fraction) +
                     ": expected a fraction above 0");
  if (!confusion_path.empty()) require_file(confusion_path, "--confusion");
  std::optional<RaceTaxonomy> taxonomy_of_labels;
  if (!label_taxonomy.empty())
    taxonomy_of_labels = table.with_flag_names([&] { return parse_race_taxonomy(label_taxonomy); });
  table.with_flag_names([&] { validate_profile(profile, profile_options); });
  if (!no_report) report::find_node_modules();  // fail before the work when the charting library is missing

  const audit::Taxonomy taxonomy;
  PromptSet prompts;
  std::vector<std::vector<int64_t>> weights;
  if (target_path.empty()) {
    const audit::StudyData study = audit::find_study_data();
    prompts = read_prompts_csv(study.prompts);
    audit::DetectionOptions detection_options;
    audit::add_study_label_map(detection_options.label_map);
    const audit::Run base =
        audit::read_detections(study.runs.front().detections, study.runs.front().name, prompts, detection_options);
    weights = audit::measured_cell_counts(base, prompts, taxonomy);
  } else {
    require_file(prompts_path, "--prompts");
    require_file(target_path, "--target");
    prompts = read_prompts_csv(prompts_path);
    const audit::Target target = audit::read_target(target_path, taxonomy, prompts, /*allow_zero_shares=*/true);
    for (int p = 0; p < prompts.size(); ++p) {
      std::vector<int64_t> row;
      for (double share : target.shares(audit::Attribute::gender_race, p)) row.push_back(std::llround(share * 1e6));
      weights.push_back(row);
    }
  }
  std::optional<audit::ConfusionSet> confusion;
  if (!no_correction && options.calibrate_fraction == 0) {
    if (confusion_path.empty()) confusion_path = profile_confusion_file(profile, profile_options);
    if (confusion_path.empty()) {
      std::fprintf(stderr, "eval-audit: profile '%s' ships no confusion matrix; scoring the raw labels only\n",
                   profile.c_str());
    } else {
      confusion = audit::read_confusion_json(confusion_path, taxonomy);
    }
  }
  const LabeledSet set = read_labeled_set(images, labels, taxonomy_of_labels);
  auto analyzer = make_analyzer(profile, profile_options);
  audit::AuditResult audit_result;
  std::vector<audit::Run> runs;
  const study::EvalAuditResult result = study::run_eval_audit(
      *analyzer, set, prompts, weights, confusion ? &*confusion : nullptr, options, out, &audit_result, &runs);
  if (!no_report) {
    report::ReportOptions report_options;
    report_options.with_thumbnails = false;
    report_options.command_line = "fairdiff eval-audit " + join(argv, " ");
    report::write_report(audit_result, runs, out / "report", report_options);
  }
  int64_t total = 0;
  for (int64_t n : result.images) total += n;
  const std::string correction =
      result.confusion.empty()
          ? std::string()
          : ", corrected with " + result.confusion +
                (result.calibration_photos > 0
                     ? " (measured on " + std::to_string(result.calibration_photos) + " photos set aside)"
                     : "");
  std::printf("%s on %s: %lld photos over %d prompts, against their labels%s\n%s-> %s\n", profile.c_str(),
              labels.string().c_str(), static_cast<long long>(total), prompts.size(), correction.c_str(),
              result.summary().c_str(), (out / "eval-audit.json").string().c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("eval-audit",
                    "a known-truth audit of labeled photos: error and interval coverage of the shares an audit reports",
                    run_eval_audit);

}  // namespace fairdiff::cli
