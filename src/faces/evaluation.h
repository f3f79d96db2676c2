// Measuring a profile on labeled photos: detection rate, accuracy per attribute and per group (race x
// gender), confusion matrices (rows = true class, columns = predicted; the audit's classifier-error
// correction reads them), images/s.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "faces/face_analyzer.h"

namespace fairdiff {

struct LabeledPhoto {
  std::string file;
  std::string gender;               // "male" | "female"
  std::string race;                 // normalised, in the set's taxonomy
  std::string age;                  // a FairFace range ("" when the set has no age)
  std::optional<double> age_years;  // when the label is a number of years
  int line = 0;
};

struct LabeledSet {
  std::filesystem::path images_dir;
  std::string labels_source;
  RaceTaxonomy race_taxonomy = RaceTaxonomy::five;
  std::vector<LabeledPhoto> photos;
};

// Reads `file,gender,race[,age]` labels. Every row's gender and race must be known (InputError naming the
// file and line otherwise); the race taxonomy is detected from the labels unless `taxonomy` is given.
LabeledSet read_labeled_set(const std::filesystem::path& images_dir, const std::filesystem::path& labels_csv,
                            std::optional<RaceTaxonomy> taxonomy = std::nullopt);

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(std::vector<std::string> labels);
  void add(const std::string& truth, const std::string& predicted);
  long long total() const;
  double accuracy() const;
  double recall(size_t label) const;  // NaN-free: 0 when the class has no examples
  const std::vector<std::string>& labels() const { return labels_; }
  // {"labels": [...], "confusion": [[...]]} plus accuracy and per-class recall/support.
  Json to_json() const;

 private:
  std::vector<std::string> labels_;
  std::vector<std::vector<long long>> counts_;
};

// Expected calibration error of answers' confidences: `bins` equal-width bins of confidence, the gap between
// mean confidence and accuracy in each, weighted by the bin's share of answers.
class CalibrationBins {
 public:
  explicit CalibrationBins(int bins = 15);
  void add(double confidence, bool correct);
  double ece() const;

 private:
  std::vector<double> confidence_, correct_;
  std::vector<long long> count_;
  long long total_ = 0;
};

struct EvaluationOptions {
  long long limit = 0;  // evaluate only the first `limit` photos (0: all)
  bool show_progress = true;
};

// Runs `analyzer` over the set and returns the JSON report of eval-classifier. Unreadable photos are
// counted in "unreadable" and left out of every rate.
Json evaluate_classifier(FaceAnalyzer& analyzer, const LabeledSet& set, const EvaluationOptions& options = {});

}  // namespace fairdiff
