// fairdiff generate: images for a prompt or a prompts CSV, resumable (see diffusion/generation_job.h).
#include <cstdio>

#include "cli/args.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/fs.h"
#include "diffusion/generation_job.h"
#include "diffusion/schedulers/scheduler.h"
#include "train/lora.h"

namespace fairdiff::cli {
namespace {

int run_generate(const std::vector<std::string>& argv) {
  Args args("generate", "Generate images with a Stable Diffusion model in the diffusers layout.",
            {{"model", "DIR", "model directory (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)"},
             {"prompt", "TEXT", "one prompt (its id is derived from the text)"},
             {"prompts", "CSV", "prompts file with columns prompt_id,prompt"},
             {"negative-prompt", "TEXT", "negative prompt for classifier-free guidance (default: empty)"},
             {"images-per-prompt", "N", "images per prompt (default 1)"},
             {"steps", "N", "denoising steps (default 50)"},
             {"guidance", "G", "classifier-free guidance scale (default 7.5; <= 1 disables guidance)"},
             {"scheduler", "NAME", "pndm | ddim | euler | dpmpp2m (default pndm, as the study)"},
             {"seed", "S", "run seed; image i of every prompt uses seed S + i (default 0)"},
             {"width", "W", "image width (default: the model's native size)"},
             {"height", "H", "image height (default: the model's native size)"},
             {"batch-size", "B", "images per UNet batch (default 1)"},
             {"device", "cpu|cuda", "compute device (default cpu)"},
             {"dtype", "fp32|fp16|bf16", "compute dtype (default fp32)"},
             {"lora", "FILE", "LoRA weights to apply (safetensors from finetune --use-lora, diffusers/PEFT key names)"},
             {"lora-scale", "S", "strength of the LoRA update (default 1; 0 leaves the model as it is)"},
             {"out", "DIR", "run directory: images/<prompt_id>/<index>.png, manifest.csv, run.json"}},
            argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  GenerationSettings s;
  s.model_dir = args.require("model");
  if (args.has("prompt") == args.has("prompts"))
    throw UsageError("generate: give exactly one of --prompt TEXT or --prompts CSV");
  if (args.has("prompt")) {
    std::string prompt = args.require("prompt");
    if (prompt.empty()) throw UsageError("generate: --prompt is empty");
    s.prompts = {{prompt_id_for(prompt), prompt}};
  }
  s.negative_prompt = args.get("negative-prompt", "");
  s.images_per_prompt = args.get_int("images-per-prompt", 1, 1, 1000000);
  s.steps = args.get_int("steps", 50, 1, 1000);
  s.guidance_scale = args.get_double("guidance", 7.5, 0.0, 100.0);
  s.scheduler = args.get_choice("scheduler", "pndm", scheduler_names());
  s.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, (1LL << 53)));
  s.width = args.get_int("width", 0, 8, 4096);
  s.height = args.get_int("height", 0, 8, 4096);
  for (int64_t side : {s.width, s.height}) {
    if (side % 8 != 0)
      throw UsageError("generate: --width/--height " + std::to_string(side) + " must be a multiple of 8");
  }
  s.batch_size = args.get_int("batch-size", 1, 1, 1024);
  s.device = args.get("device", "cpu");
  s.dtype = args.get_choice("dtype", "fp32", {"fp32", "fp16", "bf16"});
  s.out_dir = args.require("out");
  if (args.has("prompts")) s.prompts = read_prompts_csv(args.require("prompts"));
  if (args.has("lora-scale") && !args.has("lora")) throw UsageError("generate: --lora-scale needs --lora FILE");
  ModelHook hook;
  if (args.has("lora")) {
    s.lora_file = args.require("lora");
    require_file(s.lora_file, "--lora");
    s.lora_scale = args.get_double("lora-scale", 1.0, -10.0, 10.0);
    hook = [&s](StableDiffusionModel& model) {
      const size_t layers = train::apply_lora(model, s.lora_file, s.lora_scale);
      std::printf("applied LoRA %s to %zu layers (scale %g)\n", s.lora_file.string().c_str(), layers, s.lora_scale);
    };
  }

  GenerationSummary summary = run_generation(s, hook);
  std::printf("generated %lld image(s), skipped %lld already present, in %.1f s -> %s\n",
              static_cast<long long>(summary.generated), static_cast<long long>(summary.skipped), summary.seconds,
              s.out_dir.string().c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("generate", "generate images per prompt with Stable Diffusion (resumable)", run_generate);

}  // namespace fairdiff::cli
