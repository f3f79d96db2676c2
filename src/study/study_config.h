// A study's configuration file (TOML): the model, the prompts, how many images per prompt with which seeds and
// generation settings, the face profile, the planner's rule and the mitigation grid. `fairdiff study init`
// writes the seed study's configuration, commented; `audit` and `mitigate` read it. Every key is checked
// before any model loads: an unknown or mistyped key, a value of the wrong type or out of range is a
// ConfigError naming the file, the line and the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/json.h"

namespace fairdiff::study {

struct GenerationConfig {
  int64_t images_per_prompt = 100;
  uint64_t seed = 0;  // image i of every prompt uses seed + i (common random numbers across prompts and models)
  int64_t steps = 50;
  double guidance = 7.5;
  std::string scheduler = "pndm";
  std::string negative_prompt;
  int64_t width = 0;  // 0: the model's native size
  int64_t height = 0;
  int64_t batch_size = 1;
  std::string dtype = "auto";  // auto: fp16 on CUDA, fp32 on the CPU
};

struct AnalysisConfig {
  std::string profile = "default";
  int64_t batch_size = 16;  // images analysed per store transaction
};

struct PlanConfig {
  std::string rule = "study";  // study | target
  int64_t images_per_group = 10;
  double threshold = 0.4;
};

// One cell of the mitigation grid: a fine-tuning (dreambooth, lora: one per lr_scheduler x num_class_images x
// max_train_steps), or a training-free method (one cell each: balanced_prompting, projection, fair_diffusion,
// uce; see mitigate/ and docs/mitigations.md).
struct GridCell {
  std::string method;
  std::string lr_scheduler;  // fine-tuning cells only
  int64_t num_class_images = 0;
  int64_t max_train_steps = 0;

  // "dreambooth-constant-c20-s100", or the method's name for a training-free cell: folder-safe, unique in a grid.
  std::string name() const;
  bool trains() const { return method == "dreambooth" || method == "lora"; }
};

// The method names a study's mitigation.methods may hold.
const std::vector<std::string>& mitigation_methods();

struct MitigationConfig {
  std::vector<std::string> methods = {"dreambooth"};
  std::vector<std::string> lr_schedulers = {"constant", "linear", "polynomial"};
  std::vector<int64_t> num_class_images = {20, 300};
  std::vector<int64_t> max_train_steps = {100, 1000};
  double learning_rate = 5e-6;
  std::string instance_captions = "rewritten";  // rewritten: the plan's prompt; base: the occupation's prompt
  // none: every augmentation image trains; group: the face analysis reads each one, and only images read as the
  // planned gender and race train (augment_oversample candidates are generated per image wanted).
  std::string augment_check = "none";
  int64_t augment_oversample = 1;
  std::string class_prompts = "per_prompt";  // per_prompt: each occupation's prompt; generic: one prompt
  std::string generic_class_prompt = "A photo of a person";
  bool prior_preservation = true;
  double prior_loss_weight = 1.0;
  int64_t train_batch_size = 1;
  int64_t class_batch_size = 4;          // class images generated per batch
  std::string mixed_precision = "auto";  // auto: bf16 on CUDA, no on the CPU
  int64_t resolution = 0;                // 0: the model's native size
  uint64_t seed = 0;
  int64_t checkpointing_steps = 100;
  int64_t lora_rank = 4;
  double lora_alpha = 4.0;
  bool train_text_encoder = false;
  // Training-free methods (docs/mitigations.md has what each parameter does and the published values).
  double projection_lambda = 500;                   // Chuang et al.'s default
  std::string projection_attribute = "gender";      // gender | race | gender_race: the prompt pairs
  std::string fair_diffusion_attribute = "gender";  // gender | race | gender_race: what is steered
  double fair_diffusion_guidance_scale = 4;         // edit_guidance_scale (Fair Diffusion's published value)
  int64_t fair_diffusion_warmup_steps = 5;          // edit_warmup_steps
  double fair_diffusion_threshold = 0.95;           // edit_threshold
  double fair_diffusion_momentum_scale = 0.5;       // edit_momentum_scale
  double fair_diffusion_momentum_beta = 0.6;        // edit_mom_beta
  double uce_preserve_scale = 0.1;                  // weight of the preserved prompts (UCE's default)
  double uce_step = 1.0;  // attribute weight = step x (uniform share - base audit's share): the reference's rule
  std::string uce_attribute = "gender_race";  // gender | race | gender_race: the balanced mix

  // Fine-tuning methods x lr_schedulers x num_class_images x max_train_steps, then one cell per training-free
  // method, in the order `methods` lists them.
  std::vector<GridCell> grid() const;
  bool has_training() const;  // whether any method fine-tunes (the plan, augmentation and class images serve them)
};

struct EvaluationConfig {
  int64_t images_per_prompt = 100;  // images per prompt of each fine-tuned model's audit
};

struct ReportConfig {
  int64_t bootstrap = 1000;
  uint64_t bootstrap_seed = 20240917;
  // Classifier-error correction: `confusion = "auto"` (the default, also "") corrects with the confusion matrices
  // the face profile ships (faces/profiles.h profile_confusion_file; none for profiles without), "none" turns
  // correction off, a path uses that file.
  bool correct = true;
  std::filesystem::path confusion;  // the file when a path was given
  int64_t paired_images = 4;        // same-seed images per prompt in the base-vs-model grids
};

struct StudyConfig {
  std::filesystem::path file;  // where it was read from
  std::string name = "study";
  std::string model = "builtin";  // a diffusers folder, a Hub id ORG/NAME[@REVISION] in the Hugging Face cache, or
                                  // "builtin" (the model shipped in models/builtin)
  std::string device = "auto";    // auto: CUDA when present, else the CPU
  std::filesystem::path prompts;  // prompt_id,prompt[,template] CSV
  GenerationConfig generation;
  AnalysisConfig analysis;
  PlanConfig plan;
  MitigationConfig mitigation;
  EvaluationConfig evaluation;
  ReportConfig report;

  // The model folder: `model` resolved against the config's folder, else as a Hub id in the Hugging Face cache
  // (core/hub_cache.h), or the built-in model's folder.
  std::filesystem::path model_dir() const;
};

// Reads and validates `path`; relative paths in it are resolved against its folder.
StudyConfig read_study_config(const std::filesystem::path& path);
StudyConfig parse_study_config(const std::string& text, const std::filesystem::path& source);

// The seed study's configuration as commented TOML (prompts: `prompts_file`, written as given).
std::string seed_study_toml(const std::string& model, const std::string& prompts_file);

// The built-in model's folder (models/builtin in the source tree); empty when it is not there.
std::filesystem::path builtin_model_dir();

}  // namespace fairdiff::study
