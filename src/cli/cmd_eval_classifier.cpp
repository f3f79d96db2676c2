// fairdiff eval-classifier: measures a face-analysis profile on labeled photos (detection rate, accuracy per
// attribute and per race x gender group, confusion matrices, images/s) and writes the JSON report.
#include <cstdio>

#include "cli/args.h"
#include "cli/cmd_face_profile.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/fs.h"
#include "core/json.h"
#include "faces/evaluation.h"

namespace fairdiff::cli {
namespace {

int run_eval_classifier(const std::vector<std::string>& argv) {
  std::filesystem::path images, labels, json_out;
  std::string label_taxonomy;
  EvaluationOptions options;
  std::string profile = "default";
  ProfileOptions profile_options;
  OptionTable table;
  table.value("images", "DIR", "folder of labeled photos", images)
      .value("labels", "CSV", "labels: file,gender,race[,age] (default: DIR/labels.csv)", labels)
      .value("json", "FILE", "where to write the report", json_out)
      .value("label-taxonomy", "NAME", "race labels' taxonomy: fairface7, deepface6, utkface5 (default: detected)",
             label_taxonomy)
      .value("limit", "N", "evaluate only the first N photos (0: all)", options.limit, 0, 100000000);
  bind_face_profile(table, profile, profile_options);
  Args args("eval-classifier", "measure a face-analysis profile on labeled photos", table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (images.empty()) throw UsageError("eval-classifier: --images is required");
  require_directory(images, "--images");
  if (labels.empty()) labels = images / "labels.csv";
  require_file(labels, "--labels");
  if (json_out.empty()) throw UsageError("eval-classifier: --json is required");
  std::optional<RaceTaxonomy> taxonomy;
  if (!label_taxonomy.empty()) taxonomy = parse_race_taxonomy(label_taxonomy);
  table.with_flag_names([&] { validate_profile(profile, profile_options); });
  LabeledSet set = read_labeled_set(images, labels, taxonomy);
  if (!json_out.parent_path().empty()) ensure_directory(json_out.parent_path(), "--json folder");

  auto analyzer = make_analyzer(profile, profile_options);
  const ClassifierEvaluation result = evaluate_classifier(*analyzer, set, options);
  write_json_file(json_out, result.to_json());
  std::printf("%s on %s: n=%lld detection %.3f gender %.3f race %.3f (%s) %.1f images/s -> %s\n", profile.c_str(),
              images.string().c_str(), result.n, result.detection_rate(), result.gender.accuracy(),
              result.race.accuracy(), race_taxonomy_name(result.race_taxonomy).c_str(), result.images_per_s(),
              json_out.string().c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("eval-classifier", "measure a face-analysis profile on labeled photos (JSON report)",
                    run_eval_classifier);

}  // namespace fairdiff::cli
