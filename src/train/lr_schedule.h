// Learning-rate schedules of the reference DreamBooth trainer (diffusers optimization.get_scheduler): a
// multiplier of the base rate per optimizer step, with a linear warm-up from 0 for every schedule but
// `constant`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fairdiff::train {

struct LrScheduleConfig {
  std::string name = "constant";  // constant | linear | polynomial | cosine | constant_with_warmup
  double base_lr = 5e-6;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double polynomial_power = 1.0;    // polynomial: lr decays as (1 - progress)^power ...
  double polynomial_end_lr = 1e-7;  // ... to this rate
  double cosine_cycles = 0.5;       // cosine: half a cosine wave from base to 0
};

std::vector<std::string> lr_schedule_names();
// UsageError naming the flag value and the known schedules.
void validate_lr_schedule(const LrScheduleConfig& config);
// The learning rate for optimizer step `step` (0-based: the rate the step-th update uses).
double learning_rate_at(const LrScheduleConfig& config, int64_t step);

}  // namespace fairdiff::train
