// FaceDetector: image -> face boxes with scores (and landmarks when the network gives them).
#pragma once

#include <string>
#include <vector>

#include "faces/face_types.h"

namespace fairdiff {

class FaceDetector {
 public:
  virtual ~FaceDetector() = default;
  virtual std::string name() const = 0;
  // Every face found, highest score first, in the image's pixel coordinates.
  virtual std::vector<FaceBox> detect(const FaceImage& image) = 0;
};

}  // namespace fairdiff
