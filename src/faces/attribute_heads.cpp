#include "faces/attribute_heads.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <random>

#include "core/error.h"
#include "core/safetensors.h"
#include "faces/evaluation.h"
#include "faces/taxonomy.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

const char* kFormat = "fairdiff-attribute-heads-1";

// Training is single-threaded so that the same inputs give the same bytes on any machine.
class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int threads) : saved_(at::get_num_threads()) { at::set_num_threads(threads); }
  ~ThreadCountGuard() { at::set_num_threads(saved_); }

 private:
  int saved_;
};

// Stratified split: within each stratum (key), a seeded shuffle puts round(fraction * size) rows into the
// validation set. Returns (train rows, validation rows), each in ascending order.
std::pair<std::vector<int64_t>, std::vector<int64_t>> stratified_split(const std::vector<int64_t>& keys,
                                                                       double fraction, uint64_t seed) {
  std::map<int64_t, std::vector<int64_t>> strata;
  for (size_t i = 0; i < keys.size(); ++i) strata[keys[i]].push_back(static_cast<int64_t>(i));
  std::mt19937_64 rng(seed);
  std::vector<char> is_val(keys.size(), 0);
  for (auto& [key, rows] : strata) {
    for (size_t i = rows.size(); i > 1; --i) std::swap(rows[i - 1], rows[rng() % i]);  // Fisher-Yates
    const auto take = static_cast<size_t>(std::llround(fraction * static_cast<double>(rows.size())));
    for (size_t i = 0; i < take && i < rows.size(); ++i) is_val[rows[i]] = 1;
  }
  std::vector<int64_t> train, val;
  for (size_t i = 0; i < keys.size(); ++i) (is_val[i] ? val : train).push_back(static_cast<int64_t>(i));
  return {train, val};
}

torch::Tensor index_rows(const torch::Tensor& x, const std::vector<int64_t>& rows) {
  return x.index_select(0, torch::tensor(rows, torch::kLong));
}

Json head_evaluation(const AttributeHead& head, const torch::Tensor& logits, const torch::Tensor& targets) {
  ConfusionMatrix confusion(head.classes);
  const torch::Tensor predicted = logits.argmax(1);
  auto p = predicted.accessor<int64_t, 1>();
  auto t = targets.accessor<int64_t, 1>();
  for (int64_t i = 0; i < targets.size(0); ++i) confusion.add(head.classes[t[i]], head.classes[p[i]]);
  double recall_sum = 0;
  for (size_t c = 0; c < head.classes.size(); ++c) recall_sum += confusion.recall(c);
  Json out = confusion.to_json();
  out["balanced_accuracy"] = recall_sum / static_cast<double>(head.classes.size());
  out["ece_uncalibrated"] = expected_calibration_error(torch::softmax(logits, 1), targets);
  out["ece"] = expected_calibration_error(torch::softmax(logits / head.temperature, 1), targets);
  out["nll_uncalibrated"] = torch::nll_loss(torch::log_softmax(logits, 1), targets).item<double>();
  out["nll"] = torch::nll_loss(torch::log_softmax(logits / head.temperature, 1), targets).item<double>();
  return out;
}

torch::Tensor uniform_init(std::vector<int64_t> shape, int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return (torch::rand(shape) * 2 - 1).mul_(bound).requires_grad_(true);
}

// The head's tensors in a fixed order (hidden layer first when there is one).
std::vector<torch::Tensor> head_parameters(const AttributeHead& head) {
  std::vector<torch::Tensor> all;
  for (const auto& t : {head.hidden_weight, head.hidden_bias, head.out_weight, head.out_bias}) {
    if (t.defined()) all.push_back(t);
  }
  return all;
}

// Trains one head; returns it with its training record.
AttributeHead train_head(const HeadLabels& labels, const torch::Tensor& x_train, const torch::Tensor& y_train,
                         const torch::Tensor& x_val, const torch::Tensor& y_val, const HeadTrainingOptions& options,
                         uint64_t seed, Json* record) {
  const auto classes = static_cast<int64_t>(labels.classes.size());
  const int64_t dim = x_train.size(1), n = x_train.size(0);
  if (n == 0) throw InputError("no training faces with a known " + labels.attribute + " label");
  torch::manual_seed(seed);
  AttributeHead head;  // trained in place, then set to the best epoch's values
  head.attribute = labels.attribute;
  head.classes = labels.classes;
  int64_t out_in = dim;
  if (options.kind == "mlp") {
    head.hidden_weight = uniform_init({options.hidden, dim}, dim);
    head.hidden_bias = uniform_init({options.hidden}, dim);
    out_in = options.hidden;
  }
  head.out_weight = uniform_init({classes, out_in}, out_in);
  head.out_bias = uniform_init({classes}, out_in);
  const std::vector<torch::Tensor> parameters = head_parameters(head);

  const torch::Tensor weights = balanced_class_weights(y_train, classes);

  torch::optim::AdamW optimizer(parameters,
                                torch::optim::AdamWOptions(options.learning_rate).weight_decay(options.weight_decay));
  double best_loss = INFINITY;
  int best_epoch = 0, epoch = 0, since_best = 0;
  std::vector<torch::Tensor> best;
  for (const auto& t : parameters) best.push_back(t.detach().clone());
  for (epoch = 1; epoch <= options.max_epochs; ++epoch) {
    const torch::Tensor order = torch::randperm(n, torch::kLong);
    for (int64_t start = 0; start < n; start += options.batch_size) {
      const torch::Tensor rows = order.slice(0, start, std::min(n, start + options.batch_size));
      optimizer.zero_grad();
      torch::Tensor loss = torch::nn::functional::cross_entropy(
          head.logits(x_train.index_select(0, rows)), y_train.index_select(0, rows),
          torch::nn::functional::CrossEntropyFuncOptions().weight(weights));
      loss.backward();
      optimizer.step();
    }
    double val_loss = 0;
    {
      torch::NoGradGuard no_grad;
      val_loss = torch::nn::functional::cross_entropy(head.logits(x_val), y_val,
                                                      torch::nn::functional::CrossEntropyFuncOptions().weight(weights))
                     .item<double>();
    }
    if (val_loss < best_loss - 1e-6) {
      best_loss = val_loss;
      best_epoch = epoch;
      since_best = 0;
      for (size_t i = 0; i < parameters.size(); ++i) best[i] = parameters[i].detach().clone();
    } else if (++since_best >= options.patience) {
      break;
    }
    if (options.show_progress) {
      std::fprintf(stderr, "\r%s head: epoch %d, validation loss %.4f (best %.4f at epoch %d)   ",
                   labels.attribute.c_str(), epoch, val_loss, best_loss, best_epoch);
    }
  }
  if (options.show_progress) std::fprintf(stderr, "\n");

  size_t i = 0;
  if (options.kind == "mlp") head.hidden_weight = best[i++], head.hidden_bias = best[i++];
  head.out_weight = best[i++];
  head.out_bias = best[i++];
  torch::Tensor val_logits;
  {
    torch::NoGradGuard no_grad;
    val_logits = head.logits(x_val);
  }
  head.temperature = fit_temperature(val_logits, y_val);
  Json r;
  r["kind"] = options.kind;
  if (options.kind == "mlp") r["hidden"] = options.hidden;
  r["epochs_run"] = std::min(epoch, options.max_epochs);
  r["best_epoch"] = best_epoch;
  r["temperature"] = head.temperature;
  r["class_weights"] = std::vector<float>(weights.data_ptr<float>(), weights.data_ptr<float>() + classes);
  const torch::Tensor support = torch::bincount(y_train, {}, classes).contiguous();
  r["train_support"] = std::vector<int64_t>(support.data_ptr<int64_t>(), support.data_ptr<int64_t>() + classes);
  r["validation"] = head_evaluation(head, val_logits, y_val);
  *record = r;
  return head;
}

torch::Tensor require_tensor(const SafetensorsFile& file, const std::string& name, const fs::path& path,
                             std::vector<int64_t> shape) {
  auto it = file.tensors.find(name);
  if (it == file.tensors.end()) throw InputError(path.string() + ": missing tensor '" + name + "' (not a heads file?)");
  if (it->second.scalar_type() != torch::kFloat) throw InputError(path.string() + ": tensor '" + name + "' is not F32");
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) shape[i] = it->second.dim() == static_cast<int64_t>(shape.size()) ? it->second.size(i) : -1;
  }
  if (it->second.sizes().vec() != shape) {
    throw InputError(path.string() + ": tensor '" + name + "' has shape " + torch::str(it->second.sizes()) +
                     ", expected " + torch::str(torch::IntArrayRef(shape)));
  }
  return it->second;
}

}  // namespace

torch::Tensor AttributeHead::logits(const torch::Tensor& x) const {
  torch::Tensor h = x;
  if (hidden_weight.defined()) h = torch::relu(torch::addmm(hidden_bias, h, hidden_weight.t()));
  return torch::addmm(out_bias, h, out_weight.t());
}

const AttributeHead* AttributeHeads::find(const std::string& attribute) const {
  for (const auto& h : heads) {
    if (h.attribute == attribute) return &h;
  }
  return nullptr;
}

torch::Tensor AttributeHeads::standardize(const torch::Tensor& embeddings) const {
  return (l2_normalize(embeddings.to(torch::kFloat)) - mean) / scale;
}

torch::Tensor AttributeHeads::probabilities(const AttributeHead& head, const torch::Tensor& embeddings) const {
  torch::NoGradGuard no_grad;
  return torch::softmax(head.logits(standardize(embeddings)) / head.temperature, 1);
}

void AttributeHeads::save(const fs::path& path) const {
  TensorMap tensors = {{"embedding.mean", mean}, {"embedding.scale", scale}};
  for (const auto& h : heads) {
    if (h.hidden_weight.defined()) {
      tensors[h.attribute + ".hidden.weight"] = h.hidden_weight;
      tensors[h.attribute + ".hidden.bias"] = h.hidden_bias;
    }
    tensors[h.attribute + ".out.weight"] = h.out_weight;
    tensors[h.attribute + ".out.bias"] = h.out_bias;
    tensors[h.attribute + ".temperature"] = torch::tensor({static_cast<float>(h.temperature)});
  }
  write_safetensors(path, tensors, {{"format", kFormat}, {"card", card.dump()}});
}

AttributeHeads AttributeHeads::load(const fs::path& path) {
  SafetensorsFile file = read_safetensors(path);
  if (!file.metadata.count("format") || file.metadata.at("format") != kFormat) {
    throw InputError(path.string() + ": not a fairdiff attribute-heads file (metadata format '" + std::string(kFormat) +
                     "' expected; make one with `fairdiff train-classifier`)");
  }
  AttributeHeads heads;
  try {
    heads.card = Json::parse(file.metadata.count("card") ? file.metadata.at("card") : "");
  } catch (const Json::exception& e) {
    throw InputError(path.string() + ": its card (metadata \"card\") is not JSON: " + e.what());
  }
  heads.mean = require_tensor(file, "embedding.mean", path, {-1});
  const int64_t dim = heads.mean.numel();
  heads.scale = require_tensor(file, "embedding.scale", path, {dim});
  const std::string where = path.string() + " card";
  for (const Json& entry : json_require<Json>(heads.card, "heads", where)) {
    AttributeHead h;
    h.attribute = json_require<std::string>(entry, "attribute", where);
    h.classes = json_require<std::vector<std::string>>(entry, "classes", where);
    const auto classes = static_cast<int64_t>(h.classes.size());
    int64_t in = dim;
    if (file.tensors.count(h.attribute + ".hidden.weight")) {
      h.hidden_weight = require_tensor(file, h.attribute + ".hidden.weight", path, {-1, dim});
      in = h.hidden_weight.size(0);
      h.hidden_bias = require_tensor(file, h.attribute + ".hidden.bias", path, {in});
    }
    h.out_weight = require_tensor(file, h.attribute + ".out.weight", path, {classes, in});
    h.out_bias = require_tensor(file, h.attribute + ".out.bias", path, {classes});
    h.temperature = require_tensor(file, h.attribute + ".temperature", path, {1}).item<double>();
    if (!(h.temperature > 0)) throw InputError(path.string() + ": " + h.attribute + ".temperature is not positive");
    heads.heads.push_back(std::move(h));
  }
  if (heads.heads.empty()) throw InputError(path.string() + ": its card lists no heads");
  return heads;
}

double expected_calibration_error(const torch::Tensor& probabilities, const torch::Tensor& targets, int bins) {
  auto [confidence, predicted] = probabilities.max(1);
  const torch::Tensor c = confidence.to(torch::kDouble).contiguous();
  auto conf = c.accessor<double, 1>();
  auto p = predicted.accessor<int64_t, 1>();
  auto t = targets.accessor<int64_t, 1>();
  CalibrationBins calibration(bins);
  for (int64_t i = 0; i < c.size(0); ++i) calibration.add(conf[i], p[i] == t[i]);
  return calibration.ece();
}

double fit_temperature(const torch::Tensor& logits, const torch::Tensor& targets) {
  const torch::Tensor z = logits.to(torch::kDouble);
  auto nll = [&](double log_t) {
    return torch::nll_loss(torch::log_softmax(z / std::exp(log_t), 1), targets).item<double>();
  };
  // Golden-section search on log T in [log 0.05, log 20]; the NLL is unimodal in T.
  const double phi = (std::sqrt(5.0) - 1) / 2;
  double a = std::log(0.05), b = std::log(20.0);
  double c = b - phi * (b - a), d = a + phi * (b - a);
  double fc = nll(c), fd = nll(d);
  for (int i = 0; i < 80; ++i) {
    if (fc < fd) {
      b = d, d = c, fd = fc;
      c = b - phi * (b - a), fc = nll(c);
    } else {
      a = c, c = d, fc = fd;
      d = a + phi * (b - a), fd = nll(d);
    }
  }
  return std::exp((a + b) / 2);
}

torch::Tensor balanced_class_weights(const torch::Tensor& targets, int64_t classes) {
  const torch::Tensor counts = torch::bincount(targets, {}, classes).to(torch::kFloat);
  return torch::where(counts > 0, static_cast<double>(targets.numel()) / (static_cast<double>(classes) * counts),
                      torch::zeros_like(counts));
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> head_training_split(const std::vector<HeadLabels>& labels,
                                                                          const HeadTrainingOptions& options) {
  if (labels.empty()) return {};
  // Stratify the validation split by the first two attributes' classes (gender x race).
  const auto n = static_cast<int64_t>(labels.front().targets.size());
  std::vector<int64_t> keys(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t key = 0;
    for (size_t h = 0; h < std::min<size_t>(2, labels.size()); ++h) {
      key = key * (static_cast<int64_t>(labels[h].classes.size()) + 1) + labels[h].targets[i] + 1;
    }
    keys[i] = key;
  }
  return stratified_split(keys, options.holdout_fraction, options.seed);
}

AttributeHeads train_attribute_heads(const torch::Tensor& embeddings, const std::vector<HeadLabels>& labels,
                                     const HeadTrainingOptions& options, const Json& data_card) {
  if (options.kind != "mlp" && options.kind != "linear") {
    throw UsageError("head kind '" + options.kind + "' is not mlp or linear");
  }
  if (!(options.holdout_fraction > 0 && options.holdout_fraction < 1)) {
    throw UsageError("holdout fraction must be in (0, 1), got " + std::to_string(options.holdout_fraction));
  }
  if (labels.empty()) throw UsageError("no attributes to train heads for");
  const int64_t n = embeddings.size(0);
  for (const auto& l : labels) {
    if (static_cast<int64_t>(l.targets.size()) != n) {
      throw UsageError(l.attribute + " labels: " + std::to_string(l.targets.size()) + " targets for " +
                       std::to_string(n) + " embeddings");
    }
  }
  ThreadCountGuard single_thread(1);

  auto [train_rows, val_rows] = head_training_split(labels, options);
  if (train_rows.empty() || val_rows.empty()) {
    throw InputError("too few faces (" + std::to_string(n) + ") for a training and a validation split");
  }

  AttributeHeads heads;
  const torch::Tensor normalized = l2_normalize(embeddings.to(torch::kFloat));
  const torch::Tensor train_x = index_rows(normalized, train_rows);
  heads.mean = train_x.mean(0);
  heads.scale = train_x.std(0).clamp_min(1e-6);
  const torch::Tensor x = (normalized - heads.mean) / heads.scale;

  Json card;
  card["format"] = kFormat;
  card["data"] = data_card;
  card["split"] = {
      {"seed", options.seed},
      {"holdout_fraction", options.holdout_fraction},
      {"stratified_by", labels.size() >= 2 ? labels[0].attribute + " x " + labels[1].attribute : labels[0].attribute},
      {"train", train_rows.size()},
      {"validation", val_rows.size()}};
  card["training"] = {{"kind", options.kind},
                      {"hidden", options.kind == "mlp" ? options.hidden : 0},
                      {"optimizer", "AdamW"},
                      {"learning_rate", options.learning_rate},
                      {"weight_decay", options.weight_decay},
                      {"batch_size", options.batch_size},
                      {"max_epochs", options.max_epochs},
                      {"patience", options.patience},
                      {"loss", "class-weighted cross-entropy (weights n / (C n_c)), early stopping on it"},
                      {"calibration", "temperature scaling on the validation split (NLL, golden-section search)"},
                      {"embedding_transform", "L2-normalised, then standardised with the training split's mean/std"}};
  card["heads"] = Json::array();
  for (size_t h = 0; h < labels.size(); ++h) {
    const HeadLabels& l = labels[h];
    std::vector<int64_t> tr, va;
    for (int64_t r : train_rows) {
      if (l.targets[r] >= 0) tr.push_back(r);
    }
    for (int64_t r : val_rows) {
      if (l.targets[r] >= 0) va.push_back(r);
    }
    for (int64_t r : tr) {
      if (l.targets[r] >= static_cast<int64_t>(l.classes.size())) {
        throw UsageError(l.attribute + " target " + std::to_string(l.targets[r]) + " is out of range");
      }
    }
    const torch::Tensor targets = torch::tensor(l.targets, torch::kLong);
    Json record;
    AttributeHead head = train_head(l, index_rows(x, tr), index_rows(targets, tr), index_rows(x, va),
                                    index_rows(targets, va), options, options.seed * 1000003ULL + h, &record);
    record["attribute"] = l.attribute;
    record["classes"] = l.classes;
    card["heads"].push_back(record);
    heads.heads.push_back(std::move(head));
  }
  heads.card = card;
  return heads;
}

EmbeddingHeadClassifier::EmbeddingHeadClassifier(std::shared_ptr<FaceEmbedder> embedder, AttributeHeads heads,
                                                 std::string name)
    : embedder_(std::move(embedder)), heads_(std::move(heads)), name_(std::move(name)) {
  if (embedder_->embedding_size() != heads_.embedding_size()) {
    throw InputError("attribute heads expect " + std::to_string(heads_.embedding_size()) + "-d embeddings, but " +
                     embedder_->name() + " gives " + std::to_string(embedder_->embedding_size()));
  }
}

std::vector<AttributePrediction> EmbeddingHeadClassifier::classify(const FaceImage& image, const FaceBox& face) {
  const torch::Tensor embedding = embedder_->embed(image, face).reshape({1, -1});
  std::vector<AttributePrediction> out;
  for (const auto& head : heads_.heads) {
    const torch::Tensor p = heads_.probabilities(head, embedding).reshape({-1}).contiguous();
    AttributePrediction prediction{head.attribute,
                                   name_,
                                   head.classes,
                                   std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + p.numel()),
                                   {}};
    if (head.attribute == "age") {
      float years = 0;
      for (size_t c = 0; c < head.classes.size(); ++c) {
        years += prediction.probabilities[c] * static_cast<float>(fairface_age_midpoint(head.classes[c]));
      }
      prediction.years = years;
    }
    out.push_back(std::move(prediction));
  }
  return out;
}

}  // namespace fairdiff
