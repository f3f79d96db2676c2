// Reading Keras weight files (.h5 written by model.save_weights / load_weights): the root attribute
// "layer_names" lists the layers in model order; each layer's group has a "weight_names" attribute and one
// dataset per weight ("<layer>/<weight_name>", e.g. "conv2d_1/conv2d_1/kernel:0"). Needs HDF5 (libhdf5);
// without it, reading throws UnsupportedError.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

namespace fairdiff {

struct KerasLayerWeights {
  std::string layer;
  std::vector<std::string> names;     // weight names, e.g. "conv2d_1/kernel:0"
  std::vector<torch::Tensor> values;  // float32, Keras layout (conv kernels [KH, KW, C_in, C_out])
};

// Every layer that has weights, in the file's layer order. InputError naming the file for anything malformed.
std::vector<KerasLayerWeights> read_keras_weights(const std::filesystem::path& path);

// Writes the same layout (for tests and converters): `layers` in order; layers without weights may be listed
// with empty names/values, as Keras does for padding, pooling and activation layers.
void write_keras_weights(const std::filesystem::path& path, const std::vector<KerasLayerWeights>& layers);

bool keras_h5_supported();

}  // namespace fairdiff
