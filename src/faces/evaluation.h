// Measuring a profile on labeled photos: detection rate, accuracy per attribute and per group (race x
// gender), confusion matrices (rows = true class, columns = predicted; the audit's classifier-error
// correction reads them), images/s.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/confusion_matrix.h"
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

// Per race x gender group of the labeled set (key "<race> <gender>", race in the compared taxonomy).
struct GroupEvaluation {
  long long n = 0, detected = 0, gender_right = 0, race_right = 0;
};

// What evaluate_classifier measured. Rates are over the readable photos; accuracies over the detected faces.
struct ClassifierEvaluation {
  std::string profile, detector;
  std::vector<std::string> classifiers;
  std::filesystem::path images;
  std::string labels;
  long long n = 0;  // readable photos
  long long detected = 0;
  long long unreadable = 0;
  std::vector<std::string> unreadable_files;
  RaceTaxonomy race_taxonomy = RaceTaxonomy::five;  // the compared one: the finest both sides map to
  RaceTaxonomy label_taxonomy = RaceTaxonomy::five;
  RaceTaxonomy classifier_taxonomy = RaceTaxonomy::five;
  ConfusionMatrix gender{std::vector<std::string>{"male", "female"}};
  ConfusionMatrix race, age;
  double gender_ece = 0, race_ece = 0;
  long long age_n = 0;                  // photos with an age label and a predicted FairFace range
  double age_within_one_range = 0;      // share of those within one range of the label
  std::optional<double> age_mae_years;  // when labels and predictions are in years
  std::map<std::string, GroupEvaluation> groups;
  double seconds = 0;

  double detection_rate() const { return n ? static_cast<double>(detected) / static_cast<double>(n) : 0.0; }
  double images_per_s() const { return seconds > 0 ? static_cast<double>(n + unreadable) / seconds : 0.0; }
  // eval-classifier's JSON report.
  Json to_json() const;
};

// Runs `analyzer` over the set. Unreadable photos are counted in `unreadable` and left out of every rate.
ClassifierEvaluation evaluate_classifier(FaceAnalyzer& analyzer, const LabeledSet& set,
                                         const EvaluationOptions& options = {});

}  // namespace fairdiff
