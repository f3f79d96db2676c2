#include "train/finetune_config.h"

#include "core/error.h"
#include "core/fs.h"
#include "diffusion/stable_diffusion.h"
#include "train/training_data.h"

namespace fairdiff::train {
namespace fs = std::filesystem;

fs::path FinetuneConfig::work_dir() const {
  fs::path base = out;
  if (!base.has_filename()) base = base.parent_path();  // "out/" -> "out"
  return base.string() + ".work";
}

Json FinetuneConfig::fingerprint() const {
  Json j = to_json();
  for (const char* key : {"resume", "checkpointing_steps", "checkpoints_total_limit", "out"}) j.erase(key);
  return j;
}

Json FinetuneConfig::to_json() const {
  Json j{{"model", model_dir.string()},
         {"instance_data", instance_data.string()},
         {"instance_prompt", instance_prompt},
         {"out", out.string()},
         {"with_prior_preservation", with_prior_preservation},
         {"class_prompt", class_prompt},
         {"class_data", class_data.string()},
         {"num_class_images", num_class_images},
         {"prior_loss_weight", prior_loss_weight},
         {"class_inference_steps", class_inference_steps},
         {"class_guidance_scale", class_guidance_scale},
         {"learning_rate", lr.base_lr},
         {"lr_scheduler", lr.name},
         {"lr_warmup_steps", lr.warmup_steps},
         {"lr_power", lr.polynomial_power},
         {"lr_end", lr.polynomial_end_lr},
         {"max_train_steps", max_train_steps},
         {"train_batch_size", train_batch_size},
         {"gradient_accumulation_steps", gradient_accumulation_steps},
         {"resolution", resolution},
         {"mixed_precision", mixed_precision},
         {"gradient_checkpointing", gradient_checkpointing},
         {"train_text_encoder", train_text_encoder},
         {"max_grad_norm", max_grad_norm},
         {"adam_beta1", adam.beta1},
         {"adam_beta2", adam.beta2},
         {"adam_weight_decay", adam.weight_decay},
         {"adam_epsilon", adam.eps},
         {"seed", seed},
         {"cache_latents", cache_latents},
         {"checkpointing_steps", checkpointing_steps},
         {"checkpoints_total_limit", checkpoints_total_limit},
         {"resume", resume},
         {"use_lora", use_lora},
         {"lora_rank", lora.rank},
         {"lora_alpha", lora.alpha},
         {"device", device}};
  if (caption_dropout > 0) j["caption_dropout"] = caption_dropout;  // absent when off: older checkpoints resume
  return j;
}

void validate_finetune_flags(const FinetuneConfig& c) {
  if (c.model_dir.empty()) throw UsageError("--model is required (a Stable Diffusion model in the diffusers layout)");
  if (c.instance_data.empty())
    throw UsageError("--instance-data is required (a folder of images or a CSV file,caption)");
  if (c.out.empty()) throw UsageError("--out is required (the folder to write the fine-tuned model to)");
  const bool csv = is_caption_csv(c.instance_data);
  if (csv && !c.instance_prompt.empty()) {
    throw UsageError("--instance-prompt is for a folder of images; the CSV " + c.instance_data.string() +
                     " gives each image its caption");
  }
  if (!csv && c.instance_prompt.empty()) {
    throw UsageError("--instance-prompt is required with a folder of instance images (or give a CSV file,caption)");
  }
  if (c.with_prior_preservation) {
    if (c.class_prompt.empty()) throw UsageError("--with-prior-preservation needs --class-prompt");
    if (c.class_data.empty())
      throw UsageError(
          "--with-prior-preservation needs --class-data (a folder; missing class "
          "images are generated into it and kept)");
    if (c.num_class_images < c.train_batch_size) {
      throw UsageError("--num-class-images " + std::to_string(c.num_class_images) +
                       " is smaller than --train-batch-size " + std::to_string(c.train_batch_size) +
                       " (each batch pairs instance and class images)");
    }
  } else if (!c.class_prompt.empty() || !c.class_data.empty()) {
    throw UsageError("--class-prompt and --class-data belong to --with-prior-preservation");
  }
  if (c.mixed_precision != "no" && c.mixed_precision != "fp16" && c.mixed_precision != "bf16") {
    throw UsageError("--mixed-precision '" + c.mixed_precision + "': expected no, fp16 or bf16");
  }
  if (c.lr.total_steps != c.max_train_steps) throw std::logic_error("lr.total_steps must equal max_train_steps");
  validate_lr_schedule(c.lr);
  if (c.resolution != 0 && c.resolution < 8) throw UsageError("--resolution must be at least 8");
  if (c.use_lora && c.lora.rank < 1) throw UsageError("--lora-rank must be at least 1");
  if (c.use_lora && !(c.lora.alpha > 0)) throw UsageError("--lora-alpha must be positive");
  if (!(c.max_grad_norm > 0)) throw UsageError("--max-grad-norm must be positive");
  if (!(c.caption_dropout >= 0 && c.caption_dropout < 1)) throw UsageError("--caption-dropout must be in [0, 1)");
}

int64_t training_resolution(const FinetuneConfig& c) {
  if (c.resolution != 0) return c.resolution;
  const fs::path unet = c.model_dir / "unet" / "config.json", vae = c.model_dir / "vae" / "config.json";
  return UNet2DConditionConfig::from_json(read_json_file(unet), unet.string()).sample_size *
         AutoencoderKLConfig::from_json(read_json_file(vae), vae.string()).latent_scale_factor();
}

void validate_finetune_inputs(const FinetuneConfig& c) {
  validate_model_directory(c.model_dir);
  const int64_t resolution = training_resolution(c);
  const auto f = AutoencoderKLConfig::from_json(read_json_file(c.model_dir / "vae" / "config.json"), "vae config")
                     .latent_scale_factor();
  if (resolution % f != 0) {
    throw UsageError("--resolution " + std::to_string(resolution) + ": expected a multiple of " + std::to_string(f) +
                     " (the VAE's latent scale factor)");
  }
  // Every instance image is decoded and size-checked now, so a bad file fails before minutes of model loading.
  const auto examples = load_instance_examples(c.instance_data, c.instance_prompt, resolution);
  if (static_cast<int64_t>(examples.size()) < c.train_batch_size) {
    throw UsageError("--train-batch-size " + std::to_string(c.train_batch_size) + " is larger than the " +
                     std::to_string(examples.size()) + " instance images in " + c.instance_data.string());
  }
  if (c.with_prior_preservation && fs::exists(c.class_data) && !fs::is_directory(c.class_data)) {
    throw InputError("--class-data " + c.class_data.string() + " is not a folder");
  }
  if (fs::exists(c.out) && !(fs::is_directory(c.out) && fs::is_empty(c.out))) {
    throw UsageError("--out " + c.out.string() +
                     " already exists; choose a new folder (a finished run is never "
                     "overwritten)");
  }
  const fs::path parent = fs::absolute(c.out).parent_path();
  if (!fs::is_directory(parent)) throw UsageError("the folder of --out, " + parent.string() + ", does not exist");
  if (fs::exists(c.work_dir()) && !c.resume) {
    throw UsageError(c.work_dir().string() + " holds an unfinished run of --out " + c.out.string() +
                     "; pass --resume to continue it, or delete that folder to start over");
  }
}

}  // namespace fairdiff::train
