// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON mapping tensor names to
// {dtype, shape, data_offsets} (plus an optional "__metadata__" string map), then the raw little-endian data.
// Reading validates the header, every offset and size, and that the data buffer is covered without holes or
// overlaps; every problem is an InputError naming the file and the tensor.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace fairdiff {

using TensorMap = std::map<std::string, torch::Tensor>;

struct SafetensorsInfo {
  std::string dtype;  // "F32", "F16", ...
  std::vector<int64_t> shape;
};

struct SafetensorsFile {
  TensorMap tensors;
  std::map<std::string, std::string> metadata;
};

// Reads every tensor into CPU memory with its stored dtype.
SafetensorsFile read_safetensors(const std::filesystem::path& path);
// Reads only the header (names, dtypes, shapes).
std::map<std::string, SafetensorsInfo> read_safetensors_header(const std::filesystem::path& path);
// Writes tensors (moved to CPU, made contiguous) in sorted key order, atomically.
void write_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// "F32" <-> torch dtype; InputError for names this reader does not know.
torch::Dtype safetensors_dtype(const std::string& name, const std::string& where);
std::string safetensors_dtype_name(torch::Dtype dtype);

}  // namespace fairdiff
