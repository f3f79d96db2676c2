#include "diffusion/schedulers/pndm.h"

#include <cmath>

#include "core/error.h"

namespace fairdiff {

PndmScheduler::PndmScheduler(const SchedulerConfig& config) : Scheduler(config) {
  if (!config.skip_prk_steps) {
    throw UnsupportedError(
        "PNDM with skip_prk_steps=false (Runge-Kutta warm-up) is not implemented; "
        "Stable Diffusion's configs set skip_prk_steps=true");
  }
  final_alpha_cumprod_ = config.set_alpha_to_one ? 1.0 : alpha_cumprod_at(0);
}

void PndmScheduler::set_timesteps(int64_t n) {
  const int64_t T = config_.num_train_timesteps;
  if (n <= 0 || n > T)
    throw UsageError(name() + ": " + std::to_string(n) + " inference steps: expected 1.." + std::to_string(T) +
                     " (num_train_timesteps)");
  num_inference_steps_ = n;
  const std::string spacing = config_.timestep_spacing.empty() ? "leading" : config_.timestep_spacing;
  std::vector<int64_t> base;  // ascending
  if (spacing == "linspace") {
    for (double v : np_linspace(0, static_cast<double>(T - 1), n))
      base.push_back(static_cast<int64_t>(std::nearbyint(v)));
  } else if (spacing == "leading") {
    const int64_t ratio = T / n;
    for (int64_t i = 0; i < n; ++i) base.push_back(i * ratio + config_.steps_offset);
  } else {
    const double ratio = static_cast<double>(T) / static_cast<double>(n);
    std::vector<int64_t> descending;
    for (double v = static_cast<double>(T); v > 0; v -= ratio)
      descending.push_back(static_cast<int64_t>(std::nearbyint(v)) - 1);
    base.assign(descending.rbegin(), descending.rend());
  }
  // PLMS timesteps: [t0 .. t_{n-2}, t_{n-2}, t_{n-1}] reversed, so the first timestep appears twice.
  std::vector<int64_t> plms(base.begin(), base.end() - 1);
  if (n >= 2) plms.push_back(base[base.size() - 2]);
  plms.push_back(base.back());
  timesteps_.clear();
  for (auto it = plms.rbegin(); it != plms.rend(); ++it) timesteps_.push_back(static_cast<double>(*it));
  counter_ = 0;
  ets_.clear();
  cur_sample_ = torch::Tensor();
}

torch::Tensor PndmScheduler::previous_sample(const torch::Tensor& sample, int64_t t, int64_t t_prev,
                                             torch::Tensor model_output) const {
  const double alpha_t = alpha_cumprod_at(t);
  const double alpha_prev = t_prev >= 0 ? alpha_cumprod_at(t_prev) : final_alpha_cumprod_;
  const double beta_t = 1.0 - alpha_t;
  const double beta_prev = 1.0 - alpha_prev;
  if (config_.prediction_type == "v_prediction") {
    model_output = std::sqrt(alpha_t) * model_output + std::sqrt(beta_t) * sample;
  } else if (config_.prediction_type != "epsilon") {
    throw UnsupportedError("PNDM supports prediction_type epsilon or v_prediction, not " + config_.prediction_type);
  }
  const double sample_coeff = std::sqrt(alpha_prev / alpha_t);
  const double denominator = alpha_t * std::sqrt(beta_prev) + std::sqrt(alpha_t * beta_t * alpha_prev);
  return sample_coeff * sample - ((alpha_prev - alpha_t) / denominator) * model_output;
}

torch::Tensor PndmScheduler::step(const torch::Tensor& model_output_in, size_t step_index,
                                  const torch::Tensor& sample_in) {
  int64_t t = static_cast<int64_t>(timesteps_.at(step_index));
  const int64_t stride = config_.num_train_timesteps / num_inference_steps_;
  int64_t t_prev = t - stride;
  torch::Tensor model_output = model_output_in;
  torch::Tensor sample = sample_in;
  if (counter_ != 1) {
    while (ets_.size() > 3) ets_.pop_front();
    ets_.push_back(model_output);
  } else {
    // The repeated first timestep: the second evaluation completes a two-point estimate from t.
    t_prev = t;
    t = t + stride;
  }
  const size_t n = ets_.size();
  if (n == 1 && counter_ == 0) {
    cur_sample_ = sample;
  } else if (n == 1 && counter_ == 1) {
    model_output = (model_output + ets_.back()) / 2;
    sample = cur_sample_;
    cur_sample_ = torch::Tensor();
  } else if (n == 2) {
    model_output = (3 * ets_[1] - ets_[0]) / 2;
  } else if (n == 3) {
    model_output = (23 * ets_[2] - 16 * ets_[1] + 5 * ets_[0]) / 12;
  } else {
    model_output = (1.0 / 24) * (55 * ets_[3] - 59 * ets_[2] + 37 * ets_[1] - 9 * ets_[0]);
  }
  torch::Tensor prev = previous_sample(sample, t, t_prev, model_output);
  ++counter_;
  return prev;
}

}  // namespace fairdiff
