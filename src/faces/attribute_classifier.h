// AttributeClassifier: a face -> one probability vector per attribute, with named labels.
//
// A classifier receives the whole image and the face's box rather than a ready crop, because every network
// was trained on its own crop (margin, aspect, alignment); it cuts that crop itself (see face_crop.h).
// FaceEmbedder is the same idea for networks whose penultimate layer is a face descriptor: a trained head
// on top of the embedding is an AttributeClassifier too (EmbeddingHeadClassifier, issue 6).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "faces/face_types.h"

namespace fairdiff {

class AttributeClassifier {
 public:
  virtual ~AttributeClassifier() = default;
  virtual std::string name() const = 0;
  virtual std::vector<AttributePrediction> classify(const FaceImage& image, const FaceBox& face) = 0;
};

class FaceEmbedder {
 public:
  virtual ~FaceEmbedder() = default;
  virtual std::string name() const = 0;
  virtual int64_t embedding_size() const = 0;
  // [embedding_size] float32 on the CPU.
  virtual torch::Tensor embed(const FaceImage& image, const FaceBox& face) = 0;
};

// Embeddings scaled to unit length along their last dimension ([D] or [N, D]); zero vectors stay zero.
inline torch::Tensor l2_normalize(const torch::Tensor& x) {
  return x / x.norm(2, {-1}, true).clamp_min(1e-12);
}

}  // namespace fairdiff
