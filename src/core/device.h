// Device and dtype selection from user flags, with a check that the device can run the dtype.
#pragma once

#include <torch/torch.h>

#include <string>

namespace fairdiff {

// "cpu", "cuda", "cuda:1"; UsageError for others, UnsupportedError when CUDA is asked for but absent.
torch::Device parse_device(const std::string& name);
// "fp32", "fp16", "bf16" (also "float32", "float16", "bfloat16"); UsageError for others.
torch::Dtype parse_dtype(const std::string& name);
std::string dtype_flag_name(torch::Dtype dtype);
// Runs a tiny convolution, group norm and matmul in `dtype` on `device`; UnsupportedError naming both when
// this build cannot (e.g. fp16 convolutions on CPU).
void require_dtype_supported(torch::Device device, torch::Dtype dtype);

// LibTorch's CPU thread pool: OMP_NUM_THREADS when set, else every hardware thread (Debian's LibTorch starts
// with one). Called once by main() and by the test runners.
void configure_cpu_threads();

}  // namespace fairdiff
