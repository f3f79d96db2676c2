// Plain structs passed between face detection, attribute classification, the CLI and the audit.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "core/image.h"

namespace fairdiff {

// A detected face in pixel coordinates of the analysed image (x right, y down; x1/y1 exclusive).
struct FaceBox {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  float score = 0;                                 // detector confidence in [0, 1]
  std::vector<std::pair<float, float>> landmarks;  // (x, y) pairs when the detector gives them

  float width() const { return x1 - x0; }
  float height() const { return y1 - y0; }
  float area() const { return width() > 0 && height() > 0 ? width() * height() : 0.0f; }
};

// The index of the largest box (the principal face), -1 when there is none.
int largest_box(const std::vector<FaceBox>& boxes);

// One classifier head's output for one attribute: a probability per named label.
struct AttributePrediction {
  std::string attribute;  // "gender", "race" or "age"
  std::string source;     // the network that produced it ("faceres", "gear", "fairface", ...)
  std::vector<std::string> labels;
  std::vector<float> probabilities;  // same order as labels, sums to 1
  std::optional<float> years;        // age heads: the expected age in years

  int best() const;  // index of the most probable label
  const std::string& label() const { return labels.at(best()); }
  float confidence() const { return probabilities.at(best()); }
};

// Every prediction for one face. The first prediction of an attribute is the profile's answer for it
// (profiles order their classifiers so the more accurate head comes first).
struct FaceAttributes {
  std::vector<AttributePrediction> predictions;
  const AttributePrediction* primary(const std::string& attribute) const;
};

struct Face {
  FaceBox box;
  FaceAttributes attributes;
};

// The faces of one image; the image's label is its principal (largest) face's, or "--" without faces.
struct ImageAnalysis {
  int width = 0, height = 0;
  std::vector<Face> faces;
  int principal = -1;  // index into faces, -1 when none
};

// An image prepared once for every model: 8-bit RGB and the same pixels as float.
struct FaceImage {
  Image rgb;             // [H, W, 3] uint8
  torch::Tensor pixels;  // [H, W, 3] float32 in 0..255 (CPU)

  static FaceImage from(const Image& image);
  int width() const { return rgb.width; }
  int height() const { return rgb.height; }
};

}  // namespace fairdiff
