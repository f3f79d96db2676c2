// The UNet's inference forward replayed from CUDA graphs. At batch 1 a guided SD 2.1 step launches about 1,500
// kernels of a few microseconds each, and the CPU's launch rate, not the GPU, sets the pace (bench/RESULTS.md);
// a graph captured once per input shape replays the whole forward with one launch.
//
// Used for CUDA tensors outside training and autograd when the build has CUDA (FAIRDIFF_HAVE_CUDA_KERNELS) and
// graphs are enabled (the default; FAIRDIFF_CUDA_GRAPHS=0 or set_cuda_graphs(false) turns them off, for
// before/after measurements in one binary). Everywhere else forward() is unet->forward(). A graph replays the
// kernels it captured on the weights it captured: a UNet whose parameters were replaced (not updated in place)
// since the capture is captured again.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "diffusion/unet_2d_condition.h"

namespace fairdiff {

void set_cuda_graphs(bool enabled);
bool cuda_graphs_enabled();  // this build has them and they are switched on

class UNetGraphs {
 public:
  UNetGraphs();
  ~UNetGraphs();
  UNetGraphs(const UNetGraphs&) = delete;
  UNetGraphs& operator=(const UNetGraphs&) = delete;

  // unet->forward(sample, timesteps, context), replayed from a graph captured for these shapes, dtypes and
  // layouts on first use (two warm-up passes, then the capture). The result is a fresh tensor.
  torch::Tensor forward(UNet2DConditionModel& unet, const torch::Tensor& sample, const torch::Tensor& timesteps,
                        const torch::Tensor& context);
  // Graphs held now (one per input shape seen).
  int64_t captured() const;
  void clear();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fairdiff
