// PNDMScheduler with skip_prk_steps (pseudo linear multistep, PLMS), Stable Diffusion's default
// (diffusers schedulers/scheduling_pndm.py).
#pragma once

#include <deque>

#include "diffusion/schedulers/scheduler.h"

namespace fairdiff {

class PndmScheduler : public Scheduler {
 public:
  explicit PndmScheduler(const SchedulerConfig& config);
  std::string name() const override { return "pndm"; }
  void set_timesteps(int64_t num_inference_steps) override;
  torch::Tensor step(const torch::Tensor& model_output, size_t step_index, const torch::Tensor& sample) override;

 private:
  torch::Tensor previous_sample(const torch::Tensor& sample, int64_t t, int64_t t_prev,
                                torch::Tensor model_output) const;

  int64_t num_inference_steps_ = 0;
  int64_t counter_ = 0;
  std::deque<torch::Tensor> ets_;  // the last (up to 4) model outputs
  torch::Tensor cur_sample_;
  double final_alpha_cumprod_ = 1.0;
};

}  // namespace fairdiff
