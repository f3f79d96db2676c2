// DreamBooth training data: instance images (a folder with one prompt, or a CSV `file,caption` giving each image
// its own caption) and class images (a folder, with one class prompt), each resized so its shorter side is the
// training resolution and center-cropped, as pixels in [-1, 1].
//
// Shape legend: R training resolution.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/image.h"

namespace fairdiff::train {

struct TrainingExample {
  std::filesystem::path file;
  std::string prompt;
  torch::Tensor pixels;  // [3, R, R] float32 in [-1, 1]
};

// PNG and JPEG files directly inside `dir`, sorted by name.
std::vector<std::filesystem::path> list_image_files(const std::filesystem::path& dir);

// Instance data from a folder (every image gets `instance_prompt`) or a CSV with columns file,caption (file paths
// relative to the CSV's folder), or generate's manifest.csv (file,prompt: each image captioned with its prompt).
// InputError naming the folder, file or CSV line for: a missing or empty folder, a file that is not a readable image,
// an image smaller than the resolution, a CSV naming a missing file or giving an empty caption.
std::vector<TrainingExample> load_instance_examples(const std::filesystem::path& source,
                                                    const std::string& instance_prompt, int64_t resolution);
// The first `limit` class images of `dir` (sorted by name), all with `class_prompt`.
std::vector<TrainingExample> load_class_examples(const std::filesystem::path& dir, const std::string& class_prompt,
                                                 int64_t resolution, int64_t limit);

// Shorter side to `resolution` (bilinear with antialiasing, as PIL), then a center crop: [3, R, R] in [-1, 1].
// InputError naming `source` when the image is smaller than the resolution.
torch::Tensor resize_and_center_crop(const Image& image, int64_t resolution, const std::string& source);

// True when `path` names a CSV file (instance data given as file,caption rows).
bool is_caption_csv(const std::filesystem::path& path);

}  // namespace fairdiff::train
