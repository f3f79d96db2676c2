#include "faces/faceres_classifier.h"

#include "core/safetensors.h"
#include "faces/face_crop.h"
#include "faces/taxonomy.h"

namespace fairdiff {
namespace {

const int kFaceresInput = 224;

}  // namespace

FaceresClassifier::FaceresClassifier(const std::filesystem::path& models_dir, FaceresConfig config)
    : config_(config), model_(tfjs::GraphModel::load(models_dir / (config.model + ".json"))) {
  if (!config_.tuned.empty()) {
    model_->load_parameters(read_safetensors(config_.tuned).tensors, config_.tuned.string());
  }
}

torch::Tensor FaceresClassifier::prepare(const FaceImage& image, const FaceBox& face) const {
  return crop_square(image.pixels, face, config_.crop_scale, kFaceresInput, config_.crop_shift_y);
}

FaceresOutput FaceresClassifier::run(const torch::Tensor& input) const {
  tfjs::Values out = model_->execute({{model_->inputs().at(0).name, input}},
                                     {"gender_pred/Sigmoid:0", "age_pred/Softmax:0", descriptor_node()});
  FaceresOutput result;
  result.p_male = out[0].to(torch::kCPU).reshape({-1})[0].item<float>();
  torch::Tensor age = out[1].to(torch::kCPU).to(torch::kFloat).contiguous().reshape({-1});
  result.age.assign(age.data_ptr<float>(), age.data_ptr<float>() + age.numel());
  result.embedding = out[2].to(torch::kCPU).reshape({-1}).clone();
  return result;
}

std::vector<AttributePrediction> FaceresClassifier::predictions(const FaceresOutput& output) {
  AttributePrediction gender{"gender", "faceres", {"male", "female"}, {output.p_male, 1.0f - output.p_male}, {}};
  AttributePrediction age{"age", "faceres", fairface_age_ranges(), std::vector<float>(9, 0.0f), {}};
  float years = 0;
  for (size_t y = 0; y < output.age.size(); ++y) {
    years += static_cast<float>(y) * output.age[y];
    const auto& ranges = fairface_age_ranges();
    const std::string range = fairface_age_range(static_cast<double>(y));
    age.probabilities[std::find(ranges.begin(), ranges.end(), range) - ranges.begin()] += output.age[y];
  }
  age.years = years;
  return {gender, age};
}

std::vector<AttributePrediction> FaceresClassifier::classify(const FaceImage& image, const FaceBox& face) {
  return predictions(run(prepare(image, face)));
}

torch::Tensor FaceresClassifier::embed(const FaceImage& image, const FaceBox& face) {
  return run(prepare(image, face)).embedding;
}

}  // namespace fairdiff
