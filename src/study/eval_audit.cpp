#include "study/eval_audit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "audit/correction.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/fs.h"
#include "faces/folder_analysis.h"
#include "faces/taxonomy.h"

namespace fairdiff::study {

namespace fs = std::filesystem;
using audit::Attribute;

namespace {

const std::vector<Attribute>& compared_attributes() {
  static const std::vector<Attribute> attributes = {Attribute::gender, Attribute::race, Attribute::gender_race};
  return attributes;
}

// The true count of group k of `attribute` among a prompt's photos, from its gender x race cells.
int64_t true_count(const std::vector<int64_t>& cells, Attribute attribute, int k, const audit::Taxonomy& taxonomy) {
  const int genders = static_cast<int>(taxonomy.genders.size()), races = static_cast<int>(taxonomy.races.size());
  int64_t count = 0;
  switch (attribute) {
    case Attribute::gender:
      for (int r = 0; r < races; ++r) count += cells[static_cast<size_t>(taxonomy.gender_race_index(k, r))];
      return count;
    case Attribute::race:
      for (int g = 0; g < genders; ++g) count += cells[static_cast<size_t>(taxonomy.gender_race_index(g, k))];
      return count;
    default:
      return cells[static_cast<size_t>(k)];
  }
}

bool covers(const audit::Interval& ci, double value) {
  // A share computed from the same counts as a bound can differ from it in the last bits.
  return value >= ci.low - 1e-12 && value <= ci.high + 1e-12;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.6g", value);
  return text;
}

// The classifier's confusion matrices (gender, race; counts) measured on the photos `chosen` of `photos`, from
// their analyses, written to `file` and read back as the audit reads a --confusion file. InputError when a class
// has no photo with a face read (its errors are unknown).
audit::ConfusionSet measure_confusion(const std::vector<audit::LabeledPhoto>& photos, const std::vector<size_t>& chosen,
                                      const std::map<std::string, const ImageAnalysis*>& by_file,
                                      const audit::Taxonomy& taxonomy, const std::string& labels_source,
                                      const fs::path& file) {
  PromptSet one;
  one.source = "calibration";
  one.ids = {"calibration"};
  one.texts = {"calibration"};
  one.templates = {""};
  FolderAnalysis analysed;
  for (size_t i : chosen) {
    AnalyzedImage image;
    image.entry.prompt = "calibration";
    image.entry.path = std::to_string(i);
    image.analysis = *by_file.at(photos[i].file);
    analysed.images.push_back(std::move(image));
  }
  const audit::Run run =
      audit::parse_detections(study_csv(analysed), "calibration", "calibration", one, audit::DetectionOptions());
  const size_t genders = taxonomy.genders.size(), races = taxonomy.races.size();
  std::vector<std::vector<int64_t>> gender(genders, std::vector<int64_t>(genders, 0));
  std::vector<std::vector<int64_t>> race(races, std::vector<int64_t>(races, 0));
  for (size_t k = 0; k < chosen.size(); ++k) {
    const audit::LabeledPhoto& truth = photos[chosen[k]];
    const audit::ImageRecord& read = run.images[k];
    if (read.gender >= 0) ++gender[static_cast<size_t>(truth.gender)][static_cast<size_t>(read.gender)];
    if (read.race >= 0) ++race[static_cast<size_t>(truth.race)][static_cast<size_t>(read.race)];
  }
  auto check_rows = [&](const std::vector<std::vector<int64_t>>& counts, const std::vector<std::string>& labels) {
    for (size_t c = 0; c < counts.size(); ++c) {
      int64_t row = 0;
      for (int64_t v : counts[c]) row += v;
      if (row == 0) {
        throw InputError(labels_source + ": the calibration photos hold no " + labels[c] +
                         " face the classifier read, so its errors cannot be measured (more photos of that class, "
                         "or a larger --calibrate-on)");
      }
    }
  };
  check_rows(gender, taxonomy.genders);
  check_rows(race, taxonomy.races);
  const Json json{
      {"source", "fairdiff eval-audit: " + std::to_string(chosen.size()) + " calibration photos of " + labels_source},
      {"photos", chosen.size()},
      {"gender", {{"labels", taxonomy.genders}, {"confusion", gender}}},
      {"race", {{"labels", taxonomy.races}, {"confusion", race}}}};
  ensure_directory(file.parent_path(), "eval-audit output folder");
  write_file_atomic(file, json.dump(1) + "\n");
  return audit::read_confusion_json(file, taxonomy);
}

}  // namespace

EvalAuditResult score_against_truth(const audit::AuditResult& result,
                                    const std::vector<std::vector<int64_t>>& true_cells) {
  if (result.runs.empty()) throw std::invalid_argument("score_against_truth: the audit has no run");
  const audit::RunAudit& run = result.runs.front();
  const audit::Taxonomy& taxonomy = result.taxonomy;
  EvalAuditResult out;
  out.confusion = result.confusion ? result.confusion->source : "";
  const int prompts = result.prompts.size();
  if (static_cast<int>(true_cells.size()) != prompts)
    throw std::invalid_argument("score_against_truth: one row of true cells per prompt");
  for (int p = 0; p < prompts; ++p) {
    int64_t n = 0;
    for (int64_t c : true_cells[static_cast<size_t>(p)]) n += c;
    out.prompt_ids.push_back(result.prompts.ids[static_cast<size_t>(p)]);
    out.images.push_back(n);
    out.determined.push_back(run.distributions.at(Attribute::gender)[static_cast<size_t>(p)].n_determined());
  }
  for (Attribute attribute : compared_attributes()) {
    ShareErrors errors;
    errors.attribute = attribute;
    double sum_raw = 0, sum_corrected = 0;
    int64_t covered_raw = 0, covered_corrected = 0, corrected_shares = 0;
    const auto corrected_it = run.corrected.find(attribute);
    for (int p = 0; p < prompts; ++p) {
      const int64_t n = out.images[static_cast<size_t>(p)];
      const audit::GroupDistribution& distribution = run.distributions.at(attribute)[static_cast<size_t>(p)];
      if (n == 0 || distribution.n_determined() == 0) continue;  // nothing drawn, or no face read
      const audit::CorrectedShares* corrected = nullptr;
      if (corrected_it != run.corrected.end() && static_cast<int>(corrected_it->second.size()) > p &&
          !corrected_it->second[static_cast<size_t>(p)].corrected.empty())
        corrected = &corrected_it->second[static_cast<size_t>(p)];
      for (int k = 0; k < distribution.num_groups(); ++k) {
        TruthShare share;
        share.prompt_id = out.prompt_ids[static_cast<size_t>(p)];
        share.attribute = attribute;
        share.group = distribution.labels[static_cast<size_t>(k)];
        share.truth = static_cast<double>(true_count(true_cells[static_cast<size_t>(p)], attribute, k, taxonomy)) /
                      static_cast<double>(n);
        share.raw = distribution.share_of_determined(k);
        share.raw_ci = distribution.wilson_of_determined(k);
        const double error_raw = std::abs(share.raw - share.truth);
        sum_raw += error_raw;
        errors.max_raw = std::max(errors.max_raw, error_raw);
        covered_raw += covers(share.raw_ci, share.truth);
        if (corrected) {
          share.corrected = corrected->corrected[static_cast<size_t>(k)];
          share.corrected_ci = corrected->corrected_ci[static_cast<size_t>(k)];
          const double error = std::abs(*share.corrected - share.truth);
          sum_corrected += error;
          errors.max_corrected = std::max(errors.max_corrected.value_or(0.0), error);
          covered_corrected += covers(share.corrected_ci, share.truth);
          ++corrected_shares;
        }
        ++errors.shares;
        out.shares.push_back(share);
      }
    }
    if (errors.shares > 0) {
      errors.mae_raw = sum_raw / static_cast<double>(errors.shares);
      errors.coverage_raw = static_cast<double>(covered_raw) / static_cast<double>(errors.shares);
    }
    if (corrected_shares > 0) {
      errors.mae_corrected = sum_corrected / static_cast<double>(corrected_shares);
      errors.coverage_corrected = static_cast<double>(covered_corrected) / static_cast<double>(corrected_shares);
    }
    out.errors.push_back(errors);
  }
  return out;
}

Json EvalAuditResult::to_json() const {
  Json prompts = Json::array();
  for (size_t p = 0; p < prompt_ids.size(); ++p)
    prompts.push_back({{"prompt_id", prompt_ids[p]}, {"images", images[p]}, {"faces_read", determined[p]}});
  Json attributes = Json::object();
  for (const ShareErrors& e : errors) {
    Json j{{"shares", e.shares},
           {"mean_abs_error_raw", e.mae_raw},
           {"max_abs_error_raw", e.max_raw},
           {"coverage_raw", e.coverage_raw}};
    j["mean_abs_error_corrected"] = e.mae_corrected ? Json(*e.mae_corrected) : Json(nullptr);
    j["max_abs_error_corrected"] = e.max_corrected ? Json(*e.max_corrected) : Json(nullptr);
    j["coverage_corrected"] = e.coverage_corrected ? Json(*e.coverage_corrected) : Json(nullptr);
    attributes[audit::attribute_name(e.attribute)] = j;
  }
  int64_t total = 0;
  for (int64_t n : images) total += n;
  return Json{{"images", total},
              {"prompts", prompts},
              {"confusion", confusion.empty() ? Json(nullptr) : Json(confusion)},
              {"attributes", attributes}};
}

std::string EvalAuditResult::shares_csv() const {
  std::string out = csv_line({"prompt_id", "attribute", "group", "truth", "raw", "raw_low", "raw_high", "corrected",
                              "corrected_low", "corrected_high"});
  for (const TruthShare& s : shares) {
    out += csv_line({s.prompt_id, audit::attribute_name(s.attribute), s.group, number(s.truth), number(s.raw),
                     number(s.raw_ci.low), number(s.raw_ci.high), s.corrected ? number(*s.corrected) : "",
                     s.corrected ? number(s.corrected_ci.low) : "", s.corrected ? number(s.corrected_ci.high) : ""});
  }
  return out;
}

std::string EvalAuditResult::summary() const {
  auto percent = [](std::optional<double> v) {
    char text[16];
    if (!v) return std::string("-");
    std::snprintf(text, sizeof(text), "%.0f%%", 100 * *v);
    return std::string(text);
  };
  auto share = [](std::optional<double> v) {
    char text[16];
    if (!v) return std::string("-");
    std::snprintf(text, sizeof(text), "%.3f", *v);
    return std::string(text);
  };
  char line[256];
  std::string out;
  std::snprintf(line, sizeof(line), "%-12s %7s %10s %10s %14s %14s\n", "attribute", "shares", "MAE raw", "corrected",
                "coverage raw", "corrected");
  out += line;
  for (const ShareErrors& e : errors) {
    std::snprintf(line, sizeof(line), "%-12s %7lld %10s %10s %14s %14s\n", audit::attribute_name(e.attribute).c_str(),
                  static_cast<long long>(e.shares), share(e.mae_raw).c_str(), share(e.mae_corrected).c_str(),
                  percent(e.coverage_raw).c_str(), percent(e.coverage_corrected).c_str());
    out += line;
  }
  return out;
}

std::vector<audit::LabeledPhoto> photos_in_taxonomy(const LabeledSet& set, const audit::Taxonomy& taxonomy,
                                                    int64_t& left_out) {
  std::vector<audit::LabeledPhoto> photos;
  left_out = 0;
  for (const fairdiff::LabeledPhoto& photo : set.photos) {
    // UTKFace's "other" (Latino, Middle Eastern and the rest together) has no single class among the study's six.
    const bool no_counterpart = set.race_taxonomy == RaceTaxonomy::five && photo.race == "other";
    const std::string race = no_counterpart ? "" : map_race(photo.race, set.race_taxonomy, RaceTaxonomy::deepface6);
    const int g = audit::gender_index(taxonomy, photo.gender);
    const int r = race.empty() ? -1 : audit::race_index(taxonomy, race);
    if (g < 0 || r < 0) {
      ++left_out;
      continue;
    }
    photos.push_back({photo.file, g, r});
  }
  return photos;
}

EvalAuditResult run_eval_audit(FaceAnalyzer& analyzer, const LabeledSet& set, const PromptSet& prompts,
                               const std::vector<std::vector<int64_t>>& cell_weights,
                               const audit::ConfusionSet* confusion, const EvalAuditOptions& options,
                               const fs::path& out_dir, audit::AuditResult* audit_out,
                               std::vector<audit::Run>* runs_out) {
  const audit::Taxonomy taxonomy;
  int64_t left_out = 0;
  std::vector<audit::LabeledPhoto> photos = photos_in_taxonomy(set, taxonomy, left_out);
  if (left_out > 0) {
    std::fprintf(stderr, "eval-audit: %lld of %zu photos have a race the audit's 6 classes do not hold; left out\n",
                 static_cast<long long>(left_out), set.photos.size());
  }
  if (photos.empty()) throw InputError(set.labels_source + ": no photo has a gender and race the audit can compare");

  // A mix the photos cannot give fails here, before any work (the draw is repeated below without the photos that
  // turn out unreadable).
  audit::draw_known_truth(photos, cell_weights, options.images_per_prompt, options.seed, taxonomy, prompts);
  // Every photo a prompt could draw is analysed once, first: unreadable ones leave the pools before the draw.
  std::vector<ImageEntry> entries;
  for (const auto& photo : photos) entries.push_back({"", photo.file, set.images_dir / photo.file});
  const FolderAnalysis analysis = analyze_images(analyzer, entries, options.show_progress);
  std::map<std::string, const ImageAnalysis*> by_file;
  for (const auto& image : analysis.images) by_file[image.entry.path] = &image.analysis;
  for (const auto& skipped : analysis.skipped)
    std::fprintf(stderr, "eval-audit: skipped %s: %s\n", skipped.path.c_str(), skipped.reason.c_str());
  photos.erase(std::remove_if(photos.begin(), photos.end(),
                              [&](const audit::LabeledPhoto& photo) { return !by_file.count(photo.file); }),
               photos.end());

  std::optional<audit::ConfusionSet> calibrated;
  int64_t calibration_photos = 0;
  if (options.calibrate_fraction > 0) {
    std::vector<size_t> calibration, rest;
    audit::split_for_calibration(photos, options.calibrate_fraction, options.seed, taxonomy, calibration, rest);
    calibration_photos = static_cast<int64_t>(calibration.size());
    calibrated =
        measure_confusion(photos, calibration, by_file, taxonomy, set.labels_source, out_dir / "confusion.json");
    std::vector<audit::LabeledPhoto> pool;
    for (size_t i : rest) pool.push_back(photos[i]);
    photos = std::move(pool);
    confusion = &*calibrated;
  }
  const auto drawn =
      audit::draw_known_truth(photos, cell_weights, options.images_per_prompt, options.seed, taxonomy, prompts);
  const size_t cells = taxonomy.genders.size() * taxonomy.races.size();
  std::vector<std::vector<int64_t>> truth(drawn.size(), std::vector<int64_t>(cells, 0));
  FolderAnalysis audit_images;
  for (size_t p = 0; p < drawn.size(); ++p) {
    for (size_t k = 0; k < drawn[p].size(); ++k) {
      const audit::LabeledPhoto& photo = photos[drawn[p][k]];
      ++truth[p][static_cast<size_t>(taxonomy.gender_race_index(photo.gender, photo.race))];
      AnalyzedImage image;
      image.entry.prompt = prompts.ids[p];
      image.entry.path = prompts.ids[p] + "/" + std::to_string(k) + "_" + fs::path(photo.file).filename().string();
      image.entry.file = set.images_dir / photo.file;
      image.analysis = *by_file.at(photo.file);
      audit_images.images.push_back(std::move(image));
    }
  }
  ensure_directory(out_dir, "eval-audit output folder");
  const fs::path detections = out_dir / "detections.csv";
  write_file_atomic(detections, study_csv(audit_images));

  std::vector<audit::Run> runs = {audit::read_detections(detections, "photos", prompts, audit::DetectionOptions())};
  audit::AuditSettings settings;
  settings.bootstrap = options.bootstrap;
  settings.homogeneity_resamples = std::max(options.bootstrap.resamples, 200);
  audit::AuditResult result =
      audit::run_audit(prompts, runs, taxonomy, audit::Target(taxonomy, prompts.size()), confusion, settings);
  EvalAuditResult scored = score_against_truth(result, truth);
  scored.calibration_photos = calibration_photos;
  write_file_atomic(out_dir / "shares.csv", scored.shares_csv());
  Json json = scored.to_json();
  json["labels"] = set.labels_source;
  json["images_dir"] = set.images_dir.string();
  json["profile"] = analyzer.profile();
  json["seed"] = options.seed;
  json["photos_left_out"] = left_out;
  json["photos_unreadable"] = analysis.skipped.size();
  json["calibration_photos"] = calibration_photos;
  write_file_atomic(out_dir / "eval-audit.json", json.dump(1) + "\n");
  if (audit_out) *audit_out = std::move(result);
  if (runs_out) *runs_out = std::move(runs);
  return scored;
}

}  // namespace fairdiff::study
