#include "faces/network_tuning.h"

#include <algorithm>
#include <optional>
#include <random>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/progress.h"

namespace fairdiff {
namespace {

void check(const torch::Tensor& crops, const std::vector<HeadLabels>& labels, const std::vector<int64_t>& rows,
           const NetworkTuningOptions& o) {
  if (o.epochs < 1) throw UsageError("network tuning: epochs must be at least 1, got " + std::to_string(o.epochs));
  if (o.batch_size < 1) throw UsageError("network tuning: batch size must be at least 1");
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
  std::vector<torch::Tensor> network_params;
  for (const auto& [name, tensor] : model.parameters()) network_params.push_back(tensor);
  torch::optim::AdamW network_opt(network_params,
                                  torch::optim::AdamWOptions(o.learning_rate).weight_decay(o.weight_decay));
  torch::optim::AdamW heads_opt(head_params,
                                torch::optim::AdamWOptions(o.heads_learning_rate).weight_decay(o.weight_decay));

  TunedNetwork result;
  std::vector<int64_t> order = rows;
  const int64_t batches = (static_cast<int64_t>(order.size()) + o.batch_size - 1) / o.batch_size;
  std::optional<Progress> progress;
  if (o.show_progress) progress.emplace("tuning the network", o.epochs * batches, 0, "batches");
  try {
    for (int epoch = 0; epoch < o.epochs; ++epoch) {
      for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);  // Fisher-Yates
      double loss_sum = 0;
      for (int64_t b = 0; b < batches; ++b) {
        check_interrupt();
        const auto begin = order.begin() + b * o.batch_size;
        const std::vector<int64_t> batch(begin, std::min(order.end(), begin + o.batch_size));
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
        loss_sum += loss.item<double>();
        if (progress) progress->advance();
      }
      result.epoch_loss.push_back(loss_sum / static_cast<double>(batches));
    }
  } catch (...) {
    model.set_trainable({});
    throw;
  }
  model.set_trainable({});
  if (progress) progress->finish();
  for (const auto& [name, tensor] : model.parameters()) {
    result.parameters[name] = tensor.detach().to(torch::kCPU, torch::kFloat32).clone();
  }
  return result;
}

}  // namespace fairdiff
