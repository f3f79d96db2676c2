// fairdiff bench-finetune: DreamBooth training throughput (steps/s) and peak CUDA memory on synthetic data.
#include <cstdio>

#include "cli/args.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/json.h"
#include "train/finetune_benchmark.h"

namespace fairdiff::cli {
namespace {

int run_bench_finetune(const std::vector<std::string>& argv) {
  Args args("bench-finetune",
            "Times DreamBooth steps with prior preservation (train-batch-size instance + as many class images, AdamW,\n"
            "clipping) on synthetic images after warm-up steps; reports steps/s and, on CUDA, peak memory.",
            {{"model", "DIR", "model directory (diffusers layout)"},
             {"resolution", "PX", "training resolution (default: the model's native size)"},
             {"mixed-precision", "MODE", "no|fp16|bf16 (default bf16)"},
             {"steps", "N", "timed steps (default 20)"},
             {"warmup-steps", "N", "untimed steps first (default 3)"},
             {"train-batch-size", "N", "instance images per step (default 1)"},
             {"use-lora", "", "train LoRA adapters instead of the full UNet"},
             {"lora-rank", "R", "LoRA rank (default 4)"},
             {"gradient-checkpointing", "", "recompute UNet block activations in backward"},
             {"train-text-encoder", "", "also train the text encoder"},
             {"no-cache-latents", "", "VAE-encode the images at every step, as the reference trainer does"},
             {"device", "DEV", "cpu, cuda or cuda:N (default cuda)"},
             {"json", "FILE", "also write the result as JSON"}},
            argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  train::FinetuneBenchmarkConfig b;
  train::FinetuneConfig& c = b.training;
  c.model_dir = args.require("model");
  c.resolution = args.get_int("resolution", 0, 8, 8192);
  c.mixed_precision = args.get_choice("mixed-precision", "bf16", {"no", "fp16", "bf16"});
  b.steps = args.get_int("steps", 20, 1, 1000000);
  b.warmup_steps = args.get_int("warmup-steps", 3, 0, 1000000);
  c.train_batch_size = args.get_int("train-batch-size", 1, 1, 4096);
  c.use_lora = args.flag("use-lora");
  c.lora.rank = args.get_int("lora-rank", 4, 1, 4096);
  c.lora.alpha = static_cast<double>(c.lora.rank);
  c.gradient_checkpointing = args.flag("gradient-checkpointing");
  c.train_text_encoder = args.flag("train-text-encoder");
  c.cache_latents = !args.flag("no-cache-latents");
  c.device = args.get("device", "cuda");
  c.lr.base_lr = 5e-6;
  const auto json_path = args.get("json");

  const train::FinetuneBenchmarkResult r = train::run_finetune_benchmark(b);
  c.resolution = train::training_resolution(c);  // the size used (the model's native size when not given)
  std::printf(
      "bench-finetune: %s, %s, %lld px, batch %lld+%lld, %s%s%s: %.3f steps/s (%lld steps in %.2f s), "
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
  if (json_path) {
    Json j = r.to_json();
    j["model"] = c.model_dir.string();
    j["device"] = c.device;
    j["mixed_precision"] = c.mixed_precision;
    j["resolution"] = c.resolution;
    j["use_lora"] = c.use_lora;
    j["gradient_checkpointing"] = c.gradient_checkpointing;
    j["cache_latents"] = c.cache_latents;
    write_json_file(*json_path, j);
  }
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("bench-finetune", "DreamBooth training steps/s and peak memory on synthetic data",
                    run_bench_finetune);

}  // namespace fairdiff::cli
