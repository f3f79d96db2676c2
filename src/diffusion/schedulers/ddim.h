// DDIMScheduler, deterministic (eta = 0) (diffusers schedulers/scheduling_ddim.py).
#pragma once

#include "diffusion/schedulers/scheduler.h"

namespace fairdiff {

class DdimScheduler : public Scheduler {
 public:
  explicit DdimScheduler(const SchedulerConfig& config);
  std::string name() const override { return "ddim"; }
  void set_timesteps(int64_t num_inference_steps) override;
  torch::Tensor step(const torch::Tensor& model_output, size_t step_index, const torch::Tensor& sample) override;

 private:
  int64_t num_inference_steps_ = 0;
  double final_alpha_cumprod_ = 1.0;
};

}  // namespace fairdiff
