// fairdiff finetune: DreamBooth fine-tuning (full UNet, optionally the text encoder, or LoRA) with prior
// preservation, as the study's mitigation step. Every flag is bound to a field of train::FinetuneConfig, whose
// initialisers are the defaults --help prints.
#include <cstdio>
#include <cstdlib>

#include "cli/args.h"
#include "cli/finetune_workers.h"
#include "cli/model_options.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "cli/worker_processes.h"
#include "core/device.h"
#include "core/error.h"
#include "core/hub_cache.h"
#include "core/interrupt.h"
#include "train/dreambooth_trainer.h"

namespace fairdiff::cli {
namespace {

int run_finetune_command(const std::vector<std::string>& argv) {
  train::FinetuneConfig c;
  std::string gpus_flag;
  int64_t workers = 1;
  OptionTable table;
  table
      .value("model", "PATH",
             "base model: a diffusers folder, a single-file SD 1.x/2.x .safetensors, or a Hub id ORG/NAME[@REVISION] "
             "in the Hugging Face cache",
             c.model_dir, "model_dir")
      .value("instance-data", "DIR|CSV",
             "instance images: a folder, a CSV with columns file,caption, or generate's manifest.csv", c.instance_data)
      .value("instance-prompt", "TEXT", "the prompt of every image of an instance folder", c.instance_prompt)
      .value("out", "DIR", "output folder (must not exist yet)", c.out)
      .flag("with-prior-preservation", "add the class-image loss", c.with_prior_preservation)
      .value("class-prompt", "TEXT", "prompt of the class images", c.class_prompt)
      .value("class-data", "DIR", "class images folder (created; missing images are generated into it)", c.class_data)
      .value("num-class-images", "N", "class images to use", c.num_class_images, 1, 1000000)
      .value("prior-loss-weight", "W", "weight of the class loss", c.prior_loss_weight, 0.0, 1e6)
      .value("class-steps", "N", "denoising steps for generated class images", c.class_inference_steps, 1, 1000,
             "class_inference_steps")
      .value("class-guidance", "G", "guidance scale for generated class images", c.class_guidance_scale, 0.0, 100.0,
             "class_guidance_scale")
      .value("sample-batch-size", "N", "batch size when generating class images", c.sample_batch_size, 1, 1024)
      .value("learning-rate", "LR", "base learning rate", c.lr.base_lr, 1e-12, 10.0, "lr.base_lr")
      .choice("lr-scheduler", "learning-rate schedule", c.lr.name, train::lr_schedule_names(), "lr.name")
      .value("lr-warmup-steps", "N", "linear warm-up steps", c.lr.warmup_steps, 0, 100000000, "lr.warmup_steps")
      .value("lr-power", "P", "polynomial schedule power", c.lr.polynomial_power, 1e-6, 100.0, "lr.polynomial_power")
      .value("max-train-steps", "N", "optimizer steps", c.max_train_steps, 1, 100000000)
      .value("train-batch-size", "N",
             "instance images per step, over all ranks when data-parallel (as many class images are added)",
             c.train_batch_size, 1, 4096)
      .value("gradient-accumulation-steps", "N", "micro-batches per optimizer step", c.gradient_accumulation_steps, 1,
             4096)
      .value("resolution", "PX", "training resolution: resize + center crop (default: the model's native size)",
             c.resolution, 8, 8192)
      .choice("mixed-precision", "compute dtype, with fp32 master weights (auto: bf16 on CUDA, no on the CPU)",
              c.mixed_precision, {"auto", "no", "fp16", "bf16"})
      .flag("gradient-checkpointing", "recompute UNet block activations in backward to save memory",
            c.gradient_checkpointing)
      .flag("train-text-encoder", "also train the text encoder (or its attention, with --use-lora)",
            c.train_text_encoder)
      .value("max-grad-norm", "N", "gradient clipping norm", c.max_grad_norm, 1e-12, 1e12)
      .value("adam-weight-decay", "W", "AdamW weight decay", c.adam.weight_decay, 0.0, 10.0, "adam.weight_decay")
      .value("adam-epsilon", "E", "AdamW epsilon (the denominator's floor)", c.adam.eps, 1e-30, 1.0, "adam.eps")
      .value("seed", "N", "random seed", c.seed, 0, 1LL << 53)
      .flag("no-cache-latents", "VAE-encode each batch at every step (slower; the cache encodes each image once)",
            c.cache_latents, "cache_latents", false)
      .value("caption-dropout", "P", "share of instance rows trained with the empty caption", c.caption_dropout, 0.0,
             0.999)
      .value("checkpointing-steps", "N", "save a checkpoint every N steps (0: only on Ctrl-C)", c.checkpointing_steps,
             0, 100000000)
      .value("checkpoints-total-limit", "N", "checkpoints kept", c.checkpoints_total_limit, 1, 100000)
      .flag("resume", "continue from the latest checkpoint in <out>.work", c.resume)
      .flag("use-lora", "train LoRA adapters instead of the full UNet", c.use_lora)
      .value("lora-rank", "R", "LoRA rank", c.lora.rank, 1, 4096, "lora.rank")
      .value("lora-alpha", "A", "LoRA alpha; the update is scaled by alpha/rank (default: the rank)", c.lora.alpha,
             1e-6, 1e6, "lora.alpha")
      .value("device", "DEV", "auto, cpu, cuda or cuda:N (auto: CUDA when present)", c.device)
      .value("gpus", "all|N",
             "data-parallel over this host's GPUs: one rank per GPU (NCCL), --train-batch-size split over them;\n"
             "torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...) does the same across hosts",
             gpus_flag)
      .value("workers", "N", "data-parallel over N processes on --device (Gloo on the CPU)", workers, 1, 1024)
      .reports("lr.total_steps", "max-train-steps")
      .reports("steps", "class-steps");  // the pipeline's steps, when it generates class images
  bind_single_file_options(table, c.single_file);
  Args args("finetune",
            "DreamBooth fine-tuning of a Stable Diffusion model (diffusers layout) on instance images: a folder with\n"
            "--instance-prompt, or a CSV file,caption. With --with-prior-preservation, class images (generated with\n"
            "the base model when --class-data holds fewer than --num-class-images, and kept) regularise the model.\n"
            "Writes a full model in the diffusers layout, or LoRA weights (--use-lora), with loss_curve.csv and\n"
            "finetune_settings.json. Checkpoints go to <out>.work until the run completes; --resume continues.",
            table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  c.lr.total_steps = c.max_train_steps;
  if (!args.has("lora-alpha")) c.lora.alpha = static_cast<double>(c.lora.rank);
  if (!c.use_lora && (args.has("lora-rank") || args.has("lora-alpha"))) {
    throw UsageError("--lora-rank and --lora-alpha belong to --use-lora");
  }
  if (c.model_dir.empty()) throw UsageError("finetune: --model is required");
  c.model_dir = resolve_model_path(c.model_dir.string());  // a Hub id: its snapshot in the Hugging Face cache
  if (c.instance_data.empty()) throw UsageError("finetune: --instance-data is required");
  if (c.out.empty()) throw UsageError("finetune: --out is required");

  install_interrupt_handler();
  if (args.has("gpus") || args.has("workers")) {
    if (args.has("gpus") && args.has("workers")) throw UsageError("finetune: give --gpus or --workers, not both");
    if (args.has("gpus") && args.has("device"))
      throw UsageError("finetune: --gpus picks the devices (cuda:0 ...); drop --device");
    if (std::getenv("WORLD_SIZE") && std::string(std::getenv("WORLD_SIZE")) != "1")
      throw UsageError("finetune: --gpus/--workers start the ranks themselves; WORLD_SIZE is already set (torchrun?)");
    const std::vector<std::string> devices =
        args.has("gpus") ? gpu_devices("finetune", gpus_flag)
                         : std::vector<std::string>(static_cast<size_t>(workers),
                                                    c.device == "auto" ? resolve_device_name("auto") : c.device);
    if (c.train_batch_size < static_cast<int64_t>(devices.size())) {
      throw UsageError("finetune: --train-batch-size " + std::to_string(c.train_batch_size) + " is below the " +
                       std::to_string(devices.size()) +
                       " ranks: it is the global batch, split over them; raise it or start fewer ranks");
    }
    run_finetune_workers(without_options(argv, {"--gpus", "--workers", "--device"}), devices, c.work_dir());
    return 0;
  }
  const train::FinetuneResult result = table.with_flag_names([&] { return train::run_finetune(c); });
  std::printf("wrote %s: %s after %lld steps (%lld in this run, %.1f s), final loss %.5f\n",
              result.out.string().c_str(), c.use_lora ? "LoRA weights" : "fine-tuned model",
              static_cast<long long>(c.max_train_steps), static_cast<long long>(result.steps_run), result.seconds,
              result.final_loss);
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("finetune", "DreamBooth / LoRA fine-tuning with prior preservation, resumable",
                    run_finetune_command);

}  // namespace fairdiff::cli
