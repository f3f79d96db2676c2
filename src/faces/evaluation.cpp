#include "faces/evaluation.h"

#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "core/csv.h"
#include "core/error.h"
#include "core/image.h"
#include "core/progress.h"
#include "core/strings.h"

namespace fairdiff {

namespace fs = std::filesystem;

LabeledSet read_labeled_set(const fs::path& images_dir, const fs::path& labels_csv,
                            std::optional<RaceTaxonomy> taxonomy) {
  CsvTable table = read_csv(labels_csv);
  const int file_col = table.require_column("file"), gender_col = table.require_column("gender");
  const int race_col = table.require_column("race"), age_col = table.column("age");
  LabeledSet set;
  set.images_dir = images_dir;
  set.labels_source = labels_csv.string();
  std::set<std::string> races;
  for (const auto& row : table.rows) {
    const std::string where = labels_csv.string() + ":" + std::to_string(row.line);
    LabeledPhoto photo;
    photo.line = row.line;
    photo.file = trim(row.fields[file_col]);
    if (photo.file.empty()) throw InputError(where + ": empty file name");
    photo.gender = normalize_gender(row.fields[gender_col]);
    if (photo.gender.empty()) {
      throw InputError(where + ": gender '" + row.fields[gender_col] + "' is not male or female");
    }
    photo.race = normalize_race(row.fields[race_col]);
    races.insert(photo.race);
    if (age_col >= 0 && !trim(row.fields[age_col]).empty()) {
      photo.age = normalize_age(row.fields[age_col]);
      if (photo.age.empty()) {
        throw InputError(where + ": age '" + row.fields[age_col] + "' is neither years nor a FairFace range " +
                         "(0-2, 3-9, 10-19, ..., 70+)");
      }
      double years = 0;
      if (parse_double(trim(row.fields[age_col]), years)) photo.age_years = years;
    }
    set.photos.push_back(photo);
  }
  if (set.photos.empty()) throw InputError(labels_csv.string() + ": no labeled photos");
  if (taxonomy) {
    set.race_taxonomy = *taxonomy;
  } else {
    auto detected = detect_race_taxonomy(std::vector<std::string>(races.begin(), races.end()));
    if (!detected) {
      throw InputError(labels_csv.string() + ": race labels {" +
                       join(std::vector<std::string>(races.begin(), races.end()), ", ") +
                       "} fit none of the taxonomies fairface7, deepface6, utkface5 (see docs/classifiers.md)");
    }
    set.race_taxonomy = *detected;
  }
  const auto& known = race_labels(set.race_taxonomy);
  for (const auto& p : set.photos) {
    if (std::find(known.begin(), known.end(), p.race) == known.end()) {
      throw InputError(labels_csv.string() + ":" + std::to_string(p.line) + ": race '" + p.race + "' is not in " +
                       race_taxonomy_name(set.race_taxonomy) + " {" + join(known, ", ") + "}");
    }
  }
  return set;
}

CalibrationBins::CalibrationBins(int bins)
    : confidence_(static_cast<size_t>(std::max(1, bins)), 0.0),
      correct_(confidence_.size(), 0.0),
      count_(confidence_.size(), 0) {}

void CalibrationBins::add(double confidence, bool correct) {
  const size_t bins = confidence_.size();
  const auto b = std::min(bins - 1, static_cast<size_t>(std::max(0.0, confidence) * static_cast<double>(bins)));
  confidence_[b] += confidence;
  correct_[b] += correct ? 1.0 : 0.0;
  count_[b]++;
  total_++;
}

double CalibrationBins::ece() const {
  double e = 0;
  for (size_t b = 0; b < confidence_.size(); ++b) {
    if (count_[b] > 0) e += std::abs(confidence_[b] - correct_[b]) / static_cast<double>(total_);
  }
  return e;
}

ClassifierEvaluation evaluate_classifier(FaceAnalyzer& analyzer, const LabeledSet& set,
                                         const EvaluationOptions& options) {
  const RaceTaxonomy compared = common_race_taxonomy(analyzer.race_taxonomy(), set.race_taxonomy);
  ClassifierEvaluation e;
  e.profile = analyzer.profile();
  e.detector = analyzer.detector_name();
  e.classifiers = analyzer.classifier_names();
  e.images = set.images_dir;
  e.labels = set.labels_source;
  e.race_taxonomy = compared;
  e.label_taxonomy = set.race_taxonomy;
  e.classifier_taxonomy = analyzer.race_taxonomy();
  e.race = ConfusionMatrix(race_labels(compared));
  e.age = ConfusionMatrix(fairface_age_ranges());
  ConfusionMatrix &gender = e.gender, &race = e.race, &age = e.age;
  auto& groups = e.groups;
  long long age_within_one = 0, years_n = 0;
  double abs_error_years = 0;
  CalibrationBins gender_calibration, race_calibration;
  const long long total = options.limit > 0 ? std::min<long long>(options.limit, set.photos.size())
                                            : static_cast<long long>(set.photos.size());
  Progress progress("eval-classifier", total, 0, "img");
  const auto start = std::chrono::steady_clock::now();
  for (long long i = 0; i < total; ++i) {
    const LabeledPhoto& photo = set.photos[i];
    ImageAnalysis analysis;
    try {
      analysis = analyzer.analyze(read_image(set.images_dir / photo.file));
    } catch (const InputError&) {
      e.unreadable++;
      e.unreadable_files.push_back(photo.file);
      if (options.show_progress) progress.advance(1, "unreadable: " + photo.file);
      continue;
    }
    e.n++;
    const std::string truth_race = map_race(photo.race, set.race_taxonomy, compared);
    GroupEvaluation& g = groups[truth_race + " " + photo.gender];
    g.n++;
    if (analysis.principal >= 0) {
      e.detected++;
      g.detected++;
      const FaceAttributes& a = analysis.faces[analysis.principal].attributes;
      if (const auto* p = a.primary("gender")) {
        gender.add(photo.gender, p->label());
        g.gender_right += p->label() == photo.gender;
        gender_calibration.add(p->confidence(), p->label() == photo.gender);
      }
      if (const auto* p = a.primary("race")) {
        const std::string predicted = map_race(p->label(), analyzer.race_taxonomy(), compared);
        race.add(truth_race, predicted);
        g.race_right += predicted == truth_race;
        // The answer's confidence in the compared taxonomy: the classes that map onto it, summed.
        double confidence = 0;
        for (size_t c = 0; c < p->labels.size(); ++c) {
          if (map_race(p->labels[c], analyzer.race_taxonomy(), compared) == predicted)
            confidence += p->probabilities[c];
        }
        race_calibration.add(confidence, predicted == truth_race);
      }
      const auto* p = a.primary("age");
      if (p && !photo.age.empty()) {
        std::string predicted = p->years ? fairface_age_range(*p->years) : "";
        const auto& ranges = fairface_age_ranges();
        if (std::find(ranges.begin(), ranges.end(), p->label()) != ranges.end()) predicted = p->label();
        if (!predicted.empty()) {
          age.add(photo.age, predicted);
          const auto ti = std::find(ranges.begin(), ranges.end(), photo.age) - ranges.begin();
          const auto pi = std::find(ranges.begin(), ranges.end(), predicted) - ranges.begin();
          age_within_one += std::abs(ti - pi) <= 1;
          e.age_n++;
        }
        if (p->years && photo.age_years) {
          abs_error_years += std::abs(*p->years - *photo.age_years);
          years_n++;
        }
      }
    }
    if (options.show_progress) progress.advance(1);
  }
  progress.finish();
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  e.gender_ece = gender_calibration.ece();
  e.race_ece = race_calibration.ece();
  if (e.age_n > 0) e.age_within_one_range = static_cast<double>(age_within_one) / static_cast<double>(e.age_n);
  if (years_n > 0) e.age_mae_years = abs_error_years / static_cast<double>(years_n);
  return e;
}

Json ClassifierEvaluation::to_json() const {
  Json report;
  report["profile"] = profile;
  report["detector"] = detector;
  report["classifiers"] = classifiers;
  report["images"] = images.string();
  report["labels"] = labels;
  report["n"] = n;
  report["detected"] = detected;
  report["detection_rate"] = detection_rate();
  report["unreadable"] = unreadable;
  report["unreadable_files"] = unreadable_files;
  report["gender"] = gender.to_json();
  report["gender"]["ece"] = gender_ece;
  report["race"] = race.to_json();
  report["race"]["ece"] = race_ece;
  report["race"]["taxonomy"] = race_taxonomy_name(race_taxonomy);
  report["race"]["label_taxonomy"] = race_taxonomy_name(label_taxonomy);
  report["race"]["classifier_taxonomy"] = race_taxonomy_name(classifier_taxonomy);
  if (age_n > 0) {
    report["age"] = age.to_json();
    report["age"]["within_one_range"] = age_within_one_range;
    if (age_mae_years) report["age"]["mae_years"] = *age_mae_years;
  }
  Json by_group = Json::object();
  for (const auto& [key, g] : groups) {
    Json j{{"n", g.n}, {"detected", g.detected}, {"detection_rate", g.n ? double(g.detected) / double(g.n) : 0.0}};
    if (g.detected > 0) {
      j["gender_accuracy"] = double(g.gender_right) / double(g.detected);
      j["race_accuracy"] = double(g.race_right) / double(g.detected);
    }
    by_group[key] = j;
  }
  report["groups"] = by_group;
  report["seconds"] = seconds;
  report["images_per_s"] = images_per_s();
  return report;
}

}  // namespace fairdiff
