// EulerDiscreteScheduler (diffusers schedulers/scheduling_euler_discrete.py), deterministic (s_churn = 0),
// linear interpolation of sigmas at fractional timesteps.
#pragma once

#include "diffusion/schedulers/scheduler.h"

namespace fairdiff {

class EulerDiscreteScheduler : public Scheduler {
 public:
  explicit EulerDiscreteScheduler(const SchedulerConfig& config);
  std::string name() const override { return "euler"; }
  void set_timesteps(int64_t num_inference_steps) override;
  double init_noise_sigma() const override;
  torch::Tensor scale_model_input(const torch::Tensor& sample, size_t step_index) override;
  torch::Tensor step(const torch::Tensor& model_output, size_t step_index, const torch::Tensor& sample) override;

 private:
  std::string spacing() const { return config_.timestep_spacing.empty() ? "linspace" : config_.timestep_spacing; }
  std::vector<float> train_sigmas_;  // sqrt((1 - abar) / abar), [T]
  std::vector<float> sigmas_;        // per inference step, plus the final 0
};

}  // namespace fairdiff
