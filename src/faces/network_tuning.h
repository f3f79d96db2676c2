// End-to-end fine-tuning of a face network for the attribute heads (issue 14): the network, through the TF.js
// runtime's trainable parameters (tfjs::GraphModel::set_trainable), and one linear layer per attribute on its
// L2-normalised descriptor, trained together with class-weighted cross-entropy. The heads the product uses are
// then trained on the tuned network's descriptors by train_attribute_heads, as for a frozen network
// (train-classifier --tune-network, faces/classifier_training.h).
//
// Shape legend: N faces, S the network's input side (224 for faceres), D its descriptor size.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "faces/attribute_heads.h"
#include "faces/tfjs/graph_model.h"

namespace fairdiff {

struct NetworkTuningOptions {
  int epochs = 3;
  int64_t batch_size = 32;
  double learning_rate = 3e-5;        // the network's (AdamW)
  double heads_learning_rate = 1e-3;  // the linear layers trained beside it, then dropped
  double weight_decay = 1e-2;
  bool flip = true;  // each crop mirrored with probability 1/2, drawn again every epoch
  uint64_t seed = 0;
  std::string device = "cpu";
  bool show_progress = true;
  // Resuming (empty path: none). The whole training state (network and linear layers, both optimizers' moments,
  // the epoch's shuffled order, the position in it and the random generator) is written to `checkpoint` after
  // the first batch that ends `checkpoint_seconds` after the last save, at the end of every epoch and when Ctrl-C
  // stops the run; a later call with the
  // same `checkpoint_key` (what the crops and labels are: the caller describes them) and the same options picks
  // up there and ends with the parameters an uninterrupted run gives. A checkpoint made with another key or other
  // options (epochs aside: more epochs continue a finished run) is set aside with a message and training starts
  // over. A finished checkpoint returns its result without training.
  std::filesystem::path checkpoint;
  Json checkpoint_key;
  double checkpoint_seconds = 300;
  std::function<void()> after_batch;  // called after every batch (tests stop a run part-way through an epoch)
};

struct TunedNetwork {
  std::map<std::string, torch::Tensor> parameters;  // every parameter by Const name, CPU float32 (load_parameters)
  std::vector<double> epoch_loss;                   // mean training loss of each epoch
  int resumed_epoch = -1;                           // the epoch a checkpoint resumed in (-1: started afresh)
  int64_t resumed_batch = 0;                        // and the batch within it
};

// Trains `model` in place on crops [N, S, S, 3] uint8 (the network's input before any scaling it does itself)
// whose rows `rows` are the training split (the heads' validation rows stay unseen); `labels` are one HeadLabels
// per attribute with N targets (-1: unknown, left out of that attribute's loss). `input` is the model's input
// placeholder, `descriptor` the node whose output is the descriptor. UsageError for bad options or sizes.
TunedNetwork tune_network(tfjs::GraphModel& model, const std::string& input, const std::string& descriptor,
                          const torch::Tensor& crops, const std::vector<HeadLabels>& labels,
                          const std::vector<int64_t>& rows, const NetworkTuningOptions& options);

}  // namespace fairdiff
