// Device and dtype selection from user flags, with a check that the device can run the dtype.
#pragma once

#include <torch/torch.h>

#include <string>

namespace fairdiff {

// "cpu", "cuda", "cuda:1"; UsageError for others, UnsupportedError when CUDA is asked for but absent.
torch::Device parse_device(const std::string& name);
// The defaults users expect from a flag set to "auto" (every subcommand's default): the device is CUDA when
// LibTorch sees one, else the CPU; generation runs in fp16 on CUDA and fp32 on the CPU; training's mixed precision
// is bf16 on CUDA and none on the CPU. Any other value is returned unchanged (parse_* validates it). Settings are
// recorded resolved, so a run's record says what ran.
std::string resolve_device_name(const std::string& name);
std::string resolve_inference_dtype(const std::string& dtype, const std::string& resolved_device);
std::string resolve_mixed_precision(const std::string& mixed_precision, const std::string& resolved_device);
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
