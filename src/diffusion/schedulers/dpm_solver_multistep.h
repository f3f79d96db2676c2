// DPMSolverMultistepScheduler as DPM-Solver++(2M) (algorithm dpmsolver++, solver_order 2, midpoint), with
// first-order final steps (diffusers schedulers/scheduling_dpmsolver_multistep.py).
#pragma once

#include "diffusion/schedulers/scheduler.h"

namespace fairdiff {

class DpmSolverMultistepScheduler : public Scheduler {
 public:
  explicit DpmSolverMultistepScheduler(const SchedulerConfig& config);
  std::string name() const override { return "dpmpp2m"; }
  void set_timesteps(int64_t num_inference_steps) override;
  torch::Tensor step(const torch::Tensor& model_output, size_t step_index, const torch::Tensor& sample) override;

 private:
  torch::Tensor predicted_original(const torch::Tensor& model_output, const torch::Tensor& sample, double sigma) const;

  std::vector<float> train_sigmas_;
  std::vector<float> sigmas_;
  torch::Tensor previous_x0_;  // the model's x0 prediction at the previous step
  int lower_order_nums_ = 0;
};

}  // namespace fairdiff
