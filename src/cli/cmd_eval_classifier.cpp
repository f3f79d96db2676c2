// fairdiff eval-classifier: measures a face-analysis profile on labeled photos (detection rate, accuracy per
// attribute and per race x gender group, confusion matrices, images/s) and writes the JSON report.
#include <cstdio>

#include "cli/args.h"
#include "cli/cmd_face_profile.h"
#include "cli/subcommand.h"
#include "core/fs.h"
#include "core/json.h"
#include "faces/evaluation.h"

namespace fairdiff::cli {
namespace {

int run_eval_classifier(const std::vector<std::string>& argv) {
  std::vector<OptionSpec> specs = {
      {"images", "DIR", "folder of labeled photos"},
      {"labels", "CSV", "labels: file,gender,race[,age] (default: DIR/labels.csv)"},
      {"json", "FILE", "where to write the report"},
      {"label-taxonomy", "NAME", "race labels' taxonomy: fairface7, deepface6, utkface5 (default: detected)"},
      {"limit", "N", "evaluate only the first N photos"},
  };
  for (auto& s : face_profile_options()) specs.push_back(s);
  Args args("eval-classifier", "measure a face-analysis profile on labeled photos", specs, argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  const std::filesystem::path images = args.require("images");
  require_directory(images, "--images");
  const std::filesystem::path labels = args.get("labels", (images / "labels.csv").string());
  require_file(labels, "--labels");
  const std::filesystem::path json_out = args.require("json");
  std::optional<RaceTaxonomy> taxonomy;
  if (args.has("label-taxonomy")) taxonomy = parse_race_taxonomy(args.require("label-taxonomy"));
  EvaluationOptions options;
  options.limit = args.get_int("limit", 0, 0, 100000000);
  const std::string profile = args.get("profile", "default");
  ProfileOptions profile_options = read_face_profile_options(args, profile);
  LabeledSet set = read_labeled_set(images, labels, taxonomy);
  if (!json_out.parent_path().empty()) ensure_directory(json_out.parent_path(), "--json folder");

  auto analyzer = make_analyzer(profile, profile_options);
  Json report = evaluate_classifier(*analyzer, set, options);
  write_json_file(json_out, report);
  std::printf("%s on %s: n=%lld detection %.3f gender %.3f race %.3f (%s) %.1f images/s -> %s\n", profile.c_str(),
              images.string().c_str(), report["n"].get<long long>(), report["detection_rate"].get<double>(),
              report["gender"]["accuracy"].get<double>(), report["race"]["accuracy"].get<double>(),
              report["race"]["taxonomy"].get<std::string>().c_str(), report["images_per_s"].get<double>(),
              json_out.string().c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("eval-classifier", "measure a face-analysis profile on labeled photos (JSON report)",
                    run_eval_classifier);

}  // namespace fairdiff::cli
