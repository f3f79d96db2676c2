// Kernel-time breakdown of a piece of work with LibTorch's Kineto profiler (for `bench generate --profile`).
#pragma once

#include <functional>
#include <string>

namespace fairdiff::cli {

// Runs `work` under the profiler and returns a table of the `top` kernels (CUDA) or operators (CPU) by total
// time, with their share of the whole.
std::string profile_top_kernels(const std::function<void()>& work, bool cuda, int top = 30);

}  // namespace fairdiff::cli
