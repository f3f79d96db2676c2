#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/strings.h"

namespace fairdiff::train {
namespace {

constexpr double kPi = 3.14159265358979323846;

// The multiplier of the base rate (LambdaLR's lambda in the reference); the warm-up is shared.
double multiplier(const LrScheduleConfig& c, int64_t step) {
  const auto s = static_cast<double>(step);
  const auto warmup = static_cast<double>(c.warmup_steps);
  const auto total = static_cast<double>(c.total_steps);
  if (c.name == "constant") return 1.0;
  if (step < c.warmup_steps) return s / std::max(1.0, warmup);
  if (c.name == "constant_with_warmup") return 1.0;
  if (c.name == "linear") return std::max(0.0, (total - s) / std::max(1.0, total - warmup));
  if (c.name == "cosine") {
    const double progress = (s - warmup) / std::max(1.0, total - warmup);
    return std::max(0.0, 0.5 * (1.0 + std::cos(kPi * c.cosine_cycles * 2.0 * progress)));
  }
  // polynomial
  if (step > c.total_steps) return c.polynomial_end_lr / c.base_lr;
  const double lr_range = c.base_lr - c.polynomial_end_lr;
  const double remaining = 1.0 - (s - warmup) / (total - warmup);
  return (lr_range * std::pow(remaining, c.polynomial_power) + c.polynomial_end_lr) / c.base_lr;
}

}  // namespace

std::vector<std::string> lr_schedule_names() {
  return {"constant", "linear", "polynomial", "cosine", "constant_with_warmup"};
}

void validate_lr_schedule(const LrScheduleConfig& c) {
  const auto names = lr_schedule_names();
  if (std::find(names.begin(), names.end(), c.name) == names.end()) {
    throw FieldError("lr.name", "'" + c.name + "': expected one of " + join(names, ", "));
  }
  if (!(c.base_lr > 0.0)) throw FieldError("lr.base_lr", std::to_string(c.base_lr) + ": must be positive");
  if (c.warmup_steps < 0) {
    throw FieldError("lr.warmup_steps", std::to_string(c.warmup_steps) + ": must not be negative");
  }
  if (c.total_steps < 1) throw FieldError("lr.total_steps", std::to_string(c.total_steps) + ": must be at least 1");
  if (c.name == "polynomial") {
    if (!(c.polynomial_end_lr < c.base_lr)) {
      throw FieldError("lr.base_lr", std::to_string(c.base_lr) + ": must be above the polynomial schedule's end rate " +
                                         std::to_string(c.polynomial_end_lr));
    }
    if (c.warmup_steps >= c.total_steps) {
      throw FieldError("lr.warmup_steps", std::to_string(c.warmup_steps) + ": must be below the " +
                                              std::to_string(c.total_steps) +
                                              " training steps for the polynomial schedule");
    }
  }
}

double learning_rate_at(const LrScheduleConfig& config, int64_t step) {
  return config.base_lr * multiplier(config, step);
}

}  // namespace fairdiff::train
