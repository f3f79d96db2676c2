// The study's OpenCV models (profile `seed`), as its utils.py runs them:
// - OpenCvSsdDetector: the TensorFlow SSD face detector (opencv_face_detector_uint8.pb + .pbtxt) through
//   OpenCV DNN: the image resized to 640x480 (BGR, as cv2.imread gives it), a 300x300 blob with mean
//   (104, 117, 123) and swapRB, faces above confidence 0.7.
// - CaffeAgeGenderClassifier: Levi & Hassner's gender_net and age_net (Caffe): the face box grown by 20 px
//   on the 640x480 frame, a 227x227 BGR blob with mean (78.426, 87.769, 114.896); labels Male/Female and
//   the eight age ranges (0-2) ... (60-100).
// OpenCV is optional: without it these constructors throw UnsupportedError.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "faces/attribute_classifier.h"
#include "faces/face_detector.h"

namespace fairdiff {

bool opencv_available();

struct SsdConfig {
  int frame_width = 640, frame_height = 480;  // the study resizes every image to this first
  float confidence = 0.7f;
};

class OpenCvSsdDetector : public FaceDetector {
 public:
  OpenCvSsdDetector(const std::filesystem::path& pb, const std::filesystem::path& pbtxt, SsdConfig config = {});
  ~OpenCvSsdDetector() override;
  std::string name() const override { return "opencv-ssd"; }
  std::vector<FaceBox> detect(const FaceImage& image) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  SsdConfig config_;
};

class CaffeAgeGenderClassifier : public AttributeClassifier {
 public:
  CaffeAgeGenderClassifier(const std::filesystem::path& gender_prototxt, const std::filesystem::path& gender_model,
                           const std::filesystem::path& age_prototxt, const std::filesystem::path& age_model,
                           SsdConfig frame = {});
  ~CaffeAgeGenderClassifier() override;
  std::string name() const override { return "caffe"; }
  std::vector<AttributePrediction> classify(const FaceImage& image, const FaceBox& face) override;
  // The weights of a layer as OpenCV loaded them (for the loader test): blob `index` of layer `layer`.
  std::vector<float> layer_weights(bool gender_net, const std::string& layer, int index) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  SsdConfig frame_;
};

}  // namespace fairdiff
