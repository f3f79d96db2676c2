#include "train/class_images.h"

#include <algorithm>

#include "core/error.h"
#include "core/fs.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/tensor_io.h"
#include "train/training_data.h"

namespace fairdiff::train {
namespace fs = std::filesystem;

int64_t count_class_images(const fs::path& dir) {
  if (!fs::is_directory(dir)) return 0;
  return static_cast<int64_t>(list_image_files(dir).size());
}

namespace {
const char* kClassPromptFile = "class_prompt.txt";
}  // namespace

void check_class_folder_prompt(const fs::path& dir, const std::string& prompt) {
  const fs::path marker = dir / kClassPromptFile;
  std::error_code ec;
  if (!fs::is_regular_file(marker, ec)) return;
  const std::string recorded = read_file(marker);
  if (recorded != prompt) {
    throw InputError("class folder " + dir.string() + " holds images generated for the class prompt '" + recorded +
                     "', not '" + prompt + "'; give another --class-data folder (its images are kept)");
  }
}

int64_t generate_missing_class_images(StableDiffusionModel& model, const ClassImageRequest& request) {
  ensure_directory(request.dir, "class images folder");
  check_class_folder_prompt(request.dir, request.prompt);
  if (!fs::exists(request.dir / kClassPromptFile)) write_file_atomic(request.dir / kClassPromptFile, request.prompt);
  const int64_t existing = count_class_images(request.dir);
  const int64_t missing = request.num_images - existing;
  if (missing <= 0) return 0;
  // Free file names, in index order; the seed of class-<i>.png is seed + i, so regenerating gives the same image.
  std::vector<int64_t> indices;
  for (int64_t i = 0; static_cast<int64_t>(indices.size()) < missing; ++i) {
    if (!fs::exists(request.dir / ("class-" + std::to_string(i) + ".png"))) indices.push_back(i);
  }
  // This shard's blocks only; the others' names stay free for their ranks (which write no other names).
  const auto mine = [&](int64_t index) {
    return (index / request.batch_size) % request.shard_count == request.shard_index;
  };
  indices.erase(std::remove_if(indices.begin(), indices.end(), [&](int64_t i) { return !mine(i); }), indices.end());
  if (indices.empty()) return 0;
  model.unet->eval();
  StableDiffusionPipeline pipeline(model);
  Progress progress("class images", static_cast<long long>(indices.size()), 0, "img");
  for (size_t begin = 0, end = 0; begin < indices.size(); begin = end) {
    check_interrupt();  // images already written are kept
    // The batch: the missing indices of the same fixed block [k B, (k + 1) B).
    const int64_t block = indices[begin] / request.batch_size;
    end = begin;
    while (end < indices.size() && indices[end] / request.batch_size == block) ++end;
    GenerationRequest g;
    g.steps = request.steps;
    g.guidance_scale = request.guidance_scale;
    for (size_t i = begin; i < end; ++i) {
      g.prompts.push_back(request.prompt);
      g.seeds.push_back(request.seed + static_cast<uint64_t>(indices[i]));
    }
    torch::Tensor images = pipeline.generate(g);  // [B, H, W, 3] in [0, 1]
    for (size_t i = begin; i < end; ++i) {
      write_png(request.dir / ("class-" + std::to_string(indices[i]) + ".png"),
                image_from_unit_tensor(images[static_cast<int64_t>(i - begin)]));
    }
    progress.advance(static_cast<long long>(end - begin));
  }
  progress.finish();
  return static_cast<int64_t>(indices.size());
}

}  // namespace fairdiff::train
