// Image thumbnails for the report's grid (per run, prompt and gender x race group), inlined as PNG data URIs
// so the page stays one file. Detection files name images by path; a path is looked up as written, under
// --images-root, and beside the detections file, and for absolute paths from elsewhere (e.g. Colab's
// /content/drive/...) by its last two components and its file name under --images-root.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "audit/audit_result.h"
#include "audit/detections.h"
#include "core/image.h"

namespace fairdiff::report {

struct ThumbnailOptions {
  // empty: only paths as written and beside the detections file. With several runs it serves a run through its
  // sub-folder <images_root>/<run name> when there is one, else only the first run (the baseline): runs name
  // their images by the same relative paths, so one folder for all would show one run's images as every run's.
  std::filesystem::path images_root;
  std::map<std::string, std::filesystem::path> run_images_roots;  // per run name (--images-root NAME=DIR)
  int per_group = 4;                                              // thumbnails per (prompt, group) cell
  int size = 72;                                                  // longest side in pixels
  int max_per_run = 600;
};

struct RunThumbnails {
  std::string run;
  int found = 0;                // images located on disk
  int missing = 0;              // images not found
  std::string example_missing;  // one missing path, for the note
  // prompt index -> group label (gender x race, or "--") -> data URIs
  std::map<int, std::map<std::string, std::vector<std::string>>> cells;
};

// Locates an image; empty when it is nowhere.
std::filesystem::path locate_image(const std::string& path, const std::filesystem::path& detections_dir,
                                   const std::filesystem::path& images_root);

// Box-filter downscale so that the longest side is at most `size` (never upscales).
Image downscale(const Image& image, int size);

std::string base64_encode(const std::vector<uint8_t>& bytes);

std::vector<RunThumbnails> make_thumbnails(const audit::AuditResult& result, const std::vector<audit::Run>& runs,
                                           const ThumbnailOptions& options);

}  // namespace fairdiff::report
