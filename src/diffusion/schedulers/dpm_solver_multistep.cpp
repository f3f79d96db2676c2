#include "diffusion/schedulers/dpm_solver_multistep.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace fairdiff {
namespace {

struct AlphaSigma {
  double alpha;
  double sigma;
  double lambda;  // log(alpha) - log(sigma); +inf at sigma = 0
};

AlphaSigma alpha_sigma(double sigma) {
  const double alpha = 1.0 / std::sqrt(sigma * sigma + 1.0);
  const double s = sigma * alpha;
  return {alpha, s, std::log(alpha) - std::log(s)};
}

}  // namespace

DpmSolverMultistepScheduler::DpmSolverMultistepScheduler(const SchedulerConfig& config) : Scheduler(config) {
  torch::Tensor sigmas = ((1 - alphas_cumprod_) / alphas_cumprod_).pow(0.5);
  train_sigmas_.assign(sigmas.data_ptr<float>(), sigmas.data_ptr<float>() + sigmas.numel());
}

void DpmSolverMultistepScheduler::set_timesteps(int64_t n) {
  const int64_t T = config_.num_train_timesteps;
  if (n <= 0 || n > T)
    throw UsageError(name() + ": " + std::to_string(n) + " inference steps: expected 1.." + std::to_string(T) +
                     " (num_train_timesteps)");
  const std::string spacing = config_.timestep_spacing.empty() ? "linspace" : config_.timestep_spacing;
  std::vector<int64_t> steps;
  if (spacing == "linspace") {
    auto values = np_linspace(0, static_cast<double>(T - 1), n + 1);  // then reversed, dropping the 0 end
    for (int64_t i = n; i >= 1; --i) steps.push_back(static_cast<int64_t>(std::nearbyint(values[i])));
  } else if (spacing == "leading") {
    const int64_t ratio = T / (n + 1);
    for (int64_t i = n; i >= 1; --i) steps.push_back(i * ratio + config_.steps_offset);
  } else {
    const double ratio = static_cast<double>(T) / static_cast<double>(n);
    for (double v = static_cast<double>(T); v > 0; v -= ratio)
      steps.push_back(static_cast<int64_t>(std::nearbyint(v)) - 1);
  }
  timesteps_.assign(steps.begin(), steps.end());
  sigmas_.clear();
  for (int64_t t : steps) sigmas_.push_back(static_cast<float>(np_interp(static_cast<double>(t), train_sigmas_)));
  sigmas_.push_back(config_.final_sigmas_type == "sigma_min" ? train_sigmas_.front() : 0.0f);
  previous_x0_ = torch::Tensor();
  lower_order_nums_ = 0;
}

torch::Tensor DpmSolverMultistepScheduler::predicted_original(const torch::Tensor& model_output,
                                                              const torch::Tensor& sample, double sigma) const {
  const AlphaSigma s = alpha_sigma(sigma);
  if (config_.prediction_type == "epsilon") return (sample - s.sigma * model_output) / s.alpha;
  if (config_.prediction_type == "v_prediction") return s.alpha * sample - s.sigma * model_output;
  return model_output;
}

torch::Tensor DpmSolverMultistepScheduler::step(const torch::Tensor& model_output, size_t i,
                                                const torch::Tensor& sample_in) {
  const size_t n = timesteps_.size();
  const bool final_step = i == n - 1;
  const bool lower_order_final =
      final_step && ((config_.lower_order_final && n < 15) || config_.final_sigmas_type == "zero");
  const bool lower_order_second = i == n - 2 && config_.lower_order_final && n < 15;
  torch::Tensor sample = sample_in.to(torch::kFloat32);
  torch::Tensor x0 = predicted_original(model_output.to(torch::kFloat32), sample, sigmas_.at(i));

  const AlphaSigma t = alpha_sigma(sigmas_.at(i + 1));
  const AlphaSigma s0 = alpha_sigma(sigmas_.at(i));
  const double h = t.lambda - s0.lambda;
  const double decay = std::exp(-h) - 1.0;  // -1 when the target sigma is 0
  const double ratio = sigmas_.at(i + 1) == 0.0f ? 0.0 : t.sigma / s0.sigma;
  torch::Tensor prev;
  if (lower_order_nums_ < 1 || lower_order_final || !previous_x0_.defined()) {
    prev = ratio * sample - (t.alpha * decay) * x0;  // DPM-Solver++ first order (DDIM in x0 form)
  } else {
    (void)lower_order_second;  // with solver_order 2 the second-order update is already the highest
    const AlphaSigma s1 = alpha_sigma(sigmas_.at(i - 1));
    const double r0 = (s0.lambda - s1.lambda) / h;
    torch::Tensor d1 = (1.0 / r0) * (x0 - previous_x0_);
    prev = ratio * sample - (t.alpha * decay) * x0 - 0.5 * (t.alpha * decay) * d1;
  }
  previous_x0_ = x0;
  if (lower_order_nums_ < 2) ++lower_order_nums_;
  return prev.to(model_output.scalar_type());
}

}  // namespace fairdiff
