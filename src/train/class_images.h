// Prior-preservation class images: when the class folder holds fewer than the requested number, the missing
// ones are generated with the base model (the class prompt, one seed per image) and kept in the folder, so a
// later run reuses them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "diffusion/stable_diffusion.h"

namespace fairdiff::train {

struct ClassImageRequest {
  std::filesystem::path dir;
  std::string prompt;
  int64_t num_images = 100;
  uint64_t seed = 0;
  int64_t steps = 50;
  double guidance_scale = 7.5;
  int64_t batch_size = 4;
  // Data-parallel ranks share the work: this one makes the missing images of blocks k with k % count == index.
  int shard_index = 0;
  int shard_count = 1;
};

// Images the folder already holds (PNG/JPEG).
int64_t count_class_images(const std::filesystem::path& dir);
// The prompt a class folder's images were generated for is kept in DIR/class_prompt.txt; reusing the folder for
// another prompt is an InputError naming both (a folder of the user's own images, without that file, is taken
// as it is).
void check_class_folder_prompt(const std::filesystem::path& dir, const std::string& prompt);
// Generates the missing images as class-<index>.png (this shard's blocks); returns how many it generated. Batches are
// fixed positions of the index range (class-0..B-1, B..2B-1, ...), so an interrupted run completed later gives the same
// pixels as an uninterrupted one.
int64_t generate_missing_class_images(StableDiffusionModel& model, const ClassImageRequest& request);

}  // namespace fairdiff::train
