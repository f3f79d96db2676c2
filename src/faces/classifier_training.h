// train-classifier as a library function: labeled photos -> face embeddings (cached) -> gender / race / age
// heads, written as safetensors with a JSON card and the validation confusion matrices in the form the audit's
// classifier-error correction reads (issue 6).
#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "faces/attribute_heads.h"
#include "faces/network_tuning.h"
#include "faces/profiles.h"

namespace fairdiff {

struct ClassifierTrainingConfig {
  std::filesystem::path images;  // folder the labels' file names are relative to
  std::filesystem::path labels;  // file,gender,race,age with FairFace's classes (empty: images/labels.csv)
  std::filesystem::path out;     // the heads (.safetensors); card and confusion matrices beside it
  std::filesystem::path cache;   // embedding cache (empty: out's stem + .embeddings)
  std::string embedder = "faceres@flip+mobileface@flip";  // the committed heads'
  std::string exclude;                                    // CSV[:COLUMN] of photos to leave out (empty: none)
  long long limit = 0;  // use only the first `limit` labeled photos after exclusions (0: all)
  HeadTrainingOptions heads;
  ProfileOptions profile;  // detector and model folders, embedder crop
  // Fine-tune faceres end to end on the training split before the heads are trained (issue 14); the embedder
  // must then be faceres or faceres@flip. The tuned parameters go to <out stem>.network.safetensors, which the
  // heads' card names and the default profile loads.
  bool tune_network = false;
  bool tune_only = false;  // stop once the network file is written (a GPU host tunes, the heads train elsewhere)
  NetworkTuningOptions tuning;
  // Heads on a network tuned earlier (<stem>.network.safetensors of a --tune-network run): copied beside the heads
  // as network_file(); the embedder rules of tune_network apply.
  std::filesystem::path tuned_network;

  std::filesystem::path labels_file() const;
  std::filesystem::path cache_dir() const;
  std::filesystem::path card_file() const;       // <out stem>.card.json
  std::filesystem::path confusion_file() const;  // <out stem>.confusion.json
  std::filesystem::path network_file() const;    // <out stem>.network.safetensors (tune_network)
};

// `CSV[:COLUMN]`: the file names listed in COLUMN (default: fairface_file when the CSV has it, else file).
// InputError naming the file when it or the column is missing.
std::set<std::string> read_exclusions(const std::string& spec);

// FairFace's class index of `label` in `classes`, -1 when absent.
int64_t class_index(const std::vector<std::string>& classes, const std::string& label);

// One head's validation figures, as its card reports them.
struct HeadSummary {
  std::string attribute;
  double accuracy = 0, balanced_accuracy = 0, ece_uncalibrated = 0, ece = 0, temperature = 1;
  std::string worst_class;
  double worst_recall = 0;
};
// The summary of every head in a card (train_attribute_heads' layout).
std::vector<HeadSummary> head_summaries(const Json& card);

struct ClassifierTrainingResult {
  long long labeled = 0, excluded = 0, photos = 0, without_face = 0, faces = 0;
  std::vector<double> tuning_loss;  // per epoch, with tune_network
  bool network_only = false;        // tune_only: no heads were trained
  std::vector<HeadSummary> heads;
};

// Checks the inputs (UsageError / InputError naming the field or file) without loading any model.
void validate(const ClassifierTrainingConfig& config);
// The whole run: embeddings (cached, resumable), heads, and the three files.
ClassifierTrainingResult train_classifier(const ClassifierTrainingConfig& config);

}  // namespace fairdiff
