#include "faces/face_types.h"

#include <algorithm>

namespace fairdiff {

int largest_box(const std::vector<FaceBox>& boxes) {
  int largest = -1;
  for (size_t i = 0; i < boxes.size(); ++i) {
    if (largest < 0 || boxes[i].area() > boxes[largest].area()) largest = static_cast<int>(i);
  }
  return largest;
}

int AttributePrediction::best() const {
  if (probabilities.empty()) return 0;
  return static_cast<int>(std::max_element(probabilities.begin(), probabilities.end()) - probabilities.begin());
}

const AttributePrediction* FaceAttributes::primary(const std::string& attribute) const {
  for (const auto& p : predictions) {
    if (p.attribute == attribute) return &p;
  }
  return nullptr;
}

FaceImage FaceImage::from(const Image& image) {
  FaceImage out;
  out.rgb = image.channels == 3 ? image : to_rgb(image);
  out.pixels = torch::from_blob(out.rgb.pixels.data(), {out.rgb.height, out.rgb.width, 3}, torch::kByte)
                   .to(torch::kFloat);  // [H, W, 3], a copy
  return out;
}

}  // namespace fairdiff
