#include "faces/deepface_race.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "faces/keras_h5.h"

namespace fairdiff {

namespace F = torch::nn::functional;

VggFaceRaceImpl::VggFaceRaceImpl(VggFaceRaceConfig config) : config_(config) {
  int in = 3, index = 0;
  for (size_t b = 0; b < config_.block_convs.size(); ++b) {
    for (int c = 0; c < config_.block_convs[b]; ++c) {
      auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(in, config_.block_channels[b], 3).padding(1));
      layers_.push_back(register_module("conv" + std::to_string(b + 1) + "_" + std::to_string(c + 1), conv));
      in = config_.block_channels[b];
      ++index;
    }
  }
  layers_.push_back(
      register_module("fc6", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, config_.fc_channels, config_.fc6_kernel))));
  layers_.push_back(
      register_module("fc7", torch::nn::Conv2d(torch::nn::Conv2dOptions(config_.fc_channels, config_.fc_channels, 1))));
  layers_.push_back(register_module(
      "predictions", torch::nn::Conv2d(torch::nn::Conv2dOptions(config_.fc_channels, config_.num_classes, 1))));
}

torch::Tensor VggFaceRaceImpl::forward(torch::Tensor x) {
  size_t layer = 0;
  for (int convs : config_.block_convs) {
    for (int c = 0; c < convs; ++c) x = torch::relu(layers_[layer++]->forward(x));
    x = F::max_pool2d(x, F::MaxPool2dFuncOptions(2).stride(2));
  }
  x = torch::relu(layers_[layer++]->forward(x));  // fc6 [N, 4096, 1, 1]
  x = torch::relu(layers_[layer++]->forward(x));  // fc7 [N, 4096, 1, 1]
  x = layers_[layer++]->forward(x);               // [N, 6, 1, 1]
  return torch::softmax(x.flatten(1), 1);         // [N, 6]
}

void load_deepface_race_weights(VggFaceRace& model, const std::filesystem::path& h5) {
  std::vector<KerasLayerWeights> layers = read_keras_weights(h5);
  const auto& targets = model->layers();
  if (layers.size() != targets.size()) {
    std::string names;
    for (const auto& l : layers) names += (names.empty() ? "" : ", ") + l.layer;
    throw InputError(h5.string() + ": expected " + std::to_string(targets.size()) +
                     " weighted layers (13 VGG-Face convolutions, fc6, fc7, the 6-class head), found " +
                     std::to_string(layers.size()) + ": " + names);
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    auto& conv = targets[i];
    if (l.values.size() != 2) {
      throw InputError(h5.string() + ": layer '" + l.layer + "' has " + std::to_string(l.values.size()) +
                       " weights, expected a kernel and a bias");
    }
    torch::Tensor kernel = l.values[0], bias = l.values[1];
    const auto& w = conv->weight;  // [C_out, C_in, KH, KW]
    const std::vector<int64_t> expected = {w.size(2), w.size(3), w.size(1), w.size(0)};
    if (kernel.sizes().vec() != expected || bias.dim() != 1 || bias.size(0) != w.size(0)) {
      throw InputError(h5.string() + ": layer '" + l.layer + "' (" + l.names[0] + ") has kernel " +
                       c10::str(kernel.sizes()) + " and bias " + c10::str(bias.sizes()) + ", expected kernel " +
                       c10::str(c10::IntArrayRef(expected)) + " and bias [" + std::to_string(w.size(0)) + "]");
    }
    conv->weight.copy_(kernel.permute({3, 2, 0, 1}));  // [KH, KW, C_in, C_out] -> [C_out, C_in, KH, KW]
    conv->bias.copy_(bias);
  }
}

const std::vector<std::string>& deepface_race_labels() {
  static const std::vector<std::string> labels = {"asian", "indian",         "black",
                                                  "white", "middle eastern", "latino hispanic"};
  return labels;
}

DeepFaceRaceClassifier::DeepFaceRaceClassifier(const std::filesystem::path& h5) {
  load_deepface_race_weights(model_, h5);
  model_->eval();
}

std::vector<AttributePrediction> DeepFaceRaceClassifier::classify(const FaceImage& image, const FaceBox& face) {
  // DeepFace resizes the detected face keeping its aspect ratio and pads it with black to 224x224.
  const int x0 = std::clamp(static_cast<int>(face.x0), 0, image.width() - 1);
  const int y0 = std::clamp(static_cast<int>(face.y0), 0, image.height() - 1);
  const int x1 = std::clamp(static_cast<int>(std::ceil(face.x1)), x0 + 1, image.width());
  const int y1 = std::clamp(static_cast<int>(std::ceil(face.y1)), y0 + 1, image.height());
  torch::Tensor crop = image.pixels.slice(0, y0, y1).slice(1, x0, x1);  // [h, w, 3] RGB
  const double factor = 224.0 / std::max(crop.size(0), crop.size(1));
  const int64_t h = std::max<int64_t>(1, std::lround(crop.size(0) * factor));
  const int64_t w = std::max<int64_t>(1, std::lround(crop.size(1) * factor));
  torch::Tensor x = crop.permute({2, 0, 1}).unsqueeze(0).flip(1);  // [1, 3, h, w] BGR
  x = F::interpolate(
      x, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear).align_corners(false));
  const int64_t top = (224 - h) / 2, left = (224 - w) / 2;
  x = torch::constant_pad_nd(x, {left, 224 - w - left, top, 224 - h - top}, 0.0) / 255.0;
  torch::NoGradGuard no_grad;
  torch::Tensor p = model_->forward(x).reshape({-1}).contiguous();
  AttributePrediction race{"race",
                           "deepface",
                           deepface_race_labels(),
                           std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + p.numel()),
                           {}};
  return {race};
}

}  // namespace fairdiff
