// DeepFace's race model: VGG-Face (13 3x3 convolutions in 5 blocks, fc6 as a 7x7 convolution to 4096,
// fc7 as a 1x1 convolution) with a 1x1-convolution head to 6 classes (asian, indian, black, white,
// middle eastern, latino hispanic), read from DeepFace's Keras weights (race_model_single_batch.h5).
//
// Shape legend: input [N, 3, 224, 224] BGR scaled to [0, 1] (DeepFace feeds OpenCV's BGR arrays / 255);
// block outputs [N, 64, 112, 112] ... [N, 512, 7, 7]; fc6/fc7 [N, 4096, 1, 1]; predictions [N, 6].
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "faces/attribute_classifier.h"

namespace fairdiff {

struct VggFaceRaceConfig {
  std::vector<int> block_convs = {2, 2, 3, 3, 3};
  std::vector<int> block_channels = {64, 128, 256, 512, 512};
  int fc_channels = 4096;
  int fc6_kernel = 7;
  int num_classes = 6;
};

class VggFaceRaceImpl : public torch::nn::Module {
 public:
  explicit VggFaceRaceImpl(VggFaceRaceConfig config = {});
  torch::Tensor forward(torch::Tensor x);  // [N, 3, 224, 224] -> [N, 6] probabilities
  // The weighted layers in Keras order (13 convolutions, fc6, fc7, predictions).
  const std::vector<torch::nn::Conv2d>& layers() const { return layers_; }

 private:
  VggFaceRaceConfig config_;
  std::vector<torch::nn::Conv2d> layers_;
};
TORCH_MODULE(VggFaceRace);

// Copies the Keras weights (in layer order; kernels [KH, KW, C_in, C_out] -> [C_out, C_in, KH, KW]) into
// `model`. InputError naming the file and the layer for a wrong count or shape.
void load_deepface_race_weights(VggFaceRace& model, const std::filesystem::path& h5);

const std::vector<std::string>& deepface_race_labels();

class DeepFaceRaceClassifier : public AttributeClassifier {
 public:
  explicit DeepFaceRaceClassifier(const std::filesystem::path& h5);
  std::string name() const override { return "deepface"; }
  std::vector<AttributePrediction> classify(const FaceImage& image, const FaceBox& face) override;

 private:
  VggFaceRace model_;
};

}  // namespace fairdiff
