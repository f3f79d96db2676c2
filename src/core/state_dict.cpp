#include "core/state_dict.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "core/error.h"

namespace fairdiff {
namespace {

std::string shape_string(torch::IntArrayRef shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

}  // namespace

void load_state_dict_strict(torch::nn::Module& module, const TensorMap& weights, const std::string& source,
                            const LoadOptions& options) {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> targets;
  for (const auto& item : module.named_parameters(true)) targets[item.key()] = item.value();
  for (const auto& item : module.named_buffers(true)) targets[item.key()] = item.value();

  std::vector<std::string> missing, unexpected, misshaped;
  std::set<std::string> ignored(options.ignored_keys.begin(), options.ignored_keys.end());
  for (const auto& [name, tensor] : weights) {
    auto it = targets.find(name);
    if (it == targets.end()) {
      if (!ignored.count(name)) unexpected.push_back(name);
      continue;
    }
    if (it->second.sizes() != tensor.sizes()) {
      misshaped.push_back(name + " (file " + shape_string(tensor.sizes()) + ", model " +
                          shape_string(it->second.sizes()) + ")");
    }
  }
  for (const auto& [name, tensor] : targets) {
    if (!weights.count(name)) missing.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    std::ostringstream message;
    message << source << " does not match the model built from its config:";
    auto list = [&](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      message << "\n  " << names.size() << " " << what << ":";
      size_t shown = std::min<size_t>(names.size(), 20);
      for (size_t i = 0; i < shown; ++i) message << "\n    " << names[i];
      if (names.size() > shown) message << "\n    ... and " << names.size() - shown << " more";
    };
    list("missing tensor(s)", missing);
    list("unexpected tensor(s)", unexpected);
    list("tensor(s) with the wrong shape", misshaped);
    throw InputError(message.str());
  }
  for (auto& [name, target] : targets) target.copy_(weights.at(name));
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters(true)) {
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
}

TensorMap module_state_dict(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& item : module.named_parameters(true)) out[item.key()] = item.value();
  for (const auto& item : module.named_buffers(true)) out[item.key()] = item.value();
  return out;
}

}  // namespace fairdiff
