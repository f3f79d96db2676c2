// Strict loading of named tensors into a torch::nn::Module whose parameter names equal the checkpoint's
// keys. Every missing, unexpected or wrongly shaped tensor is collected and reported by name in one error.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/safetensors.h"

namespace fairdiff {

struct LoadOptions {
  // Keys present in the file that the module is allowed not to have (e.g. buffers older exporters saved).
  std::vector<std::string> ignored_keys;
};

// Copies `weights` into `module`'s parameters and buffers, converting dtype to the module's. Throws
// InputError naming `source` and listing every problem.
void load_state_dict_strict(torch::nn::Module& module, const TensorMap& weights, const std::string& source,
                            const LoadOptions& options = {});

// Stores every 4-d parameter (convolution weights) channels-last, the layout cuDNN's fast kernels use.
void to_channels_last(torch::nn::Module& module);

// All parameters and buffers of `module`, by name (for saving).
TensorMap module_state_dict(const torch::nn::Module& module);

}  // namespace fairdiff
