// fairdiff generate: images for a prompt or a prompts CSV, resumable (see diffusion/generation_job.h).
#include <cstdio>
#include <string>

#include "cli/args.h"
#include "cli/generate_workers.h"
#include "cli/model_options.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "cli/worker_processes.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/hub_cache.h"
#include "core/prompts.h"
#include "core/strings.h"
#include "diffusion/generation_job.h"
#include "diffusion/schedulers/scheduler.h"
#include "diffusion/single_file.h"
#include "train/lora.h"
#if FAIRDIFF_WITH_MITIGATION
#include "cli/generate_mitigation.h"
#endif

namespace fairdiff::cli {
namespace {

int run_generate(const std::vector<std::string>& argv) {
  GenerationSettings s;
  std::string prompt;
  std::filesystem::path prompts_csv;
  std::vector<std::string> templates;  // each prompt's rewriting template, where its CSV has one
  std::string shard_flag, gpus_flag;
  int64_t workers = 0;
  OptionTable table;
  table
      .value("model", "PATH",
             "model directory (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/), or a "
             "single-file SD 1.x/2.x checkpoint (.safetensors, original layout; docs/models.md), or a Hub id "
             "ORG/NAME[@REVISION] in the Hugging Face cache (fairdiff model pull)",
             s.model_dir, "model_dir")
      .value("prompt", "TEXT", "one prompt (its id is derived from the text)", prompt)
      .value("prompts", "CSV", "prompt_id,prompt CSV, or a plan CSV (fairdiff plan: n_images of each augmented_prompt)",
             prompts_csv)
      .value("negative-prompt", "TEXT", "negative prompt for classifier-free guidance (default: empty)",
             s.negative_prompt)
      .value("images-per-prompt", "N", "images per prompt", s.images_per_prompt, 1, 1000000)
      .value("steps", "N", "denoising steps", s.steps, 1, 1000)
      .value("guidance", "G", "classifier-free guidance scale (<= 1 disables guidance)", s.guidance_scale, 0.0, 100.0,
             "guidance_scale")
      .choice("scheduler", "noise scheduler (pndm: the study's)", s.scheduler, scheduler_names())
      .value("seed", "S", "run seed; image i of every prompt uses seed S + i", s.seed, 0, 1LL << 53)
      .value("width", "W", "image width, a multiple of 8 (default: the model's native size)", s.width, 8, 4096)
      .value("height", "H", "image height, a multiple of 8 (default: the model's native size)", s.height, 8, 4096)
      .value("batch-size", "B", "images per UNet batch", s.batch_size, 1, 1024)
      .value("device", "DEV", "auto, cpu, cuda or cuda:N (auto: CUDA when present)", s.device)
      .choice("dtype", "compute dtype (auto: fp16 on CUDA, fp32 on the CPU)", s.dtype, {"auto", "fp32", "fp16", "bf16"})
      .value("lora", "FILE", "LoRA weights to apply (safetensors from finetune --use-lora, diffusers/PEFT key names)",
             s.lora_file, "lora_file")
      .value("lora-scale", "S", "strength of the LoRA update (0 leaves the model as it is)", s.lora_scale, -10.0, 10.0)
      .value("out", "DIR", "run directory: images/<prompt_id>/<index>.png, manifest.csv, run.json", s.out_dir,
             "out_dir")
      .value("shard", "K/N",
             "make only shard K of N (counted from 0) of the run's images, into its own --out; `fairdiff merge`\n"
             "joins the shards (default: from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX, else the whole run)",
             shard_flag)
      .value("gpus", "all|N",
             "one worker process per GPU of this host (cuda:0 ... cuda:N-1), each making a shard into\n"
             "OUT.shards/; merged into --out (a new folder) when all finish; the same command resumes",
             gpus_flag)
      .value("workers", "N", "like --gpus, N worker processes on --device (e.g. several CPU processes)", workers, 1,
             1024);
  bind_single_file_options(table, s.single_file);
#if FAIRDIFF_WITH_MITIGATION
  MitigationFlags mitigation;
  bind_mitigation_options(table, mitigation);
#endif
  Args args("generate",
            "Generate images with a Stable Diffusion model (a diffusers folder or a single-file checkpoint).",
            table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (s.model_dir.empty())
    throw UsageError("generate: --model is required (a model directory, diffusers layout, or a .safetensors file)");
  s.model_dir = resolve_model_path(s.model_dir.string());  // a Hub id: its snapshot in the Hugging Face cache
  if ((args.has("arch") || args.has("config")) && !is_single_file_checkpoint(s.model_dir)) {
    throw UsageError("generate: --arch and --config describe a single-file --model; " + s.model_dir.string() +
                     " is a folder, whose configs say it all");
  }
  if (args.has("arch") && args.has("config")) throw UsageError("generate: give --arch or --config, not both");
  if (args.has("prompt") == args.has("prompts"))
    throw UsageError("generate: give exactly one of --prompt TEXT or --prompts CSV");
  if (args.has("prompt")) {
    if (prompt.empty()) throw UsageError("generate: --prompt is empty");
    s.prompts = {{prompt_id_for(prompt), prompt}};
  }
  for (const auto& [flag, side] : {std::pair<const char*, int64_t>{"--width", s.width}, {"--height", s.height}}) {
    if (side % 8 != 0) {
      throw UsageError("generate: " + std::string(flag) + " " + std::to_string(side) + " must be a multiple of 8");
    }
  }
  if (s.out_dir.empty()) throw UsageError("generate: --out is required (the run directory)");
  // Workers: each worker process takes its shard, its device and its folder from the launcher.
  std::vector<std::string> worker_devices;
  if (args.has("gpus") && args.has("workers")) throw UsageError("generate: give --gpus or --workers, not both");
  if (args.has("gpus") || args.has("workers")) {
    if (args.has("shard")) throw UsageError("generate: --gpus/--workers make the shards themselves; drop --shard");
    if (args.has("gpus")) {
      if (args.has("device")) throw UsageError("generate: --gpus picks the devices (cuda:0 ...); drop --device");
      worker_devices = gpu_devices("generate", gpus_flag);
    } else {
      worker_devices.assign(static_cast<size_t>(workers), s.device);
    }
  }
  std::string shard_source;
  if (worker_devices.empty()) s.shard = resolve_shard(shard_flag, shard_source);
  if (s.shard.sharded() && shard_source != "--shard")
    std::fprintf(stderr, "generate: shard %s of the run (from %s)\n", s.shard.str().c_str(), shard_source.c_str());
  if (!prompts_csv.empty()) {
    if (is_plan_csv(prompts_csv)) {
      const PlannedPrompts planned = read_plan_as_prompts(prompts_csv);
      if (args.has("images-per-prompt"))
        throw UsageError("generate: --images-per-prompt does not apply to a plan CSV (its n_images column counts)");
      for (int i = 0; i < planned.prompts.size(); ++i)
        s.prompts.push_back({planned.prompts.ids[i], planned.prompts.texts[i], planned.images[i]});
    } else {
      const PromptSet prompts = read_prompts_csv(prompts_csv);
      for (int i = 0; i < prompts.size(); ++i) s.prompts.push_back({prompts.ids[i], prompts.texts[i]});
      templates = prompts.templates;
    }
  }
  if (args.has("lora-scale") && !args.has("lora")) throw UsageError("generate: --lora-scale needs --lora FILE");
  ModelHook hook;
  if (!s.lora_file.empty()) {
    require_file(s.lora_file, "--lora");
    hook = [&s](StableDiffusionModel& model) {
      const size_t layers = train::apply_lora(model, s.lora_file, s.lora_scale);
      std::printf("applied LoRA %s to %zu layers (scale %g)\n", s.lora_file.string().c_str(), layers, s.lora_scale);
    };
  }

#if FAIRDIFF_WITH_MITIGATION
  s.intervention =
      table.with_flag_names([&] { return make_mitigation(mitigation, args, s.prompts, templates, s.seed, s.steps); });
#endif
  if (!worker_devices.empty()) {
    validate_model_directory(s.model_dir, s.single_file);
    int64_t total = 0;
    for (const auto& p : s.prompts) total += p.images > 0 ? p.images : s.images_per_prompt;
    const int64_t merged = run_generation_workers(worker_base_arguments(argv), worker_devices, s.out_dir, total);
    std::printf("generated %lld image(s) with %zu workers -> %s\n", static_cast<long long>(merged),
                worker_devices.size(), s.out_dir.string().c_str());
    return 0;
  }
  const GenerationSummary summary = table.with_flag_names([&] { return run_generation(s, hook); });
  const std::string replaced =
      summary.damaged > 0 ? " (" + std::to_string(summary.damaged) + " of them replacing damaged ones)" : "";
  std::printf("generated %lld image(s)%s, skipped %lld already present, in %.1f s -> %s\n",
              static_cast<long long>(summary.generated), replaced.c_str(), static_cast<long long>(summary.skipped),
              summary.seconds, s.out_dir.string().c_str());
  return 0;
}

int run_merge(const std::vector<std::string>& argv) {
  std::filesystem::path out;
  OptionTable table;
  table.value("out", "DIR", "the merged run's folder (new or empty)", out);
  Args args("merge",
            "Join the run folders of `generate --shard K/N` (every shard of one run, finished) into one run folder,\n"
            "as the unsharded run would have written it.",
            table.specs(), argv, "SHARD_DIR...");
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (out.empty()) throw UsageError("merge: --out is required (the merged run's folder)");
  if (args.positionals().empty())
    throw UsageError("merge: give the shards' run folders: fairdiff merge --out DIR A B ...");
  std::vector<std::filesystem::path> shards(args.positionals().begin(), args.positionals().end());
  const int64_t images = merge_generation_shards(shards, out);
  std::printf("merged %zu shards, %lld images -> %s\n", shards.size(), static_cast<long long>(images),
              out.string().c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("generate", "generate images per prompt with Stable Diffusion (resumable)", run_generate);
FAIRDIFF_SUBCOMMAND("merge", "join the shards of a generation run (generate --shard K/N) into one run folder",
                    run_merge);

}  // namespace fairdiff::cli
