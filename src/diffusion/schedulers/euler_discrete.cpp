#include "diffusion/schedulers/euler_discrete.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace fairdiff {

EulerDiscreteScheduler::EulerDiscreteScheduler(const SchedulerConfig& config) : Scheduler(config) {
  torch::Tensor abar = alphas_cumprod_.clone();
  if (config.rescale_betas_zero_snr) abar[-1] = std::pow(2.0, -24);  // keep the last sigma finite
  torch::Tensor sigmas = ((1 - abar) / abar).pow(0.5);
  train_sigmas_.assign(sigmas.data_ptr<float>(), sigmas.data_ptr<float>() + sigmas.numel());
  set_timesteps(config.num_train_timesteps);
}

void EulerDiscreteScheduler::set_timesteps(int64_t n) {
  const int64_t T = config_.num_train_timesteps;
  if (n <= 0 || n > T)
    throw UsageError(name() + ": " + std::to_string(n) + " inference steps: expected 1.." + std::to_string(T) +
                     " (num_train_timesteps)");
  std::vector<float> steps;
  if (spacing() == "linspace") {
    auto values = np_linspace(0, static_cast<double>(T - 1), n);
    for (auto it = values.rbegin(); it != values.rend(); ++it) steps.push_back(static_cast<float>(*it));
  } else if (spacing() == "leading") {
    const int64_t ratio = T / n;
    for (int64_t i = n - 1; i >= 0; --i) steps.push_back(static_cast<float>(i * ratio + config_.steps_offset));
  } else {
    const double ratio = static_cast<double>(T) / static_cast<double>(n);
    for (double v = static_cast<double>(T); v > 0; v -= ratio)
      steps.push_back(static_cast<float>(std::nearbyint(v) - 1));
  }
  timesteps_.assign(steps.begin(), steps.end());
  sigmas_.clear();
  for (float t : steps) sigmas_.push_back(static_cast<float>(np_interp(t, train_sigmas_)));
  sigmas_.push_back(config_.final_sigmas_type == "sigma_min" ? train_sigmas_.front() : 0.0f);
}

double EulerDiscreteScheduler::init_noise_sigma() const {
  const double max_sigma = *std::max_element(sigmas_.begin(), sigmas_.end());
  if (spacing() == "linspace" || spacing() == "trailing") return max_sigma;
  return std::sqrt(max_sigma * max_sigma + 1);
}

torch::Tensor EulerDiscreteScheduler::scale_model_input(const torch::Tensor& sample, size_t step_index) {
  const double sigma = sigmas_.at(step_index);
  return sample / std::sqrt(sigma * sigma + 1);
}

torch::Tensor EulerDiscreteScheduler::step(const torch::Tensor& model_output, size_t step_index,
                                           const torch::Tensor& sample_in) {
  const double sigma = sigmas_.at(step_index);
  torch::Tensor sample = sample_in.to(torch::kFloat32);
  torch::Tensor output = model_output.to(torch::kFloat32);
  torch::Tensor pred_original;
  if (config_.prediction_type == "epsilon") {
    pred_original = sample - sigma * output;
  } else if (config_.prediction_type == "v_prediction") {
    pred_original = output * (-sigma / std::sqrt(sigma * sigma + 1)) + sample / (sigma * sigma + 1);
  } else {
    pred_original = output;
  }
  torch::Tensor derivative = (sample - pred_original) / sigma;
  const double dt = static_cast<double>(sigmas_.at(step_index + 1)) - sigma;
  return (sample + derivative * dt).to(model_output.scalar_type());
}

}  // namespace fairdiff
