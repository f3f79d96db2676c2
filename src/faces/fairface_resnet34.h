// FairFace's classifier (Karkkainen & Joo, 2021; github.com/joojs/fairface): torchvision's ResNet-34 with an
// 18-way fc layer: 7 races (White, Black, Latino_Hispanic, East Asian, Southeast Asian, Indian, Middle
// Eastern), 2 genders (Male, Female) and 9 age ranges (0-2 ... 70+), each block with its own softmax.
// Module names equal torchvision's state-dict keys (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc).
//
// Shape legend: input [N, 3, 224, 224] RGB, ImageNet-normalised; stem [N, 64, 56, 56]; layer1..4
// [N, 64, 56, 56] [N, 128, 28, 28] [N, 256, 14, 14] [N, 512, 7, 7]; pooled [N, 512]; fc [N, 18].
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <vector>

#include "core/safetensors.h"
#include "faces/attribute_classifier.h"

namespace fairdiff {

struct ResNetConfig {
  std::vector<int> blocks = {3, 4, 6, 3};  // ResNet-34
  int num_outputs = 18;
};

class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

class FairFaceResNet34Impl : public torch::nn::Module {
 public:
  explicit FairFaceResNet34Impl(ResNetConfig config = {});
  torch::Tensor forward(torch::Tensor x);  // [N, 3, 224, 224] -> logits [N, 18]

 private:
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  std::vector<torch::nn::Sequential> layers_;
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(FairFaceResNet34);

// Reads a state dict: a torch.save zip file (.pt/.pth; PyTorch >= 1.6 writes this format) or .safetensors.
// InputError naming the file for the legacy pre-1.6 format (re-save it: see docs/classifiers.md).
TensorMap read_torch_state_dict(const std::filesystem::path& path);

// FairFace's preprocessing of a face: a square of 1.5x the detector box (dlib's chips with padding 0.25 on
// each side), resized to 224x224, scaled to [0, 1], normalised with ImageNet's mean and std. [1, 3, 224, 224].
torch::Tensor fairface_input(const FaceImage& image, const FaceBox& face);

class FairFaceClassifier : public AttributeClassifier {
 public:
  explicit FairFaceClassifier(const std::filesystem::path& weights);
  std::string name() const override { return "fairface"; }
  std::vector<AttributePrediction> classify(const FaceImage& image, const FaceBox& face) override;
  // Race (7), gender (2), age (9) from the 18 logits.
  static std::vector<AttributePrediction> predictions(const torch::Tensor& logits);

 private:
  FairFaceResNet34 model_;
};

}  // namespace fairdiff
