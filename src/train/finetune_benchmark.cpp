#include "train/finetune_benchmark.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>

#include <chrono>

#include "core/device.h"
#include "core/error.h"
#include "train/dreambooth_trainer.h"

#ifdef FAIRDIFF_WITH_CUDA_ALLOCATOR_STATS
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace fairdiff::train {
namespace {

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

void reset_peak_memory(const torch::Device& device) {
#ifdef FAIRDIFF_WITH_CUDA_ALLOCATOR_STATS
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#else
  (void)device;
#endif
}

// Index 0 of the allocator's stat arrays is the aggregate over pool types (StatType::AGGREGATE).
bool peak_memory(const torch::Device& device, double& allocated_gib, double& reserved_gib) {
#ifdef FAIRDIFF_WITH_CUDA_ALLOCATOR_STATS
  if (!device.is_cuda()) return false;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
  allocated_gib = static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0 * 1024.0);
  reserved_gib = static_cast<double>(stats.reserved_bytes[0].peak) / (1024.0 * 1024.0 * 1024.0);
  return true;
#else
  (void)device;
  (void)allocated_gib;
  (void)reserved_gib;
  return false;
#endif
}

TrainingExample synthetic_example(int64_t resolution, uint64_t seed, const std::string& prompt) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  // A smooth random image: low-resolution noise upsampled, in [-1, 1].
  torch::Tensor low = torch::rand({1, 3, 8, 8}, generator, torch::kFloat32) * 2.0 - 1.0;
  torch::Tensor pixels = torch::nn::functional::interpolate(low, torch::nn::functional::InterpolateFuncOptions()
                                                                     .size(std::vector<int64_t>{resolution, resolution})
                                                                     .mode(torch::kBilinear)
                                                                     .align_corners(false));
  return {"synthetic-" + std::to_string(seed), prompt, pixels[0].contiguous()};
}

}  // namespace

Json FinetuneBenchmarkResult::to_json() const {
  Json j{{"steps", steps},
         {"seconds", seconds},
         {"steps_per_second", steps_per_second},
         {"trainable_parameters", trainable_parameters},
         {"final_loss", final_loss}};
  if (memory_measured) {
    j["peak_allocated_gib"] = peak_allocated_gib;
    j["peak_reserved_gib"] = peak_reserved_gib;
  }
  return j;
}

FinetuneBenchmarkResult run_finetune_benchmark(const FinetuneBenchmarkConfig& input) {
  FinetuneConfig config = input.training;
  if (input.steps < 1) throw FieldError("steps", std::to_string(input.steps) + ": expected at least 1");
  if (input.warmup_steps < 0) {
    throw FieldError("warmup_steps", std::to_string(input.warmup_steps) + ": expected 0 or more");
  }
  validate_model_directory(config.model_dir, config.single_file);
  config.resolution = training_resolution(config);
  config.with_prior_preservation = true;
  config.max_train_steps = input.steps + input.warmup_steps + (input.around_profiled_step ? 1 : 0);
  config.lr.total_steps = config.max_train_steps;
  const torch::Device device = parse_device(config.device);
  const torch::Dtype dtype = mixed_precision_dtype(config.mixed_precision);
  require_dtype_supported(device, dtype);

  std::vector<TrainingExample> instance, class_examples;
  for (int64_t i = 0; i < config.train_batch_size; ++i) {
    instance.push_back(synthetic_example(config.resolution, 2 * static_cast<uint64_t>(i), "a photo of sks person"));
    class_examples.push_back(
        synthetic_example(config.resolution, 2 * static_cast<uint64_t>(i) + 1, "a photo of a person"));
  }
  PipelineLoadOptions load_options;
  load_options.single_file = config.single_file;
  StableDiffusionModel model = load_stable_diffusion(config.model_dir, device, torch::kFloat32, load_options);
  DreamBoothTrainer trainer(config, model, instance, class_examples);
  for (int64_t i = 0; i < input.warmup_steps; ++i) trainer.train_step();
  synchronize(device);
  if (input.around_profiled_step) {
    input.around_profiled_step([&] {
      trainer.train_step();
      synchronize(device);
    });
  }
  reset_peak_memory(device);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < input.steps; ++i) trainer.train_step();
  synchronize(device);
  FinetuneBenchmarkResult result;
  result.steps = input.steps;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.steps_per_second = static_cast<double>(input.steps) / result.seconds;
  result.trainable_parameters = trainer.optimizer().numel();
  result.final_loss = trainer.state().curve.back().loss;
  result.memory_measured = peak_memory(device, result.peak_allocated_gib, result.peak_reserved_gib);
  return result;
}

}  // namespace fairdiff::train
