// Attribute heads trained by fairdiff on face embeddings (issue 6): small networks that read a face
// descriptor (the committed heads: faceres@flip+mobileface@flip, 1024 + 256 = 1280-d; see profiles.h) and give
// calibrated probabilities for gender (2 classes), race (FairFace's 7) and age (FairFace's 9 ranges).
//
// A head is a multinomial logistic regression or a one-hidden-layer MLP on the L2-normalised, standardised
// embedding (x / |x| - mean) / scale, trained with class-weighted cross-entropy (every class weighs as much in the
// loss, so no group is sacrificed to a larger one), AdamW, early stopping on a stratified validation split, then
// calibrated by temperature scaling on that split. Training runs single-threaded with a fixed seed: the same
// data and options give the same heads byte for byte.
//
// File: safetensors with "embedding.mean", "embedding.scale" [D] and per head "<attr>.hidden.weight"
// [H, D], "<attr>.hidden.bias" [H] (MLP only), "<attr>.out.weight" [C, H or D], "<attr>.out.bias" [C],
// "<attr>.temperature" [1]; metadata "card" = the JSON card (classes, data, split, validation accuracy per
// class, confusion matrices, calibration error, embedder settings).
//
// Shape legend: N faces, D embedding size, H hidden units, C classes.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"
#include "faces/attribute_classifier.h"

namespace fairdiff {

struct AttributeHead {
  std::string attribute;                     // "gender", "race", "age"
  std::vector<std::string> classes;          // output order
  torch::Tensor hidden_weight, hidden_bias;  // undefined for a linear head
  torch::Tensor out_weight, out_bias;
  double temperature = 1.0;

  // [N, D] standardised embeddings -> [N, C] uncalibrated logits.
  torch::Tensor logits(const torch::Tensor& x) const;
};

class AttributeHeads {
 public:
  torch::Tensor mean, scale;  // [D]
  std::vector<AttributeHead> heads;
  Json card;

  static AttributeHeads load(const std::filesystem::path& path);
  void save(const std::filesystem::path& path) const;

  int64_t embedding_size() const { return mean.numel(); }
  const AttributeHead* find(const std::string& attribute) const;
  // [N, D] raw embeddings -> standardised.
  torch::Tensor standardize(const torch::Tensor& embeddings) const;
  // [N, D] raw embeddings -> [N, C] calibrated probabilities of `head`.
  torch::Tensor probabilities(const AttributeHead& head, const torch::Tensor& embeddings) const;
};

struct HeadTrainingOptions {
  std::string kind = "mlp";  // "mlp" or "linear"
  int64_t hidden = 64;
  double holdout_fraction = 0.1;  // validation split, stratified by the first head's x second head's class
  uint64_t seed = 0;
  int max_epochs = 150;
  int patience = 12;  // epochs without a better validation loss before stopping
  int64_t batch_size = 256;
  double learning_rate = 1e-4;  // what the committed heads were trained with
  double weight_decay = 1e-2;
  bool show_progress = true;
};

// One attribute's training labels: class index per sample, -1 where unknown (left out of that head).
struct HeadLabels {
  std::string attribute;
  std::vector<std::string> classes;
  std::vector<int64_t> targets;  // [N]
};

// Class weights n / (C * n_c) of known targets [n] (class indices): every class weighs the same in a
// cross-entropy loss; classes without an example get 0. The heads' training and tune_network use them.
torch::Tensor balanced_class_weights(const torch::Tensor& targets, int64_t classes);

// The training and validation rows train_attribute_heads makes of these labels (stratified by the first two
// attributes' classes, options.holdout_fraction and options.seed), each ascending: what a network tuned before
// the heads must train on so that the heads' validation photos stay unseen.
std::pair<std::vector<int64_t>, std::vector<int64_t>> head_training_split(const std::vector<HeadLabels>& labels,
                                                                          const HeadTrainingOptions& options);

// Trains one head per entry of `labels` on `embeddings` [N, D] (only rows with a known class). `data_card`
// is copied into the card under "data".
AttributeHeads train_attribute_heads(const torch::Tensor& embeddings, const std::vector<HeadLabels>& labels,
                                     const HeadTrainingOptions& options, const Json& data_card);

// Expected calibration error (top-label confidence, `bins` equal-width bins) of probabilities [N, C].
double expected_calibration_error(const torch::Tensor& probabilities, const torch::Tensor& targets, int bins = 15);
// The temperature T > 0 minimising the mean negative log-likelihood of softmax(logits / T).
double fit_temperature(const torch::Tensor& logits, const torch::Tensor& targets);

// An AttributeClassifier from a face embedder and trained heads: one embedding per face, every head on it.
// Age predictions carry the expected years (FairFace range midpoints weighted by probability).
class EmbeddingHeadClassifier : public AttributeClassifier {
 public:
  EmbeddingHeadClassifier(std::shared_ptr<FaceEmbedder> embedder, AttributeHeads heads, std::string name);
  std::string name() const override { return name_; }
  std::vector<AttributePrediction> classify(const FaceImage& image, const FaceBox& face) override;
  const AttributeHeads& heads() const { return heads_; }

 private:
  std::shared_ptr<FaceEmbedder> embedder_;
  AttributeHeads heads_;
  std::string name_;
};

}  // namespace fairdiff
