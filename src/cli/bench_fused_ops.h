// fairdiff bench fused-ops: the fused CUDA kernels (diffusion/cuda/fused_ops.h) against the LibTorch
// composition they replace, on odd and UNet-sized shapes: max abs differences and per-op timings.
#pragma once

#include <string>
#include <vector>

namespace fairdiff::cli {

// Returns 0 when every kernel matches within tolerance, 1 otherwise.
int run_bench_fused_ops(const std::vector<std::string>& argv);

}  // namespace fairdiff::cli
