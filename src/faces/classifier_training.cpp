#include "faces/classifier_training.h"

#include <torch/cuda.h>

#include <algorithm>
#include <cstdio>

#include "core/csv.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "core/sha256.h"
#include "core/strings.h"
#include "faces/embedding_cache.h"
#include "faces/evaluation.h"
#include "faces/faceres_classifier.h"

namespace fairdiff {

namespace fs = std::filesystem;

fs::path ClassifierTrainingConfig::labels_file() const {
  return labels.empty() ? images / "labels.csv" : labels;
}

fs::path ClassifierTrainingConfig::cache_dir() const {
  return cache.empty() ? fs::path((out.parent_path() / out.stem()).string() + ".embeddings") : cache;
}

fs::path ClassifierTrainingConfig::card_file() const {
  return (out.parent_path() / out.stem()).string() + ".card.json";
}

fs::path ClassifierTrainingConfig::confusion_file() const {
  return (out.parent_path() / out.stem()).string() + ".confusion.json";
}

std::set<std::string> read_exclusions(const std::string& spec) {
  std::string path = spec, column;
  const auto colon = spec.rfind(':');
  if (colon != std::string::npos && !fs::exists(spec)) path = spec.substr(0, colon), column = spec.substr(colon + 1);
  require_file(path, "exclusion CSV");
  const CsvTable table = read_csv(path);
  if (column.empty()) column = table.column("fairface_file") >= 0 ? "fairface_file" : "file";
  const int col = table.require_column(column);
  std::set<std::string> names;
  for (const auto& row : table.rows) names.insert(trim(row.fields[col]));
  return names;
}

int64_t class_index(const std::vector<std::string>& classes, const std::string& label) {
  auto it = std::find(classes.begin(), classes.end(), label);
  return it == classes.end() ? -1 : it - classes.begin();
}

std::vector<HeadSummary> head_summaries(const Json& card) {
  std::vector<HeadSummary> out;
  for (const Json& head : card.at("heads")) {
    const Json& v = head.at("validation");
    HeadSummary s;
    s.attribute = head.at("attribute").get<std::string>();
    s.accuracy = v.at("accuracy").get<double>();
    s.balanced_accuracy = v.at("balanced_accuracy").get<double>();
    s.ece_uncalibrated = v.at("ece_uncalibrated").get<double>();
    s.ece = v.at("ece").get<double>();
    s.temperature = head.at("temperature").get<double>();
    s.worst_recall = 2;
    for (auto& [label, recall] : v.at("per_class").items()) {
      if (recall.get<double>() < s.worst_recall) s.worst_recall = recall.get<double>(), s.worst_class = label;
    }
    out.push_back(s);
  }
  return out;
}

fs::path ClassifierTrainingConfig::network_file() const {
  return out.parent_path() / (out.stem().string() + ".network.safetensors");
}

namespace {

// The faceres crop of each listed photo's cached principal face, [rows, 224, 224, 3] uint8.
torch::Tensor faceres_crops(FaceresClassifier& faceres, const fs::path& images, const std::vector<std::string>& files,
                            const EmbeddingSet& embedded, const std::vector<int64_t>& rows) {
  std::vector<torch::Tensor> crops;
  for (int64_t row : rows) {
    const auto b = embedded.boxes[row];
    FaceBox box{b[0].item<float>(), b[1].item<float>(), b[2].item<float>(), b[3].item<float>(), b[4].item<float>(), {}};
    const FaceImage image = FaceImage::from(read_image(images / files[row]));
    crops.push_back(faceres.prepare(image, box).round().clamp(0, 255).to(torch::kByte).squeeze(0));
  }
  return torch::stack(crops);
}

}  // namespace

void validate(const ClassifierTrainingConfig& c) {
  require_directory(c.images, "images folder");
  require_file(c.labels_file(), "labels CSV");
  if (c.out.extension() != ".safetensors") {
    throw UsageError("heads file " + c.out.string() + " must end in .safetensors");
  }
  if (c.heads.kind != "mlp" && c.heads.kind != "linear") {
    throw UsageError("head kind '" + c.heads.kind + "' is not mlp or linear");
  }
  const std::vector<std::string> parts = face_embedder_parts(c.embedder);  // UsageError for unknown embedders
  if (c.tune_network) {
    try {
      const torch::Device device(c.tuning.device);
      if (device.is_cuda() && !torch::cuda::is_available()) {
        throw UsageError("--tune-device " + c.tuning.device + ": this machine has no CUDA device");
      }
    } catch (const c10::Error&) {
      throw UsageError("--tune-device '" + c.tuning.device + "' is not a device (expected cpu, cuda or cuda:N)");
    }
  }
  if (c.tune_network && !c.tuned_network.empty()) {
    throw UsageError("--tune-network trains a network and --tuned-network uses one: give one of them");
  }
  if (c.tune_only && !c.tune_network) throw UsageError("--tune-only needs --tune-network");
  if (!c.tuned_network.empty()) require_file(c.tuned_network, "tuned network");
  if (c.tune_network || !c.tuned_network.empty()) {
    // The tuned parameters go into every faceres part; mobileface parts stay as shipped.
    bool faceres = false, other = false;
    for (const auto& part : parts) {
      faceres = faceres || part == "faceres" || part == "faceres@flip";
      other =
          other || !(part == "faceres" || part == "faceres@flip" || part == "mobileface" || part == "mobileface@flip");
    }
    if (!faceres || other) {
      throw UsageError(
          "--tune-network fine-tunes faceres: the embedder must have a faceres or faceres@flip part and "
          "no faceres-deep one, not '" +
          c.embedder + "'");
    }
  }
}

ClassifierTrainingResult train_classifier(const ClassifierTrainingConfig& c) {
  validate(c);
  ClassifierTrainingResult result;
  // Labels: FairFace's classes; unknown classes are rejected with their line numbers.
  const LabeledSet set = read_labeled_set(c.images, c.labels_file(), RaceTaxonomy::fairface7);
  std::set<std::string> excluded;
  if (!c.exclude.empty()) excluded = read_exclusions(c.exclude);
  std::vector<LabeledPhoto> photos;
  for (const auto& p : set.photos) {
    if (excluded.count(p.file)) {
      ++result.excluded;
      continue;
    }
    if (c.limit > 0 && static_cast<long long>(photos.size()) >= c.limit) break;
    photos.push_back(p);
  }
  if (photos.empty()) throw InputError(c.labels_file().string() + ": no photos left to train on after the exclusions");
  std::vector<std::string> files;
  for (const auto& p : photos) files.push_back(p.file);

  auto detector = make_detection_analyzer(c.profile);
  const Json settings = embedding_settings(c.embedder, c.profile);
  EmbeddingSet embedded = compute_named_embeddings(*detector, c.embedder, c.profile, c.images, files, c.cache_dir());

  const std::vector<std::string> genders = {"male", "female"};
  const std::vector<std::string>& races = race_labels(RaceTaxonomy::fairface7);
  const std::vector<std::string>& ages = fairface_age_ranges();
  HeadLabels gender{"gender", genders, {}}, race{"race", races, {}}, age{"age", ages, {}};
  std::vector<int64_t> rows;
  for (size_t i = 0; i < photos.size(); ++i) {
    if (!embedded.found[static_cast<int64_t>(i)].item<bool>()) continue;
    rows.push_back(static_cast<int64_t>(i));
    gender.targets.push_back(class_index(genders, photos[i].gender));
    race.targets.push_back(class_index(races, photos[i].race));
    age.targets.push_back(photos[i].age.empty() ? -1 : class_index(ages, photos[i].age));
  }
  result.labeled = static_cast<long long>(set.photos.size());
  result.photos = static_cast<long long>(photos.size());
  result.faces = static_cast<long long>(rows.size());
  result.without_face = result.photos - result.faces;
  std::printf("%lld photos, %lld left out by the exclusions, %lld without a detected face, %lld faces to train on\n",
              result.photos, result.excluded, result.without_face, result.faces);

  // The card's data: the embedding settings and what was trained on.
  auto data_card = [&](const Json& embedding) {
    Json data = embedding;
    data["images"] = c.images.string();
    data["labels"] = c.labels_file().string();
    data["labeled"] = set.photos.size();
    data["excluded"] = result.excluded;
    data["exclude"] = c.exclude;
    data["limit"] = c.limit;
    data["photos"] = photos.size();
    data["without_face"] = result.without_face;
    data["faces"] = rows.size();
    return data;
  };
  Json data = data_card(settings);
  // The heads train on a fine-tuned network's descriptors, embedded afresh through the same pipeline the default
  // profile runs (their own cache: other settings); the network file lies beside the heads, where their card says.
  auto embed_with_tuned = [&](const Json& tuning) {
    ProfileOptions options = c.profile;
    options.tuned_network = c.network_file();
    embedded = compute_named_embeddings(*detector, c.embedder, options, c.images, files, c.cache_dir() / "tuned");
    data = data_card(embedding_settings(c.embedder, options));
    data["tuned_network"] = c.network_file().filename().string();
    data["tuning"] = tuning;
  };
  if (c.tune_network) {
    // The network first, on the heads' training split only.
    const auto [train_rows, val_rows] = head_training_split({gender, race, age}, c.heads);
    ProfileOptions options = c.profile;
    validate_profile("gear", options);                                             // the models folder
    FaceresClassifier faceres(options.human_models_dir, faceres_config(options));  // the npm weights: no tuned file yet
    std::printf("cropping %zu faces for the network\n", rows.size());
    const torch::Tensor crops = faceres_crops(faceres, c.images, files, embedded, rows);
    // Resumable: the checkpoint lives in the cache, keyed by the photos, their labels and how they were cropped.
    NetworkTuningOptions tuning = c.tuning;
    tuning.checkpoint = c.cache_dir() / "network-tuning.pt";
    std::string listed;
    for (const auto& f : files) listed += f + "\n";
    tuning.checkpoint_key = {{"crops", embedding_settings("faceres", c.profile)},
                             {"files_sha256", sha256_hex(listed)},
                             {"labels_sha256", sha256_file(c.labels_file())},
                             {"heads_split", {{"holdout_fraction", c.heads.holdout_fraction}, {"seed", c.heads.seed}}}};
    const TunedNetwork tuned = tune_network(faceres.model(), faceres.input_name(), FaceresClassifier::descriptor_node(),
                                            crops, {gender, race, age}, train_rows, tuning);
    result.tuning_loss = tuned.epoch_loss;
    if (!c.out.parent_path().empty()) ensure_directory(c.out.parent_path(), "heads folder");
    TensorMap parameters(tuned.parameters.begin(), tuned.parameters.end());
    const Json tuning_card = {{"epochs", c.tuning.epochs},
                              {"batch_size", c.tuning.batch_size},
                              {"learning_rate", c.tuning.learning_rate},
                              {"heads_learning_rate", c.tuning.heads_learning_rate},
                              {"weight_decay", c.tuning.weight_decay},
                              {"flip", c.tuning.flip},
                              {"seed", c.tuning.seed},
                              {"device", c.tuning.device},
                              {"training_faces", train_rows.size()},
                              {"epoch_loss", tuned.epoch_loss}};
    // The file carries its own record (a later --tuned-network run copies it into its heads' card).
    write_safetensors(c.network_file(), parameters,
                      {{"format", "fairdiff-tuned-network-v1"},
                       {"model", "faceres"},
                       {"epochs", std::to_string(c.tuning.epochs)},
                       {"tuning", tuning_card.dump()}});
    if (c.tune_only) {
      result.network_only = true;
      return result;
    }
    embed_with_tuned(tuning_card);
  } else if (!c.tuned_network.empty()) {
    // A network tuned earlier (--tune-only, or another run's file): copied beside these heads.
    const SafetensorsFile given = read_safetensors(c.tuned_network);
    if (!given.metadata.count("format") || given.metadata.at("format") != "fairdiff-tuned-network-v1") {
      throw InputError(c.tuned_network.string() +
                       ": not a tuned network (expected the .network.safetensors that train-classifier "
                       "--tune-network writes)");
    }
    if (!c.out.parent_path().empty()) ensure_directory(c.out.parent_path(), "heads folder");
    if (!fs::exists(c.network_file()) || !fs::equivalent(c.tuned_network, c.network_file())) {
      fs::copy_file(c.tuned_network, c.network_file(), fs::copy_options::overwrite_existing);
    }
    Json tuning = Json::object();
    if (given.metadata.count("tuning")) {
      try {
        tuning = Json::parse(given.metadata.at("tuning"));
      } catch (const Json::exception&) {
        throw InputError(c.tuned_network.string() + ": its 'tuning' metadata is not JSON");
      }
    }
    tuning["from"] = c.tuned_network.string();
    embed_with_tuned(tuning);
  }
  AttributeHeads heads = train_attribute_heads(embedded.embeddings.index_select(0, torch::tensor(rows, torch::kLong)),
                                               {gender, race, age}, c.heads, data);

  if (!c.out.parent_path().empty()) ensure_directory(c.out.parent_path(), "heads folder");
  heads.save(c.out);
  write_json_file(c.card_file(), heads.card);
  Json confusion = Json::object();
  for (const Json& head : heads.card["heads"]) {
    confusion[head["attribute"].get<std::string>()] = {{"labels", head["validation"]["labels"]},
                                                       {"confusion", head["validation"]["confusion"]}};
  }
  write_json_file(c.confusion_file(), confusion);
  result.heads = head_summaries(heads.card);
  return result;
}

}  // namespace fairdiff
