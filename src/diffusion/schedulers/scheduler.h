// Noise schedulers (diffusers schedulers/): independent of the models, shared by inference (set_timesteps,
// scale_model_input, step) and training (add_noise, velocity). Every field of scheduler_config.json that
// changes the numbers is read: beta schedule, steps_offset, timestep_spacing, prediction_type,
// set_alpha_to_one, clip_sample, rescale_betas_zero_snr.
//
// Tensors: sample and model_output [B, C, H, W] on any device; the schedule (betas, alphas_cumprod) is
// float32 on the CPU, as the reference keeps it.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/json.h"

namespace fairdiff {

struct SchedulerConfig {
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.00085;
  double beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";  // linear | scaled_linear | squaredcos_cap_v2
  std::vector<double> trained_betas;            // overrides the schedule when non-empty
  std::string prediction_type = "epsilon";      // epsilon | v_prediction | sample
  int64_t steps_offset = 0;
  std::string timestep_spacing;  // leading | linspace | trailing; empty: the scheduler's default
  bool set_alpha_to_one = false;
  bool skip_prk_steps = true;
  bool clip_sample = false;
  double clip_sample_range = 1.0;
  bool rescale_betas_zero_snr = false;
  bool lower_order_final = true;           // DPM-Solver++
  std::string final_sigmas_type = "zero";  // Euler / DPM-Solver++: zero | sigma_min

  static SchedulerConfig from_json(const Json& json, const std::string& where);
  Json to_json(const std::string& class_name) const;
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);
  virtual ~Scheduler() = default;

  virtual std::string name() const = 0;
  virtual void set_timesteps(int64_t num_inference_steps) = 0;
  // The timesteps the UNet sees, in order (PNDM repeats its first; Euler's are fractional).
  const std::vector<double>& timesteps() const { return timesteps_; }
  virtual double init_noise_sigma() const { return 1.0; }
  virtual torch::Tensor scale_model_input(const torch::Tensor& sample, size_t step_index) { return sample; }
  // One denoising step from timesteps()[step_index]; steps must be taken in order after set_timesteps.
  virtual torch::Tensor step(const torch::Tensor& model_output, size_t step_index, const torch::Tensor& sample) = 0;

  // DDPM forward process: sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, per-sample timesteps [B].
  torch::Tensor add_noise(const torch::Tensor& original, const torch::Tensor& noise,
                          const torch::Tensor& timesteps) const;
  // v-prediction target: sqrt(abar_t) noise - sqrt(1 - abar_t) x0.
  torch::Tensor velocity(const torch::Tensor& sample, const torch::Tensor& noise, const torch::Tensor& timesteps) const;

  const SchedulerConfig& config() const { return config_; }
  const torch::Tensor& alphas_cumprod() const { return alphas_cumprod_; }

 protected:
  double alpha_cumprod_at(int64_t t) const { return alphas_cumprod_acc_[t]; }
  SchedulerConfig config_;
  torch::Tensor betas_;           // [T] float32
  torch::Tensor alphas_cumprod_;  // [T] float32
  std::vector<float> alphas_cumprod_acc_;
  std::vector<double> timesteps_;
};

// "pndm", "ddim", "euler", "dpmpp2m": built from a model's scheduler config (the training schedule), with the
// fields the named scheduler defaults differently (timestep_spacing) filled in as diffusers' from_config does.
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const SchedulerConfig& config);
std::vector<std::string> scheduler_names();
SchedulerConfig load_scheduler_config(const std::string& path);

// numpy semantics shared by the schedulers.
std::vector<double> np_linspace(double start, double stop, int64_t num);
double np_interp(double x, const std::vector<float>& fp);  // xp = 0, 1, ..., fp.size() - 1

}  // namespace fairdiff
