#include "diffusion/schedulers/ddim.h"

#include <cmath>

#include "core/error.h"

namespace fairdiff {

DdimScheduler::DdimScheduler(const SchedulerConfig& config) : Scheduler(config) {
  final_alpha_cumprod_ = config.set_alpha_to_one ? 1.0 : alpha_cumprod_at(0);
}

void DdimScheduler::set_timesteps(int64_t n) {
  const int64_t T = config_.num_train_timesteps;
  if (n <= 0 || n > T)
    throw UsageError(name() + ": " + std::to_string(n) + " inference steps: expected 1.." + std::to_string(T) +
                     " (num_train_timesteps)");
  num_inference_steps_ = n;
  const std::string spacing = config_.timestep_spacing.empty() ? "leading" : config_.timestep_spacing;
  timesteps_.clear();
  if (spacing == "linspace") {
    auto values = np_linspace(0, static_cast<double>(T - 1), n);
    for (auto it = values.rbegin(); it != values.rend(); ++it) timesteps_.push_back(std::nearbyint(*it));
  } else if (spacing == "leading") {
    const int64_t ratio = T / n;
    for (int64_t i = n - 1; i >= 0; --i) timesteps_.push_back(static_cast<double>(i * ratio + config_.steps_offset));
  } else {
    const double ratio = static_cast<double>(T) / static_cast<double>(n);
    for (double v = static_cast<double>(T); v > 0; v -= ratio) timesteps_.push_back(std::nearbyint(v) - 1);
  }
}

torch::Tensor DdimScheduler::step(const torch::Tensor& model_output, size_t step_index, const torch::Tensor& sample) {
  const int64_t t = static_cast<int64_t>(timesteps_.at(step_index));
  const int64_t t_prev = t - config_.num_train_timesteps / num_inference_steps_;
  const double alpha_t = alpha_cumprod_at(t);
  const double alpha_prev = t_prev >= 0 ? alpha_cumprod_at(t_prev) : final_alpha_cumprod_;
  const double beta_t = 1.0 - alpha_t;
  torch::Tensor pred_original, pred_epsilon;
  if (config_.prediction_type == "epsilon") {
    pred_original = (sample - std::sqrt(beta_t) * model_output) / std::sqrt(alpha_t);
    pred_epsilon = model_output;
  } else if (config_.prediction_type == "sample") {
    pred_original = model_output;
    pred_epsilon = (sample - std::sqrt(alpha_t) * pred_original) / std::sqrt(beta_t);
  } else {
    pred_original = std::sqrt(alpha_t) * sample - std::sqrt(beta_t) * model_output;
    pred_epsilon = std::sqrt(alpha_t) * model_output + std::sqrt(beta_t) * sample;
  }
  if (config_.clip_sample) pred_original = pred_original.clamp(-config_.clip_sample_range, config_.clip_sample_range);
  return std::sqrt(alpha_prev) * pred_original + std::sqrt(1.0 - alpha_prev) * pred_epsilon;
}

}  // namespace fairdiff
