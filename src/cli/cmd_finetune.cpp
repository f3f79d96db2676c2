// fairdiff finetune: DreamBooth fine-tuning (full UNet, optionally the text encoder, or LoRA) with prior
// preservation, as the study's mitigation step.
#include <cstdio>

#include "cli/args.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "train/dreambooth_trainer.h"

namespace fairdiff::cli {
namespace {

int run_finetune_command(const std::vector<std::string>& argv) {
  Args args("finetune",
            "DreamBooth fine-tuning of a Stable Diffusion model (diffusers layout) on instance images: a folder with\n"
            "--instance-prompt, or a CSV file,caption. With --with-prior-preservation, class images (generated with\n"
            "the base model when --class-data holds fewer than --num-class-images, and kept) regularise the model.\n"
            "Writes a full model in the diffusers layout, or LoRA weights (--use-lora), with loss_curve.csv and\n"
            "finetune_settings.json. Checkpoints go to <out>.work until the run completes; --resume continues.",
            {{"model", "DIR", "base model (diffusers layout)"},
             {"instance-data", "DIR|CSV", "instance images: a folder, or a CSV with columns file,caption"},
             {"instance-prompt", "TEXT", "the prompt of every image of an instance folder"},
             {"out", "DIR", "output folder (must not exist yet)"},
             {"with-prior-preservation", "", "add the class-image loss"},
             {"class-prompt", "TEXT", "prompt of the class images"},
             {"class-data", "DIR", "class images folder (created; missing images are generated into it)"},
             {"num-class-images", "N", "class images to use (default 100)"},
             {"prior-loss-weight", "W", "weight of the class loss (default 1.0)"},
             {"class-inference-steps", "N", "denoising steps for generated class images (default 50)"},
             {"class-guidance-scale", "G", "guidance scale for generated class images (default 7.5)"},
             {"sample-batch-size", "N", "batch size when generating class images (default 4)"},
             {"learning-rate", "LR", "base learning rate (default 5e-6)"},
             {"lr-scheduler", "NAME", "constant|linear|polynomial|cosine|constant_with_warmup (default constant)"},
             {"lr-warmup-steps", "N", "linear warm-up steps (default 0)"},
             {"lr-power", "P", "polynomial schedule power (default 1.0)"},
             {"max-train-steps", "N", "optimizer steps (default 400)"},
             {"train-batch-size", "N", "instance images per step (as many class images are added) (default 1)"},
             {"gradient-accumulation-steps", "N", "micro-batches per optimizer step (default 1)"},
             {"resolution", "PX", "training resolution: resize + center crop (default: the model's native size)"},
             {"mixed-precision", "MODE", "no|fp16|bf16: compute dtype, with fp32 master weights (default no)"},
             {"gradient-checkpointing", "", "recompute UNet block activations in backward to save memory"},
             {"train-text-encoder", "", "also train the text encoder (or its attention, with --use-lora)"},
             {"max-grad-norm", "N", "gradient clipping norm (default 1.0)"},
             {"adam-weight-decay", "W", "AdamW weight decay (default 1e-2)"},
             {"seed", "N", "random seed (default 0)"},
             {"no-cache-latents", "", "encode every image at every step (same numbers, slower)"},
             {"caption-dropout", "P", "share of instance rows trained with the empty caption (default 0)"},
             {"checkpointing-steps", "N", "save a checkpoint every N steps (default 500; 0: only on Ctrl-C)"},
             {"checkpoints-total-limit", "N", "checkpoints kept (default 1)"},
             {"resume", "", "continue from the latest checkpoint in <out>.work"},
             {"use-lora", "", "train LoRA adapters instead of the full UNet"},
             {"lora-rank", "R", "LoRA rank (default 4)"},
             {"lora-alpha", "A", "LoRA alpha; the update is scaled by alpha/rank (default: the rank)"},
             {"device", "DEV", "cpu, cuda or cuda:N (default cpu)"}},
            argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  train::FinetuneConfig c;
  c.model_dir = args.require("model");
  c.instance_data = args.require("instance-data");
  c.instance_prompt = args.get("instance-prompt", "");
  c.out = args.require("out");
  c.with_prior_preservation = args.flag("with-prior-preservation");
  c.class_prompt = args.get("class-prompt", "");
  c.class_data = args.get("class-data", "");
  c.num_class_images = args.get_int("num-class-images", 100, 1, 1000000);
  c.prior_loss_weight = args.get_double("prior-loss-weight", 1.0, 0.0, 1e6);
  c.class_inference_steps = args.get_int("class-inference-steps", 50, 1, 1000);
  c.class_guidance_scale = args.get_double("class-guidance-scale", 7.5, 0.0, 100.0);
  c.sample_batch_size = args.get_int("sample-batch-size", 4, 1, 1024);
  c.max_train_steps = args.get_int("max-train-steps", 400, 1, 100000000);
  c.lr.base_lr = args.get_double("learning-rate", 5e-6, 1e-12, 10.0);
  c.lr.name = args.get_choice("lr-scheduler", "constant", train::lr_schedule_names());
  c.lr.warmup_steps = args.get_int("lr-warmup-steps", 0, 0, 100000000);
  c.lr.polynomial_power = args.get_double("lr-power", 1.0, 1e-6, 100.0);
  c.lr.total_steps = c.max_train_steps;
  c.train_batch_size = args.get_int("train-batch-size", 1, 1, 4096);
  c.gradient_accumulation_steps = args.get_int("gradient-accumulation-steps", 1, 1, 4096);
  c.resolution = args.get_int("resolution", 0, 8, 8192);
  c.mixed_precision = args.get_choice("mixed-precision", "no", {"no", "fp16", "bf16"});
  c.gradient_checkpointing = args.flag("gradient-checkpointing");
  c.train_text_encoder = args.flag("train-text-encoder");
  c.max_grad_norm = args.get_double("max-grad-norm", 1.0, 1e-12, 1e12);
  c.adam.weight_decay = args.get_double("adam-weight-decay", 1e-2, 0.0, 10.0);
  c.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, (1LL << 53)));
  c.cache_latents = !args.flag("no-cache-latents");
  c.caption_dropout = args.get_double("caption-dropout", 0.0, 0.0, 0.999);
  c.checkpointing_steps = args.get_int("checkpointing-steps", 500, 0, 100000000);
  c.checkpoints_total_limit = args.get_int("checkpoints-total-limit", 1, 1, 100000);
  c.resume = args.flag("resume");
  c.use_lora = args.flag("use-lora");
  c.lora.rank = args.get_int("lora-rank", 4, 1, 4096);
  c.lora.alpha = args.get_double("lora-alpha", static_cast<double>(c.lora.rank), 1e-6, 1e6);
  if (!c.use_lora && (args.has("lora-rank") || args.has("lora-alpha"))) {
    throw UsageError("--lora-rank and --lora-alpha belong to --use-lora");
  }
  c.device = args.get("device", "cpu");

  install_interrupt_handler();
  const train::FinetuneResult result = train::run_finetune(c);
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
