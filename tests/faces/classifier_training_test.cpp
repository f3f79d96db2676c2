// train-classifier's module functions (faces/classifier_training.h): the exclusion list, class indices and the
// summary read back from a heads card. The whole run is tested end to end in tests/cli/train_classifier_test.cpp.
#include "faces/classifier_training.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

TEST(ClassifierTraining, ExclusionsComeFromTheFairFaceColumnOrTheNamedOne) {
  const fs::path dir = test::scratch_dir("exclusions");
  std::ofstream(dir / "held_out.csv")
      << "file,gender,fairface_file\na.jpg,male,train/1.jpg\nb.jpg,female, train/2.jpg\n";
  EXPECT_EQ(read_exclusions((dir / "held_out.csv").string()), (std::set<std::string>{"train/1.jpg", "train/2.jpg"}));
  EXPECT_EQ(read_exclusions((dir / "held_out.csv").string() + ":file"), (std::set<std::string>{"a.jpg", "b.jpg"}));
  std::ofstream(dir / "plain.csv") << "file\nx.jpg\n";
  EXPECT_EQ(read_exclusions((dir / "plain.csv").string()), (std::set<std::string>{"x.jpg"}));
  EXPECT_THROW(read_exclusions((dir / "held_out.csv").string() + ":nope"), InputError);
  EXPECT_THROW(read_exclusions((dir / "missing.csv").string()), InputError);
}

TEST(ClassifierTraining, ClassIndexAndCardSummary) {
  EXPECT_EQ(class_index({"male", "female"}, "female"), 1);
  EXPECT_EQ(class_index({"male", "female"}, "robot"), -1);
  const Json card = Json::parse(R"({"heads": [
    {"attribute": "race", "temperature": 1.25,
     "validation": {"accuracy": 0.6, "balanced_accuracy": 0.55, "ece_uncalibrated": 0.08, "ece": 0.02,
                    "per_class": {"white": 0.7, "latino hispanic": 0.41, "black": 0.8}}}]})");
  const std::vector<HeadSummary> heads = head_summaries(card);
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_EQ(heads[0].attribute, "race");
  EXPECT_DOUBLE_EQ(heads[0].temperature, 1.25);
  EXPECT_DOUBLE_EQ(heads[0].ece, 0.02);
  EXPECT_EQ(heads[0].worst_class, "latino hispanic");
  EXPECT_DOUBLE_EQ(heads[0].worst_recall, 0.41);
}

TEST(ClassifierTraining, ConfigPathsAndDefaults) {
  ClassifierTrainingConfig c;
  EXPECT_EQ(c.embedder, "faceres@flip+mobileface@flip");
  EXPECT_DOUBLE_EQ(c.heads.learning_rate, 1e-4);  // what the committed heads were trained with
  c.images = "photos";
  c.out = "out/heads.safetensors";
  EXPECT_EQ(c.labels_file(), fs::path("photos/labels.csv"));
  EXPECT_EQ(c.cache_dir(), fs::path("out/heads.embeddings"));
  EXPECT_EQ(c.card_file(), fs::path("out/heads.card.json"));
  EXPECT_EQ(c.confusion_file(), fs::path("out/heads.confusion.json"));
}

}  // namespace
}  // namespace fairdiff
