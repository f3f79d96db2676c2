// fairdiff bench finetune: DreamBooth training throughput (steps/s) and peak CUDA memory on synthetic data.
#include <cstdio>

#include "cli/args.h"
#include "cli/bench_profile.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/hub_cache.h"
#include "core/json.h"
#include "train/finetune_benchmark.h"

namespace fairdiff::cli {
namespace {

int run_bench_finetune(const std::vector<std::string>& argv) {
  train::FinetuneBenchmarkConfig b;
  train::FinetuneConfig& c = b.training;
  // The benchmark's own defaults, where they differ from finetune's.
  c.mixed_precision = "bf16";
  c.device = "cuda";
  c.lr.base_lr = 5e-6;
  std::filesystem::path json_path;
  bool profile_kernels = false;
  OptionTable table;
  table
      .value("model", "PATH", "model directory (diffusers layout), single-file .safetensors, or Hub id ORG/NAME",
             c.model_dir, "model_dir")
      .value("resolution", "PX", "training resolution (default: the model's native size)", c.resolution, 8, 8192)
      .choice("mixed-precision", "compute dtype, with fp32 master weights", c.mixed_precision, {"no", "fp16", "bf16"})
      .value("iterations", "K", "timed training steps", b.steps, 1, 1000000, "steps")
      .value("warmup", "K", "untimed training steps first", b.warmup_steps, 0, 1000000, "warmup_steps")
      .value("train-batch-size", "N", "instance images per step (as many class images are added)", c.train_batch_size,
             1, 4096)
      .flag("use-lora", "train LoRA adapters instead of the full UNet", c.use_lora)
      .value("lora-rank", "R", "LoRA rank", c.lora.rank, 1, 4096, "lora.rank")
      .flag("gradient-checkpointing", "recompute UNet block activations in backward", c.gradient_checkpointing)
      .flag("train-text-encoder", "also train the text encoder", c.train_text_encoder)
      .flag("no-cache-latents", "VAE-encode the images at every step, as the reference trainer does", c.cache_latents,
            "cache_latents", false)
      .value("device", "DEV", "cpu, cuda or cuda:N", c.device)
      .flag("profile-kernels", "print the kernels taking the most time in one training step (after the warm-up)",
            profile_kernels)
      .value("json", "FILE", "also write the result as JSON", json_path);
  Args args("bench finetune",
            "Times DreamBooth steps with prior preservation (train-batch-size instance + as many class images, AdamW,\n"
            "clipping) on synthetic images after warm-up steps; reports steps/s and, on CUDA, peak memory.",
            table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (c.model_dir.empty()) throw UsageError("bench finetune: --model is required");
  c.model_dir = resolve_model_path(c.model_dir.string());  // a Hub id: its snapshot in the Hugging Face cache
  c.lora.alpha = static_cast<double>(c.lora.rank);
  if (profile_kernels) {
    const bool cuda = c.device.rfind("cuda", 0) == 0;
    b.around_profiled_step = [cuda](const std::function<void()>& step) {
      std::printf("%s", profile_top_kernels(step, cuda).c_str());
    };
  }

  const train::FinetuneBenchmarkResult r = table.with_flag_names([&] { return train::run_finetune_benchmark(b); });
  c.resolution = train::training_resolution(c);  // the size used (the model's native size when not given)
  std::printf(
      "bench finetune: %s, %s, %lld px, batch %lld+%lld, %s%s%s: %.3f steps/s (%lld steps in %.2f s), "
      "%lld trainable parameters",
      c.model_dir.string().c_str(), c.device.c_str(), static_cast<long long>(c.resolution),
      static_cast<long long>(c.train_batch_size), static_cast<long long>(c.train_batch_size),
      c.use_lora ? "LoRA" : "full UNet", c.gradient_checkpointing ? ", gradient checkpointing" : "",
      c.cache_latents ? ", cached latents" : ", VAE encode per step", r.steps_per_second,
      static_cast<long long>(r.steps), r.seconds, static_cast<long long>(r.trainable_parameters));
  if (r.memory_measured) {
    std::printf(", peak %.2f GiB allocated / %.2f GiB reserved", r.peak_allocated_gib, r.peak_reserved_gib);
  }
  std::printf("\n");
  if (!json_path.empty()) {
    Json j = r.to_json();
    j["model"] = c.model_dir.string();
    j["device"] = c.device;
    j["mixed_precision"] = c.mixed_precision;
    j["resolution"] = c.resolution;
    j["use_lora"] = c.use_lora;
    j["gradient_checkpointing"] = c.gradient_checkpointing;
    j["cache_latents"] = c.cache_latents;
    write_json_file(json_path, j);
  }
  return 0;
}

}  // namespace

FAIRDIFF_BENCH("finetune", "DreamBooth training steps/s and peak memory on synthetic data", run_bench_finetune);

}  // namespace fairdiff::cli
