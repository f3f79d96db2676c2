#include "train/training_data.h"

#include <algorithm>
#include <cmath>

#include "core/csv.h"
#include "core/error.h"
#include "core/strings.h"

namespace fairdiff::train {
namespace fs = std::filesystem;
namespace {

bool has_image_extension(const fs::path& path) {
  const std::string ext = to_lower(path.extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

TrainingExample load_example(const fs::path& file, const std::string& prompt, int64_t resolution) {
  Image image = to_rgb(read_image(file));
  return {file, prompt, resize_and_center_crop(image, resolution, file.string())};
}

}  // namespace

bool is_caption_csv(const fs::path& path) {
  return to_lower(path.extension().string()) == ".csv";
}

std::vector<fs::path> list_image_files(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file() && has_image_extension(it->path())) files.push_back(it->path());
  }
  if (ec) throw InputError("cannot read the folder " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

torch::Tensor resize_and_center_crop(const Image& image, int64_t resolution, const std::string& source) {
  if (image.width < resolution || image.height < resolution) {
    throw InputError("image " + source + " is " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                     ", smaller than --resolution " + std::to_string(resolution) +
                     " (expected both sides at least the training resolution)");
  }
  torch::Tensor x =
      torch::from_blob(const_cast<uint8_t*>(image.pixels.data()), {image.height, image.width, 3}, torch::kUInt8)
          .permute({2, 0, 1})
          .unsqueeze(0)
          .to(torch::kFloat32) /
      255.0;  // [1, 3, H, W] in [0, 1]
  const int64_t short_side = std::min(image.width, image.height);
  if (short_side != resolution) {
    // torchvision's Resize(size): the shorter side becomes `size`, the longer one int(size * long / short).
    const int64_t height = image.height == short_side ? resolution : resolution * image.height / short_side;
    const int64_t width = image.width == short_side ? resolution : resolution * image.width / short_side;
    x = at::_upsample_bilinear2d_aa(x, {height, width}, false).clamp(0.0, 1.0);
  }
  const int64_t top = static_cast<int64_t>(std::round((x.size(2) - resolution) / 2.0));
  const int64_t left = static_cast<int64_t>(std::round((x.size(3) - resolution) / 2.0));
  x = x.narrow(2, top, resolution).narrow(3, left, resolution);  // [1, 3, R, R]
  return (x.squeeze(0) * 2.0 - 1.0).contiguous();
}

std::vector<TrainingExample> load_instance_examples(const fs::path& source, const std::string& instance_prompt,
                                                    int64_t resolution) {
  std::vector<TrainingExample> examples;
  if (is_caption_csv(source)) {
    if (!fs::is_regular_file(source)) throw FieldInputError("instance_data", source.string() + " does not exist");
    CsvTable table = read_csv(source);
    const int file_col = table.require_column("file");
    // `file,caption`, or generate's manifest.csv (prompt,file,...): each image captioned with its prompt.
    const int caption_col = table.column("caption") >= 0 || table.column("prompt") < 0 ? table.require_column("caption")
                                                                                       : table.column("prompt");
    if (table.rows.empty())
      throw FieldInputError("instance_data", source.string() + " has no rows (expected file,caption)");
    for (const auto& row : table.rows) {
      const std::string where = source.string() + " line " + std::to_string(row.line);
      const std::string caption = trim(row.fields[static_cast<size_t>(caption_col)]);
      fs::path file = row.fields[static_cast<size_t>(file_col)];
      if (file.is_relative()) file = source.parent_path() / file;
      if (!fs::is_regular_file(file)) {
        throw InputError(where + " names " + file.string() +
                         ", which does not exist (expected an image file; "
                         "relative paths are read from the CSV's folder)");
      }
      if (caption.empty()) throw InputError(where + " has an empty caption for " + file.string());
      examples.push_back(load_example(file, caption, resolution));
    }
    return examples;
  }
  if (!fs::is_directory(source)) {
    throw FieldInputError("instance_data",
                          source.string() + " does not exist (expected a folder of images or a CSV file,caption)");
  }
  const auto files = list_image_files(source);
  if (files.empty()) {
    throw FieldInputError("instance_data", "folder " + source.string() + " holds no PNG or JPEG images");
  }
  for (const auto& file : files) examples.push_back(load_example(file, instance_prompt, resolution));
  return examples;
}

std::vector<TrainingExample> load_class_examples(const fs::path& dir, const std::string& class_prompt,
                                                 int64_t resolution, int64_t limit) {
  auto files = list_image_files(dir);
  if (static_cast<int64_t>(files.size()) > limit) files.resize(static_cast<size_t>(limit));
  std::vector<TrainingExample> examples;
  for (const auto& file : files) examples.push_back(load_example(file, class_prompt, resolution));
  return examples;
}

}  // namespace fairdiff::train
