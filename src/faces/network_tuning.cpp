#include "faces/network_tuning.h"

#include <torch/serialize.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/sha256.h"

namespace fairdiff {
namespace {

void check(const torch::Tensor& crops, const std::vector<HeadLabels>& labels, const std::vector<int64_t>& rows,
           const NetworkTuningOptions& o) {
  if (o.epochs < 1) throw UsageError("network tuning: epochs must be at least 1, got " + std::to_string(o.epochs));
  if (o.batch_size < 1) throw UsageError("network tuning: batch size must be at least 1");
  if (!(o.checkpoint_seconds >= 0)) throw UsageError("network tuning: checkpoint interval must be >= 0 seconds");
  if (!(o.learning_rate > 0) || !(o.heads_learning_rate > 0) || !(o.weight_decay >= 0)) {
    throw UsageError("network tuning: learning rates must be > 0 and weight decay >= 0");
  }
  if (crops.dim() != 4 || crops.size(3) != 3 || crops.scalar_type() != torch::kByte) {
    throw UsageError("network tuning: crops must be [N, S, S, 3] uint8, got " + c10::str(crops.sizes()));
  }
  if (labels.empty()) throw UsageError("network tuning: no attributes to train for");
  for (const auto& l : labels) {
    if (static_cast<int64_t>(l.targets.size()) != crops.size(0)) {
      throw UsageError("network tuning: " + l.attribute + " has " + std::to_string(l.targets.size()) + " targets for " +
                       std::to_string(crops.size(0)) + " crops");
    }
  }
  if (rows.empty()) throw UsageError("network tuning: no training rows");
  for (int64_t r : rows) {
    if (r < 0 || r >= crops.size(0)) throw UsageError("network tuning: row " + std::to_string(r) + " out of range");
  }
}

// Where a run stands between two batches: what a checkpoint holds besides the weights and the optimizers.
struct Position {
  int epoch = 0;
  int64_t batch = 0;      // the next batch of `epoch`
  bool shuffled = false;  // `order` is already this epoch's
  double loss_sum = 0;    // of the epoch's batches so far
  std::vector<int64_t> order;
  std::vector<double> epoch_loss;
};

// What a checkpoint must agree on to be resumed: the caller's description of the data and every option that
// changes the trajectory (the number of epochs does not: a longer run passes through the shorter one's states).
Json resume_settings(const NetworkTuningOptions& o, const std::vector<int64_t>& rows,
                     const std::vector<std::pair<std::string, torch::Tensor>>& parameters) {
  std::string names;
  for (const auto& [name, tensor] : parameters) names += name + "\n";
  return {{"format", "fairdiff-network-tuning-checkpoint-v1"},
          {"data", o.checkpoint_key},
          {"rows", rows.size()},
          {"rows_sha256",
           sha256_hex(std::string(reinterpret_cast<const char*>(rows.data()), rows.size() * sizeof(int64_t)))},
          {"parameters_sha256", sha256_hex(names)},
          {"batch_size", o.batch_size},
          {"learning_rate", o.learning_rate},
          {"heads_learning_rate", o.heads_learning_rate},
          {"weight_decay", o.weight_decay},
          {"flip", o.flip},
          {"seed", o.seed}};
}

using Parameters = std::vector<std::pair<std::string, torch::Tensor>>;

// Written to a temporary file and renamed over the old one: a crash while saving leaves the previous checkpoint.
void save_checkpoint(const std::filesystem::path& path, const Json& settings, const Parameters& network,
                     const std::vector<torch::nn::Linear>& heads, const torch::optim::AdamW& network_opt,
                     const torch::optim::AdamW& heads_opt, const Position& at, const std::mt19937_64& rng) {
  torch::serialize::OutputArchive archive;
  archive.write("settings", c10::IValue(settings.dump()));
  archive.write("epoch", c10::IValue(static_cast<int64_t>(at.epoch)));
  archive.write("batch", c10::IValue(at.batch));
  archive.write("shuffled", c10::IValue(at.shuffled));
  archive.write("loss_sum", c10::IValue(at.loss_sum));
  archive.write("order", torch::tensor(at.order, torch::kLong));
  archive.write("epoch_loss", torch::tensor(at.epoch_loss, torch::kDouble));
  std::ostringstream state;
  state << rng;
  archive.write("rng", c10::IValue(state.str()));
  for (size_t i = 0; i < network.size(); ++i) {
    archive.write("network_" + std::to_string(i), network[i].second.detach().to(torch::kCPU));
  }
  for (size_t h = 0; h < heads.size(); ++h) {
    archive.write("head_" + std::to_string(h) + "_weight", heads[h]->weight.detach().to(torch::kCPU));
    archive.write("head_" + std::to_string(h) + "_bias", heads[h]->bias.detach().to(torch::kCPU));
  }
  torch::serialize::OutputArchive network_state, heads_state;
  network_opt.save(network_state);
  heads_opt.save(heads_state);
  archive.write("network_optimizer", network_state);
  archive.write("heads_optimizer", heads_state);
  if (!path.parent_path().empty()) ensure_directory(path.parent_path(), "network tuning checkpoint folder");
  const std::filesystem::path partial = path.string() + ".partial";
  archive.save_to(partial.string());
  std::filesystem::rename(partial, path);
}

// Loads a checkpoint into the model, the linear layers and the optimizers when it belongs to this run; returns
// where it stands, or nothing (with the reason printed) when there is none to resume.
std::optional<Position> load_checkpoint(const std::filesystem::path& path, const Json& settings, int epochs,
                                        const torch::Device& device, const Parameters& network,
                                        std::vector<torch::nn::Linear>& heads, torch::optim::AdamW& network_opt,
                                        torch::optim::AdamW& heads_opt, std::mt19937_64& rng) {
  if (path.empty() || !std::filesystem::exists(path)) return std::nullopt;
  auto refuse = [&](const std::string& why) -> std::optional<Position> {
    std::fprintf(stderr, "network tuning checkpoint %s %s: starting over\n", path.string().c_str(), why.c_str());
    return std::nullopt;
  };
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path.string(), device);
    c10::IValue value;
    archive.read("settings", value);
    if (Json::parse(value.toStringRef()) != settings) return refuse("was made for other data or options");
    Position at;
    archive.read("epoch", value);
    at.epoch = static_cast<int>(value.toInt());
    if (at.epoch > epochs) return refuse("has gone past the " + std::to_string(epochs) + " epochs asked for");
    archive.read("batch", value);
    at.batch = value.toInt();
    archive.read("shuffled", value);
    at.shuffled = value.toBool();
    archive.read("loss_sum", value);
    at.loss_sum = value.toDouble();
    torch::Tensor order, epoch_loss;
    archive.read("order", order);
    archive.read("epoch_loss", epoch_loss);
    order = order.to(torch::kCPU).contiguous();
    epoch_loss = epoch_loss.to(torch::kCPU).contiguous();
    at.order.assign(order.data_ptr<int64_t>(), order.data_ptr<int64_t>() + order.numel());
    at.epoch_loss.assign(epoch_loss.data_ptr<double>(), epoch_loss.data_ptr<double>() + epoch_loss.numel());
    archive.read("rng", value);
    std::istringstream state(value.toStringRef());
    state >> rng;
    if (state.fail()) return refuse("holds an unreadable random generator state");
    torch::NoGradGuard no_grad;
    auto restore = [&](const std::string& key, const torch::Tensor& into) {
      torch::Tensor saved;
      archive.read(key, saved);
      if (saved.sizes() != into.sizes()) throw InputError(key + " has shape " + c10::str(saved.sizes()));
      into.copy_(saved);
    };
    for (size_t i = 0; i < network.size(); ++i) restore("network_" + std::to_string(i), network[i].second);
    for (size_t h = 0; h < heads.size(); ++h) {
      restore("head_" + std::to_string(h) + "_weight", heads[h]->weight);
      restore("head_" + std::to_string(h) + "_bias", heads[h]->bias);
    }
    torch::serialize::InputArchive network_state, heads_state;
    archive.read("network_optimizer", network_state);
    archive.read("heads_optimizer", heads_state);
    network_opt.load(network_state);
    heads_opt.load(heads_state);
    return at;
  } catch (const std::exception& e) {
    return refuse(std::string("cannot be read (") + e.what() + ")");
  }
}

}  // namespace

TunedNetwork tune_network(tfjs::GraphModel& model, const std::string& input, const std::string& descriptor,
                          const torch::Tensor& crops, const std::vector<HeadLabels>& labels,
                          const std::vector<int64_t>& rows, const NetworkTuningOptions& o) {
  check(crops, labels, rows, o);
  const torch::Device device(o.device);
  model.to(device);
  torch::manual_seed(o.seed);
  std::mt19937_64 rng(o.seed);

  auto batch_input = [&](const std::vector<int64_t>& batch, bool flip) {
    torch::Tensor x = crops.index_select(0, torch::tensor(batch, torch::kLong)).to(device).to(torch::kFloat);
    if (!flip) return x;
    std::vector<int64_t> mirrored(batch.size());
    for (auto& m : mirrored) m = static_cast<int64_t>(rng() & 1);
    const torch::Tensor mask = torch::tensor(mirrored).to(device).to(torch::kBool);
    return torch::where(mask.view({-1, 1, 1, 1}), x.flip({2}), x);  // [N, S, S, 3]: dimension 2 is the width
  };

  int64_t dim = 0;
  {
    torch::NoGradGuard no_grad;
    dim = model.execute({{input, batch_input({rows.front()}, false)}}, {descriptor})[0].numel();
  }
  std::vector<torch::nn::Linear> heads;
  std::vector<torch::Tensor> weights, targets;
  std::vector<torch::Tensor> head_params;
  for (const auto& l : labels) {
    heads.emplace_back(dim, static_cast<int64_t>(l.classes.size()));
    heads.back()->to(device);
    for (const auto& p : heads.back()->parameters()) head_params.push_back(p);
    targets.push_back(torch::tensor(l.targets, torch::kLong));  // on the host: batches select from it there
    const torch::Tensor train = targets.back().index_select(0, torch::tensor(rows, torch::kLong));
    weights.push_back(
        balanced_class_weights(train.index({train.ge(0)}), static_cast<int64_t>(l.classes.size())).to(device));
  }
  model.set_trainable([](const std::string&) { return true; });
  const Parameters network = model.parameters();
  std::vector<torch::Tensor> network_params;
  for (const auto& [name, tensor] : network) network_params.push_back(tensor);
  torch::optim::AdamW network_opt(network_params,
                                  torch::optim::AdamWOptions(o.learning_rate).weight_decay(o.weight_decay));
  torch::optim::AdamW heads_opt(head_params,
                                torch::optim::AdamWOptions(o.heads_learning_rate).weight_decay(o.weight_decay));

  TunedNetwork result;
  const Json settings = resume_settings(o, rows, network);
  Position at;
  at.order = rows;
  {
    // A checkpoint that fails to load part-way must not leave its values behind: keep the starting state.
    std::vector<torch::Tensor> start;
    for (const auto& [name, tensor] : network) start.push_back(tensor.detach().clone());
    for (const auto& p : head_params) start.push_back(p.detach().clone());
    if (auto loaded =
            load_checkpoint(o.checkpoint, settings, o.epochs, device, network, heads, network_opt, heads_opt, rng)) {
      at = *loaded;
      result.resumed_epoch = at.epoch;
      result.resumed_batch = at.batch;
      if (at.epoch == o.epochs) {
        std::printf("network tuning: %s holds the finished run\n", o.checkpoint.string().c_str());
      } else {
        std::printf("network tuning: resuming %s at epoch %d, batch %lld\n", o.checkpoint.string().c_str(),
                    at.epoch + 1, static_cast<long long>(at.batch));
      }
    } else if (!o.checkpoint.empty() && std::filesystem::exists(o.checkpoint)) {
      torch::NoGradGuard no_grad;
      size_t i = 0;
      for (const auto& [name, tensor] : network) tensor.copy_(start[i++]);
      for (const auto& p : head_params) p.copy_(start[i++]);
      network_opt.state().clear();
      heads_opt.state().clear();
      rng.seed(o.seed);
    }
  }
  auto save = [&] {
    if (!o.checkpoint.empty()) save_checkpoint(o.checkpoint, settings, network, heads, network_opt, heads_opt, at, rng);
  };
  const int64_t batches = (static_cast<int64_t>(at.order.size()) + o.batch_size - 1) / o.batch_size;
  std::optional<Progress> progress;
  if (o.show_progress && at.epoch < o.epochs) {
    progress.emplace("tuning the network", o.epochs * batches, at.epoch * batches + at.batch, "batches");
  }
  auto last_save = std::chrono::steady_clock::now();
  try {
    while (at.epoch < o.epochs) {
      if (!at.shuffled) {
        for (size_t i = at.order.size(); i > 1; --i) std::swap(at.order[i - 1], at.order[rng() % i]);  // Fisher-Yates
        at.shuffled = true;
      }
      while (at.batch < batches) {
        check_interrupt();
        const auto begin = at.order.begin() + at.batch * o.batch_size;
        const std::vector<int64_t> batch(begin, std::min(at.order.end(), begin + o.batch_size));
        const torch::Tensor rows_t = torch::tensor(batch, torch::kLong);
        torch::Tensor d = model.execute({{input, batch_input(batch, o.flip)}}, {descriptor})[0];
        d = torch::nn::functional::normalize(d.reshape({d.size(0), -1}),
                                             torch::nn::functional::NormalizeFuncOptions().dim(1));
        torch::Tensor loss = torch::zeros({}, d.options());
        for (size_t h = 0; h < heads.size(); ++h) {
          // Which faces of the batch have this attribute's label, decided on the host (no device sync).
          const torch::Tensor t = targets[h].index_select(0, rows_t);
          const torch::Tensor known = t.ge(0).nonzero().squeeze(1);
          if (known.numel() == 0) continue;
          loss = loss + torch::nn::functional::cross_entropy(
                            heads[h](d.index_select(0, known.to(device))), t.index_select(0, known).to(device),
                            torch::nn::functional::CrossEntropyFuncOptions().weight(weights[h]));
        }
        network_opt.zero_grad();
        heads_opt.zero_grad();
        loss.backward();
        network_opt.step();
        heads_opt.step();
        at.loss_sum += loss.item<double>();
        ++at.batch;
        if (progress) progress->advance();
        if (o.after_batch) o.after_batch();
        const auto now = std::chrono::steady_clock::now();
        if (at.batch < batches && std::chrono::duration<double>(now - last_save).count() >= o.checkpoint_seconds) {
          save();
          last_save = now;
        }
      }
      at.epoch_loss.push_back(at.loss_sum / static_cast<double>(batches));
      ++at.epoch;
      at.batch = 0, at.shuffled = false, at.loss_sum = 0;
      save();
      last_save = std::chrono::steady_clock::now();
    }
  } catch (const InterruptedError&) {
    model.set_trainable({});
    save();  // between two batches: the state is whole
    if (!o.checkpoint.empty())
      std::fprintf(stderr, "network tuning state saved to %s\n", o.checkpoint.string().c_str());
    throw;
  } catch (...) {
    model.set_trainable({});
    throw;
  }
  result.epoch_loss = at.epoch_loss;
  model.set_trainable({});
  if (progress) progress->finish();
  for (const auto& [name, tensor] : model.parameters()) {
    result.parameters[name] = tensor.detach().to(torch::kCPU, torch::kFloat32).clone();
  }
  return result;
}

}  // namespace fairdiff
