#include "diffusion/schedulers/scheduler.h"

#include <cmath>

#include "core/error.h"
#include "core/fs.h"
#include "core/strings.h"
#include "diffusion/schedulers/ddim.h"
#include "diffusion/schedulers/dpm_solver_multistep.h"
#include "diffusion/schedulers/euler_discrete.h"
#include "diffusion/schedulers/pndm.h"

namespace fairdiff {
namespace {

torch::Tensor make_betas(const SchedulerConfig& c) {
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  if (!c.trained_betas.empty()) return torch::tensor(c.trained_betas, torch::kFloat64).to(torch::kFloat32);
  if (c.beta_schedule == "linear") return torch::linspace(c.beta_start, c.beta_end, c.num_train_timesteps, f32);
  if (c.beta_schedule == "scaled_linear") {
    return torch::linspace(std::sqrt(c.beta_start), std::sqrt(c.beta_end), c.num_train_timesteps, f32).pow(2);
  }
  if (c.beta_schedule == "squaredcos_cap_v2") {
    auto alpha_bar = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2), 2); };
    std::vector<double> betas;
    for (int64_t i = 0; i < c.num_train_timesteps; ++i) {
      double t1 = static_cast<double>(i) / c.num_train_timesteps,
             t2 = static_cast<double>(i + 1) / c.num_train_timesteps;
      betas.push_back(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
    }
    return torch::tensor(betas, torch::kFloat64).to(torch::kFloat32);
  }
  throw InputError("scheduler config: beta_schedule '" + c.beta_schedule +
                   "' is not supported (expected linear, scaled_linear or squaredcos_cap_v2)");
}

// Rescales betas to zero terminal SNR (Lin et al. 2023, Algorithm 1).
torch::Tensor rescale_zero_terminal_snr(const torch::Tensor& betas) {
  torch::Tensor alphas_bar_sqrt = torch::cumprod(1.0 - betas, 0).sqrt();
  torch::Tensor first = alphas_bar_sqrt[0].clone(), last = alphas_bar_sqrt[-1].clone();
  alphas_bar_sqrt = (alphas_bar_sqrt - last) * (first / (first - last));
  torch::Tensor alphas_bar = alphas_bar_sqrt.pow(2);
  torch::Tensor alphas = torch::cat({alphas_bar.slice(0, 0, 1), alphas_bar.slice(0, 1) / alphas_bar.slice(0, 0, -1)});
  return 1.0 - alphas;
}

}  // namespace

SchedulerConfig SchedulerConfig::from_json(const Json& json, const std::string& where) {
  SchedulerConfig c;
  c.num_train_timesteps = json_get<int64_t>(json, "num_train_timesteps", c.num_train_timesteps, where);
  c.beta_start = json_get<double>(json, "beta_start", c.beta_start, where);
  c.beta_end = json_get<double>(json, "beta_end", c.beta_end, where);
  c.beta_schedule = json_get<std::string>(json, "beta_schedule", c.beta_schedule, where);
  c.trained_betas = json_get<std::vector<double>>(json, "trained_betas", c.trained_betas, where);
  c.prediction_type = json_get<std::string>(json, "prediction_type", c.prediction_type, where);
  c.steps_offset = json_get<int64_t>(json, "steps_offset", c.steps_offset, where);
  c.timestep_spacing = json_get<std::string>(json, "timestep_spacing", c.timestep_spacing, where);
  c.set_alpha_to_one = json_get<bool>(json, "set_alpha_to_one", c.set_alpha_to_one, where);
  c.skip_prk_steps = json_get<bool>(json, "skip_prk_steps", c.skip_prk_steps, where);
  c.clip_sample = json_get<bool>(json, "clip_sample", c.clip_sample, where);
  c.clip_sample_range = json_get<double>(json, "clip_sample_range", c.clip_sample_range, where);
  c.rescale_betas_zero_snr = json_get<bool>(json, "rescale_betas_zero_snr", c.rescale_betas_zero_snr, where);
  c.lower_order_final = json_get<bool>(json, "lower_order_final", c.lower_order_final, where);
  c.final_sigmas_type = json_get<std::string>(json, "final_sigmas_type", c.final_sigmas_type, where);
  if (c.prediction_type != "epsilon" && c.prediction_type != "v_prediction" && c.prediction_type != "sample") {
    throw InputError(where + ": prediction_type '" + c.prediction_type +
                     "' is not supported (expected epsilon, v_prediction or sample)");
  }
  if (!c.timestep_spacing.empty() && c.timestep_spacing != "leading" && c.timestep_spacing != "linspace" &&
      c.timestep_spacing != "trailing") {
    throw InputError(where + ": timestep_spacing '" + c.timestep_spacing +
                     "' is not supported (expected leading, linspace or trailing)");
  }
  const ConfigCheck check(json, where);
  check.in_range("num_train_timesteps", c.num_train_timesteps, 2, 1000000);
  if (!c.trained_betas.empty()) {
    if (static_cast<int64_t>(c.trained_betas.size()) != c.num_train_timesteps) {
      check.fail("trained_betas", "has " + std::to_string(c.trained_betas.size()) + " entries",
                 "one per training timestep (num_train_timesteps " + std::to_string(c.num_train_timesteps) + ")");
    }
    for (double beta : c.trained_betas) check.in_range("trained_betas", beta, 0, 1, true, true);
  } else {
    check.one_of("beta_schedule", c.beta_schedule, {"linear", "scaled_linear", "squaredcos_cap_v2"});
    if (c.beta_schedule != "squaredcos_cap_v2") {
      // Every beta must be a probability: beta_start -5 made all-black images.
      check.in_range("beta_start", c.beta_start, 0, 1, true, true);
      check.in_range("beta_end", c.beta_end, c.beta_start, 1, false, true);
    }
  }
  check.in_range("steps_offset", c.steps_offset, 0, c.num_train_timesteps - 1);
  check.in_range("clip_sample_range", c.clip_sample_range, 0, 1e6, true, false);
  check.one_of("final_sigmas_type", c.final_sigmas_type, {"zero", "sigma_min"});
  return c;
}

Json SchedulerConfig::to_json(const std::string& class_name) const {
  Json j{{"_class_name", class_name},
         {"num_train_timesteps", num_train_timesteps},
         {"beta_start", beta_start},
         {"beta_end", beta_end},
         {"beta_schedule", beta_schedule},
         {"trained_betas", nullptr},
         {"prediction_type", prediction_type},
         {"steps_offset", steps_offset},
         {"set_alpha_to_one", set_alpha_to_one},
         {"skip_prk_steps", skip_prk_steps},
         {"clip_sample", clip_sample}};
  if (!timestep_spacing.empty()) j["timestep_spacing"] = timestep_spacing;
  return j;
}

SchedulerConfig load_scheduler_config(const std::string& path) {
  require_file(path, "scheduler config");
  return SchedulerConfig::from_json(read_json_file(path), path);
}

Scheduler::Scheduler(const SchedulerConfig& config) : config_(config) {
  betas_ = make_betas(config);
  if (config.rescale_betas_zero_snr) betas_ = rescale_zero_terminal_snr(betas_);
  alphas_cumprod_ = torch::cumprod(1.0 - betas_, 0);
  alphas_cumprod_acc_.assign(alphas_cumprod_.data_ptr<float>(),
                             alphas_cumprod_.data_ptr<float>() + alphas_cumprod_.numel());
}

torch::Tensor Scheduler::add_noise(const torch::Tensor& original, const torch::Tensor& noise,
                                   const torch::Tensor& timesteps) const {
  torch::Tensor abar =
      alphas_cumprod_.to(original.device()).index_select(0, timesteps.to(original.device(), torch::kLong));
  std::vector<int64_t> shape(original.dim(), 1);
  shape[0] = -1;
  torch::Tensor a = abar.sqrt().to(original.scalar_type()).view(shape);  // [B, 1, 1, 1]
  torch::Tensor s = (1.0 - abar).sqrt().to(original.scalar_type()).view(shape);
  return a * original + s * noise;
}

torch::Tensor Scheduler::velocity(const torch::Tensor& sample, const torch::Tensor& noise,
                                  const torch::Tensor& timesteps) const {
  torch::Tensor abar = alphas_cumprod_.to(sample.device()).index_select(0, timesteps.to(sample.device(), torch::kLong));
  std::vector<int64_t> shape(sample.dim(), 1);
  shape[0] = -1;
  torch::Tensor a = abar.sqrt().to(sample.scalar_type()).view(shape);
  torch::Tensor s = (1.0 - abar).sqrt().to(sample.scalar_type()).view(shape);
  return a * noise - s * sample;
}

std::vector<double> np_linspace(double start, double stop, int64_t num) {
  std::vector<double> out;
  if (num == 1) return {start};
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (int64_t i = 0; i < num; ++i) out.push_back(start + static_cast<double>(i) * step);
  if (num > 1) out.back() = stop;
  return out;
}

double np_interp(double x, const std::vector<float>& fp) {
  if (x <= 0) return fp.front();
  const double last = static_cast<double>(fp.size() - 1);
  if (x >= last) return fp.back();
  const size_t j = static_cast<size_t>(std::floor(x));
  const double slope = static_cast<double>(fp[j + 1]) - static_cast<double>(fp[j]);
  return slope * (x - static_cast<double>(j)) + static_cast<double>(fp[j]);
}

std::vector<std::string> scheduler_names() {
  return {"pndm", "ddim", "euler", "dpmpp2m"};
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& config) {
  if (name == "pndm") return std::make_unique<PndmScheduler>(config);
  if (name == "ddim") return std::make_unique<DdimScheduler>(config);
  if (name == "euler") return std::make_unique<EulerDiscreteScheduler>(config);
  if (name == "dpmpp2m") return std::make_unique<DpmSolverMultistepScheduler>(config);
  throw UsageError("unknown scheduler '" + name + "' (expected one of " + join(scheduler_names(), ", ") + ")");
}

}  // namespace fairdiff
