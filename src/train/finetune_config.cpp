#include "train/finetune_config.h"

#include "core/error.h"
#include "core/fs.h"
#include "diffusion/stable_diffusion.h"
#include "train/checkpoint.h"
#include "train/training_data.h"

namespace fairdiff::train {
namespace fs = std::filesystem;

fs::path FinetuneConfig::work_dir() const {
  fs::path base = out;
  if (!base.has_filename()) base = base.parent_path();  // "out/" -> "out"
  return base.string() + ".work";
}

std::vector<ClassConcept> FinetuneConfig::concepts() const {
  if (!with_prior_preservation) return {};
  if (!class_concepts.empty()) return class_concepts;
  return {{class_prompt, class_data}};
}

Json FinetuneConfig::fingerprint() const {
  Json j = to_json();
  for (const char* key : {"resume", "checkpointing_steps", "checkpoints_total_limit", "out"}) j.erase(key);
  // The device's type: the ranks of a data-parallel run (cuda:0, cuda:1, ...) resume each other's checkpoints.
  const std::string device = j["device"].get<std::string>();
  j["device"] = device.substr(0, device.find(':'));
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
  if (!class_concepts.empty()) {
    Json concepts = Json::array();
    for (const auto& c : class_concepts)
      concepts.push_back({{"class_prompt", c.prompt}, {"class_data", c.data.string()}});
    j["class_concepts"] = concepts;
  }
  if (caption_dropout > 0) j["caption_dropout"] = caption_dropout;    // absent when off: older checkpoints resume
  if (!single_file.arch.empty()) j["model_arch"] = single_file.arch;  // absent unless given, likewise
  if (!single_file.config_dir.empty()) j["model_config"] = single_file.config_dir.string();
  return j;
}

// Errors name the config field (FieldError); the CLI reports it as its flag, the study as its config key.
void validate_finetune_flags(const FinetuneConfig& c) {
  if (c.model_dir.empty()) throw FieldError("model_dir", "is required (a Stable Diffusion model, diffusers layout)");
  if (c.instance_data.empty())
    throw FieldError("instance_data", "is required (a folder of images or a CSV file,caption)");
  if (c.out.empty()) throw FieldError("out", "is required (the folder to write the fine-tuned model to)");
  const bool csv = is_caption_csv(c.instance_data);
  if (csv && !c.instance_prompt.empty()) {
    throw FieldError("instance_prompt", "is for a folder of images; the CSV " + c.instance_data.string() +
                                            " gives each image its caption");
  }
  if (!csv && c.instance_prompt.empty()) {
    throw FieldError("instance_prompt", "is required with a folder of instance images (or give a CSV file,caption)");
  }
  if (c.with_prior_preservation && !c.class_concepts.empty()) {
    if (!c.class_prompt.empty() || !c.class_data.empty())
      throw FieldError("class_prompt", "cannot be given with a list of class concepts (one or the other)");
    for (const auto& concept_ : c.class_concepts) {
      if (concept_.prompt.empty() || concept_.data.empty())
        throw FieldError("class_concepts", "every class concept needs a class prompt and a class data folder");
    }
  } else if (c.with_prior_preservation) {
    if (c.class_prompt.empty()) throw FieldError("class_prompt", "is required with prior preservation");
    if (c.class_data.empty())
      throw FieldError("class_data",
                       "is required with prior preservation (a folder; missing class images are generated into it "
                       "and kept)");
  }
  if (c.with_prior_preservation && c.num_class_images < c.train_batch_size) {
    throw FieldError("num_class_images", std::to_string(c.num_class_images) + " is smaller than the train batch size " +
                                             std::to_string(c.train_batch_size) +
                                             " (each batch pairs instance and class images)");
  }
  if (!c.with_prior_preservation && (!c.class_prompt.empty() || !c.class_data.empty() || !c.class_concepts.empty())) {
    throw FieldError("class_prompt", "and the class data belong to prior preservation, which is off");
  }
  if (c.mixed_precision != "auto" && c.mixed_precision != "no" && c.mixed_precision != "fp16" &&
      c.mixed_precision != "bf16") {
    throw FieldError("mixed_precision", "'" + c.mixed_precision + "': expected auto, no, fp16 or bf16");
  }
  if (c.lr.total_steps != c.max_train_steps) throw std::logic_error("lr.total_steps must equal max_train_steps");
  validate_lr_schedule(c.lr);
  if (c.resolution != 0 && c.resolution < 8) throw FieldError("resolution", "must be at least 8");
  if (c.use_lora && c.lora.rank < 1) throw FieldError("lora.rank", "must be at least 1");
  if (c.use_lora && !(c.lora.alpha > 0)) throw FieldError("lora.alpha", "must be positive");
  if (!(c.max_grad_norm > 0)) throw FieldError("max_grad_norm", "must be positive");
  if (!(c.caption_dropout >= 0 && c.caption_dropout < 1)) throw FieldError("caption_dropout", "must be in [0, 1)");
}

int64_t training_resolution(const FinetuneConfig& c) {
  if (c.resolution != 0) return c.resolution;
  // A folder's configs, or a single file's header.
  const ModelArchitecture arch = read_model_architecture(c.model_dir, c.single_file);
  return arch.unet.sample_size * arch.vae.latent_scale_factor();
}

void validate_finetune_inputs(const FinetuneConfig& c) {
  if (!c.single_file.arch.empty() && !c.single_file.config_dir.empty()) {
    throw FieldError("model_arch", "and model_config both describe the model; give one of them");
  }
  if ((!c.single_file.arch.empty() || !c.single_file.config_dir.empty()) && !is_single_file_checkpoint(c.model_dir)) {
    throw FieldError(
        c.single_file.arch.empty() ? "model_config" : "model_arch",
        "describes a single-file model; " + c.model_dir.string() + " is a folder, whose configs say it all");
  }
  validate_model_directory(c.model_dir, c.single_file);
  const int64_t resolution = training_resolution(c);
  const int64_t f = read_model_architecture(c.model_dir, c.single_file).vae.latent_scale_factor();
  if (resolution % f != 0) {
    throw FieldError("resolution", std::to_string(resolution) + ": expected a multiple of " + std::to_string(f) +
                                       " (the VAE's latent scale factor)");
  }
  // Every instance image is decoded and size-checked now, so a bad file fails before minutes of model loading.
  const auto examples = load_instance_examples(c.instance_data, c.instance_prompt, resolution);
  if (static_cast<int64_t>(examples.size()) < c.train_batch_size) {
    throw FieldError("train_batch_size", std::to_string(c.train_batch_size) + " is larger than the " +
                                             std::to_string(examples.size()) + " instance images in " +
                                             c.instance_data.string());
  }
  for (const auto& concept_ : c.concepts()) {
    if (fs::exists(concept_.data) && !fs::is_directory(concept_.data))
      throw FieldInputError("class_data", concept_.data.string() + " is not a folder");
  }
  if (!is_new_or_empty_directory(c.out)) {
    throw FieldError("out",
                     c.out.string() + " already exists; choose a new folder (a finished run is never overwritten)");
  }
  const fs::path parent = fs::absolute(c.out).parent_path();
  if (!fs::is_directory(parent))
    throw FieldError("out", c.out.string() + ": its folder " + parent.string() + " does not exist");
  if (fs::is_directory(c.work_dir()) && !c.resume) {
    // An unfinished run has a checkpoint. A work folder without one is what a run that failed before its first
    // checkpoint leaves (settings.json, *.partial): starting afresh loses nothing. Anything else in it was not
    // written by finetune and is left alone.
    if (latest_checkpoint(c.work_dir())) {
      throw FieldError("resume", "is needed: " + c.work_dir().string() + " holds an unfinished run of " +
                                     c.out.string() + "; resume it, or delete that folder to start over");
    }
    for (const auto& entry : fs::directory_iterator(c.work_dir())) {
      const std::string name = entry.path().filename().string();
      const bool ours =
          name == "settings.json" || name == "output.partial" || name == "logs" || name.rfind("checkpoint-", 0) == 0;
      if (!ours) {
        throw FieldInputError("out",
                              "its work folder " + c.work_dir().string() + " holds " + name +
                                  ", which finetune did not write; move it away or choose another output folder");
      }
    }
  }
}

}  // namespace fairdiff::train
