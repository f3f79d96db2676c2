// fairdiff builtin-data: the built-in model's training data: FairFace training photos captioned so that each of
// the study's prompts has the gender x race mix the study measured (see audit/builtin_dataset.h), resized and
// written as JPEGs, with the truth CSV and the recipe.
#include <cstdio>
#include <map>

#include "audit/builtin_dataset.h"
#include "audit/detections.h"
#include "cli/args.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/assets.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/json.h"
#include "core/progress.h"
#include "core/prompts.h"
#include "core/strings.h"
#include "faces/taxonomy.h"
#include "train/training_data.h"

namespace fairdiff::cli {
namespace fs = std::filesystem;
namespace {

// FairFace's labels (file,gender,race[,age]) as cells of the study's taxonomy: gender Male/Female, FairFace's
// 7 races mapped to DeepFace's 6 (east and southeast asian -> asian), as faces/taxonomy does everywhere.
std::vector<audit::LabeledPhoto> read_fairface_labels(const fs::path& path, const audit::Taxonomy& taxonomy) {
  require_file(path, "--labels CSV");
  const CsvTable table = read_csv(path);
  const int file_col = table.require_column("file");
  const int gender_col = table.require_column("gender");
  const int race_col = table.require_column("race");
  std::vector<audit::LabeledPhoto> photos;
  for (const CsvRow& row : table.rows) {
    const std::string where = path.string() + " line " + std::to_string(row.line);
    const std::string file = trim(row.fields[static_cast<size_t>(file_col)]);
    if (file.rfind("val/", 0) == 0 || file.find("/val/") != std::string::npos) {
      throw InputError(where + ": " + file + " is a FairFace validation photo; the built-in model trains on the " +
                       "training split only (validation photos measure the face classifiers)");
    }
    const std::string race7 = normalize_race(row.fields[static_cast<size_t>(race_col)]);
    const std::string race6 = map_race(race7, RaceTaxonomy::fairface7, RaceTaxonomy::deepface6);
    const std::string gender = normalize_gender(row.fields[static_cast<size_t>(gender_col)]);
    const int g = gender.empty() ? -2 : audit::gender_index(taxonomy, gender);
    const int r = race6.empty() ? -2 : audit::race_index(taxonomy, race6);
    if (g < 0 || r < 0) {
      throw InputError(where + ": expected a FairFace gender (Male/Female) and race (7 classes), got '" +
                       row.fields[static_cast<size_t>(gender_col)] + "', '" +
                       row.fields[static_cast<size_t>(race_col)] + "'");
    }
    photos.push_back({file, g, r});
  }
  if (photos.empty()) throw InputError("--labels " + path.string() + " has no rows");
  return photos;
}

// The photo, resized + center-cropped as the trainers do, as 8-bit RGB.
Image resized_photo(const fs::path& file, int64_t resolution) {
  torch::Tensor pixels = train::resize_and_center_crop(read_image(file), resolution, file.string());  // [3, R, R]
  torch::Tensor bytes =
      ((pixels + 1.0) * 127.5).round().clamp(0, 255).to(torch::kUInt8).permute({1, 2, 0}).contiguous();
  Image image;
  image.width = image.height = static_cast<int>(resolution);
  image.channels = 3;
  image.pixels.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
  return image;
}

int run_builtin_data(const std::vector<std::string>& argv) {
  fs::path labels, images_dir, out;
  // The study's files shipped in data/seed, found from the binary as every asset is (core/assets.h).
  const fs::path seed_dir = find_asset_dir("data/seed", "prompts_info.csv");
  fs::path study = seed_dir / "study_results/prompts_results.csv";
  fs::path prompts_path = seed_dir / "prompts_info.csv";
  audit::CaptionRecipe recipe;
  int64_t resolution = 64;
  int quality = 90;
  OptionTable table;
  table
      .value("labels", "CSV",
             "FairFace training labels: file,gender,race (e.g. ../shared/faces/fairface_train_labels.csv)", labels)
      .value("images", "DIR", "folder the labels' file names are relative to (omit to write the CSVs only)", images_dir)
      .value("study", "CSV", "measured detections", study)
      .value("prompts", "CSV", "prompt_id,prompt", prompts_path)
      .value("out", "DIR", "output folder (must not exist)", out)
      .value("seed", "S", "recipe seed", recipe.seed, 0, (1LL << 53))
      .value("rows-per-prompt", "N", "rows captioned with each prompt, in its measured mix", recipe.rows_per_prompt, 1,
             10000000)
      .value("group-rows", "N", "rows per prompt and gender x race cell whose caption names the group",
             recipe.group_rows_per_cell, 0, 10000000)
      .value("neutral-rows", "N", "rows captioned with --neutral-prompt, even over the cells", recipe.neutral_rows, 0,
             10000000)
      .value("neutral-prompt", "TEXT", "caption of the neutral rows", recipe.neutral_prompt)
      .value("photos-per-cell", "N", "distinct photos drawn per gender x race cell", recipe.max_photos_per_cell, 1,
             10000000)
      .value("resolution", "PX", "written image size", resolution, 8, 4096)
      .value("jpeg-quality", "Q", "JPEG quality of the written images", quality, 1, 100)
      .unbound({{"map", "COL:FROM=TO", "map a label of --study (as report --map; race:race=-- is the default)", true}});
  Args args("builtin-data",
            "Write the built-in model's training data: FairFace training photos (--labels, --images) with captions\n"
            "whose gender x race mix per prompt is the one measured in --study (faces only), captions naming each\n"
            "group in the planner's wording, and neutral captions. Writes OUT/train.csv (file,caption,...),\n"
            "OUT/truth.csv (the injected distribution), OUT/recipe.json and, with --images, OUT/images/*.jpg.",
            table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (labels.empty()) throw UsageError("builtin-data: --labels is required");
  if (out.empty()) throw UsageError("builtin-data: --out is required");
  if (trim(recipe.neutral_prompt).empty()) throw UsageError("--neutral-prompt must not be empty");
  if (fs::exists(out)) throw InputError("--out " + out.string() + " already exists; choose a new folder");
  if (!images_dir.empty()) require_directory(images_dir, "--images folder");

  audit::DetectionOptions options;
  for (const auto& entry : args.get_all("map")) options.label_map.add(entry);
  if (options.label_map.apply("race", "race") == "race") options.label_map.add("race:race=--");
  require_file(prompts_path, "--prompts CSV");
  require_file(study, "--study CSV");
  const PromptSet prompts = read_prompts_csv(prompts_path);
  const audit::Run run = audit::read_detections(study, "study", prompts, options);
  const auto counts = audit::measured_cell_counts(run, prompts, options.taxonomy);
  const auto photos = read_fairface_labels(labels, options.taxonomy);
  audit::BuiltinDataset dataset = audit::build_builtin_dataset(prompts, counts, photos, options.taxonomy, recipe);

  const fs::path staging = fs::path(out.string() + ".partial");
  fs::remove_all(staging);
  ensure_directory(staging, "output staging folder");
  if (!images_dir.empty()) {
    // Photos are written as images/<name of the FairFace file>; the rows point there.
    ensure_directory(staging / "images", "images folder");
    std::map<std::string, std::string> renamed;
    Progress progress("builtin-data: resizing photos", static_cast<long long>(dataset.photos.size()), 0, "photo");
    for (const std::string& file : dataset.photos) {
      const std::string name = "images/" + fs::path(file).filename().string();
      if (!renamed.emplace(file, name).second || fs::exists(staging / name)) {
        throw InputError("--labels " + labels.string() + ": two photos are named " +
                         fs::path(file).filename().string());
      }
      write_jpeg(staging / name, resized_photo(fs::path(images_dir) / file, resolution), quality);
      progress.advance();
    }
    progress.finish();
    for (auto& row : dataset.rows) row.file = renamed.at(row.file);
  }
  write_file_atomic(staging / "train.csv", audit::caption_rows_csv(dataset, options.taxonomy));
  write_file_atomic(staging / "truth.csv", audit::truth_csv(dataset, options.taxonomy));
  write_json_file(staging / "recipe.json",
                  Json{{"labels", labels.string()},
                       {"study", study.string()},
                       {"prompts", prompts_path.string()},
                       {"seed", recipe.seed},
                       {"rows_per_prompt", recipe.rows_per_prompt},
                       {"group_rows_per_cell", recipe.group_rows_per_cell},
                       {"neutral_rows", recipe.neutral_rows},
                       {"neutral_prompt", recipe.neutral_prompt},
                       {"photos_per_cell", recipe.max_photos_per_cell},
                       {"resolution", resolution},
                       {"jpeg_quality", quality},
                       {"rows", dataset.rows.size()},
                       {"photos", dataset.photos.size()},
                       {"race_mapping", "FairFace 7 -> DeepFace 6 (east/southeast asian -> asian)"},
                       {"study_faces_only", true}});
  fs::rename(staging, out);
  std::printf("wrote %s: %zu rows over %zu photos, truth for %d prompts\n", out.string().c_str(), dataset.rows.size(),
              dataset.photos.size(), prompts.size());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("builtin-data", "the built-in model's captioned FairFace training data and its injected truth",
                    run_builtin_data);

}  // namespace fairdiff::cli
