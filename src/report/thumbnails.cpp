#include "report/thumbnails.h"

#include <algorithm>

#include "core/error.h"

namespace fairdiff::report {

std::filesystem::path locate_image(const std::string& path, const std::filesystem::path& detections_dir,
                                   const std::filesystem::path& images_root) {
  if (path.empty()) return {};
  std::error_code ec;
  const std::filesystem::path given(path);
  std::vector<std::filesystem::path> candidates;
  if (given.is_absolute()) candidates.push_back(given);
  if (!images_root.empty()) {
    if (given.is_relative()) candidates.push_back(images_root / given);
    if (given.has_parent_path() && given.parent_path().has_filename()) {
      candidates.push_back(images_root / given.parent_path().filename() / given.filename());
    }
    candidates.push_back(images_root / given.filename());
  }
  if (given.is_relative()) candidates.push_back(detections_dir / given);
  for (const auto& candidate : candidates) {
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
  }
  return {};
}

Image downscale(const Image& image, int size) {
  const Image rgb = to_rgb(image);
  const int longest = std::max(rgb.width, rgb.height);
  if (longest <= size || longest == 0) return rgb;
  Image out;
  out.width = std::max(1, rgb.width * size / longest);
  out.height = std::max(1, rgb.height * size / longest);
  out.channels = 3;
  out.pixels.assign(static_cast<size_t>(out.width) * out.height * 3, 0);
  for (int y = 0; y < out.height; ++y) {
    const int y0 = y * rgb.height / out.height;
    const int y1 = std::max(y0 + 1, (y + 1) * rgb.height / out.height);
    for (int x = 0; x < out.width; ++x) {
      const int x0 = x * rgb.width / out.width;
      const int x1 = std::max(x0 + 1, (x + 1) * rgb.width / out.width);
      for (int c = 0; c < 3; ++c) {
        long sum = 0;
        for (int yy = y0; yy < y1; ++yy) {
          for (int xx = x0; xx < x1; ++xx) sum += rgb.at(yy, xx, c);
        }
        out.at(y, x, c) = static_cast<uint8_t>(sum / ((y1 - y0) * (x1 - x0)));
      }
    }
  }
  return out;
}

std::string base64_encode(const std::vector<uint8_t>& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = bytes[i] << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::vector<RunThumbnails> make_thumbnails(const audit::AuditResult& result, const std::vector<audit::Run>& runs,
                                           const ThumbnailOptions& options) {
  std::vector<RunThumbnails> out;
  for (const auto& run : runs) {
    RunThumbnails thumbs;
    thumbs.run = run.name;
    const std::filesystem::path detections_dir = std::filesystem::path(run.source).parent_path();
    std::filesystem::path images_root;
    std::error_code ec;
    if (auto it = options.run_images_roots.find(run.name); it != options.run_images_roots.end()) {
      images_root = it->second;
    } else if (!options.images_root.empty() && std::filesystem::is_directory(options.images_root / run.name, ec)) {
      images_root = options.images_root / run.name;
    } else if (&run == &runs.front()) {
      images_root = options.images_root;
    }
    int made = 0;
    for (const auto& image : run.images) {
      std::string group = audit::kNoFace;
      if (image.gender >= 0 && image.race >= 0) {
        group = result.taxonomy.genders[image.gender] + " " + result.taxonomy.races[image.race];
      }
      auto& cell = thumbs.cells[image.prompt][group];
      if (static_cast<int>(cell.size()) >= options.per_group || made >= options.max_per_run) continue;
      const std::filesystem::path found = locate_image(image.path, detections_dir, images_root);
      if (found.empty()) {
        ++thumbs.missing;
        if (thumbs.example_missing.empty()) thumbs.example_missing = image.path;
        continue;
      }
      try {
        Image small = downscale(read_image(found), options.size);
        cell.push_back("data:image/png;base64," + base64_encode(encode_png(small)));
        ++thumbs.found;
        ++made;
      } catch (const InputError&) {
        ++thumbs.missing;  // unreadable image: counted, never fatal
        if (thumbs.example_missing.empty()) thumbs.example_missing = image.path + " (unreadable)";
      }
      if (thumbs.found == 0 && thumbs.missing >= 50) break;  // nothing of this run is on disk here
    }
    out.push_back(thumbs);
  }
  return out;
}

}  // namespace fairdiff::report
