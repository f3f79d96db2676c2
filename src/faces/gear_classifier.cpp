#include "faces/gear_classifier.h"

#include "faces/face_crop.h"

namespace fairdiff {
namespace {

const int kGearInput = 198;

std::vector<float> to_vector(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kCPU).to(torch::kFloat).contiguous().reshape({-1});
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

GearClassifier::GearClassifier(const std::filesystem::path& models_dir, GearConfig config)
    : config_(config), model_(tfjs::GraphModel::load(models_dir / "gear.json")) {}

std::vector<AttributePrediction> GearClassifier::classify(const FaceImage& image, const FaceBox& face) {
  torch::Tensor input = crop_square(image.pixels, face, config_.crop_scale, kGearInput, config_.crop_shift_y) / 255.0f;
  return classify_input(input);
}

std::vector<AttributePrediction> GearClassifier::classify_input(const torch::Tensor& input) const {
  tfjs::Values out =
      model_->execute({{model_->inputs().at(0).name, input}}, {"race_output", "gender_output", "age_output"});
  AttributePrediction race{"race", "gear", {"white", "black", "asian", "indian", "other"}, to_vector(out[0]), {}};
  AttributePrediction gender{"gender", "gear", {"male", "female"}, to_vector(out[1]), {}};
  static const std::vector<float> centres = {15, 23, 28, 35.5f, 45.5f, 55.5f, 65};
  AttributePrediction age{"age", "gear", {"15", "23", "28", "35.5", "45.5", "55.5", "65"}, to_vector(out[2]), {}};
  float years = 0;
  for (size_t i = 0; i < centres.size(); ++i) years += centres[i] * age.probabilities[i];
  age.years = years;
  return {race, gender, age};
}

}  // namespace fairdiff
