// Settings of a DreamBooth / LoRA fine-tuning run (the flags of `fairdiff finetune`), their validation and
// their JSON form (saved with the output and in every checkpoint, so --resume can refuse a changed run).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/json.h"
#include "diffusion/single_file_arch.h"
#include "train/flat_adamw.h"
#include "train/lora.h"
#include "train/lr_schedule.h"

namespace fairdiff::train {

// A prior-preservation class: its prompt and the folder of its images (missing ones are generated into it).
struct ClassConcept {
  std::string prompt;
  std::filesystem::path data;
};

struct FinetuneConfig {
  std::filesystem::path model_dir;      // a diffusers folder or a single-file checkpoint
  SingleFileOptions single_file;        // how to read a single-file model_dir (its arch or config folder)
  std::filesystem::path instance_data;  // folder of images, or CSV file,caption
  std::string instance_prompt;          // with a folder
  std::filesystem::path out;

  bool with_prior_preservation = false;
  std::string class_prompt;
  std::filesystem::path class_data;
  // Several classes in one model (the study's concepts list: one class per occupation); when given, replaces
  // class_prompt/class_data. num_class_images applies to each.
  std::vector<ClassConcept> class_concepts;
  int64_t num_class_images = 100;
  double prior_loss_weight = 1.0;
  int64_t class_inference_steps = 50;  // generation of missing class images
  double class_guidance_scale = 7.5;
  int64_t sample_batch_size = 4;

  LrScheduleConfig lr;  // lr.total_steps == max_train_steps
  int64_t max_train_steps = 400;
  int64_t train_batch_size = 1;
  int64_t gradient_accumulation_steps = 1;
  int64_t resolution = 0;                // 0: the model's native size
  std::string mixed_precision = "auto";  // auto | no | fp16 | bf16 (auto: bf16 on CUDA, no on the CPU)
  bool gradient_checkpointing = false;
  bool train_text_encoder = false;
  double max_grad_norm = 1.0;
  AdamWConfig adam;
  uint64_t seed = 0;
  bool cache_latents = true;  // encode every image once before the first step (not every step)
  // Share of instance rows trained with the empty caption, so classifier-free guidance has an unconditional
  // prediction to start from (training a model from scratch; 0 for fine-tuning, as the reference trainer).
  double caption_dropout = 0.0;

  int64_t checkpointing_steps = 500;    // 0: only on interrupt
  int64_t checkpoints_total_limit = 1;  // older checkpoints are deleted once a newer one is complete
  bool resume = false;

  bool use_lora = false;
  LoraConfig lora;

  std::string device = "auto";  // auto: CUDA when present, else the CPU

  // class_concepts, or the one class of class_prompt/class_data; empty without prior preservation.
  std::vector<ClassConcept> concepts() const;
  // Where checkpoints and the unfinished output live until the run completes: "<out>.work".
  std::filesystem::path work_dir() const;
  Json to_json() const;
  // The settings that determine the numbers (everything but resume, checkpointing and the limit); a
  // checkpoint can only be resumed under the same fingerprint.
  Json fingerprint() const;
};

// Checks every flag value and their combinations (no file access); UsageError naming the flag.
void validate_finetune_flags(const FinetuneConfig& config);
// --resolution, or the model's native size (UNet sample_size x the VAE's latent scale factor) when 0.
int64_t training_resolution(const FinetuneConfig& config);
// Checks the files the run will read and write before any model is loaded: the model layout, the instance data
// (every image read and size-checked), the class folder, the output and work folders. InputError/UsageError.
void validate_finetune_inputs(const FinetuneConfig& config);

}  // namespace fairdiff::train
