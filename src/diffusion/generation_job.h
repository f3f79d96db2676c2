// A resumable generation run: N images per prompt written to OUT/images/<prompt_id>/<index>.png with a
// manifest (OUT/manifest.csv: one row per finished image with its prompt, seed, file, every setting, and the file's
// size and SHA-256, by which a resumed run tells a kept image from a damaged one)
// and the run's settings (OUT/run.json). Image i of every prompt uses seed = run seed + i, so prompts are
// compared under the same noise (common random numbers) and `--seed S` reproduces the reference's
// generator=torch.Generator("cpu").manual_seed(S) for image 0. A rerun skips finished images; a run
// directory holding other settings is refused rather than mixed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/shard.h"
#include "diffusion/intervention.h"
#include "diffusion/single_file_arch.h"

namespace fairdiff {

// One prompt of a run (a row of core/prompts.h's PromptSet, or a single --prompt).
struct PromptItem {
  std::string prompt_id;
  std::string prompt;
  int64_t images = 0;  // images of this prompt; 0: the run's images_per_prompt (a plan CSV gives each its own)
};

// A folder-safe id for a single --prompt.
std::string prompt_id_for(const std::string& prompt);

struct GenerationSettings {
  std::filesystem::path model_dir;  // a diffusers folder or a single-file checkpoint
  SingleFileOptions single_file;    // how to read a single-file checkpoint
  std::vector<PromptItem> prompts;
  std::string negative_prompt;
  int64_t images_per_prompt = 1;
  int64_t steps = 50;
  double guidance_scale = 7.5;
  std::string scheduler = "pndm";
  uint64_t seed = 0;
  int64_t width = 0;  // 0: the model's native size
  int64_t height = 0;
  int64_t batch_size = 1;
  std::string device = "auto";  // auto: CUDA when present, else the CPU (core/device.h)
  std::string dtype = "auto";   // auto: fp16 on CUDA, fp32 on the CPU
  std::filesystem::path out_dir;
  std::filesystem::path lora_file;  // optional
  double lora_scale = 1.0;
  // A training-free mitigation (mitigate/), or none. Its settings join the run's identity; the manifest's
  // `group` column names the group it steered each image toward.
  Intervention intervention;
  // This process's shard of the run (core/shard.h): it makes only the images it owns, into its own run folder
  // (run.json records "shard": "K/N"); `fairdiff merge` joins the shards' folders into the unsharded run's.
  Shard shard;

  // The settings that change pixels (everything but batch size and device), as stored in run.json.
  Json identity() const;
};

struct GenerationSummary {
  int64_t generated = 0;
  int64_t skipped = 0;  // kept from an earlier run (checked intact)
  int64_t damaged = 0;  // kept files that were truncated, emptied or replaced, made again
  double seconds = 0;
};

// Hook to modify the loaded model before generating (e.g. apply LoRA weights); may be empty.
struct StableDiffusionModel;
using ModelHook = std::function<void(StableDiffusionModel&)>;

GenerationSummary run_generation(const GenerationSettings& settings, const ModelHook& hook = nullptr);

// `fairdiff merge`: the finished shards of one generation run (every K of N once, the same settings, every image
// each owns made and intact) joined into `out_dir` (new or empty) as the unsharded run would have written it:
// the same run.json, manifest.csv and images, byte for byte. Nothing is written when a check fails (InputError
// naming the shard folder and what is wrong). Returns the number of images.
int64_t merge_generation_shards(const std::vector<std::filesystem::path>& shard_dirs,
                                const std::filesystem::path& out_dir);

}  // namespace fairdiff
