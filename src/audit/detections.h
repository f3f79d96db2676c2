// Inputs of an audit: the prompts (core/prompts.h) and detection CSVs, one per run. Two layouts are read:
//  - the study's per-image layout `prompt,path,gender,age,race` ("--" where no face was found), where the
//    prompt column holds the prompt's text or its id;
//  - fairdiff's per-face layout (`fairdiff analyze`'s faces CSV): the same label columns plus a `face_index`
//    (or `face`) column, one row per face. An image's labels come from its principal face: the row with
//    `principal` = 1 when that column exists, else the largest box (`area`, `box_w`x`box_h`, `w`x`h` or
//    x0,y0,x1,y1), else face 0. A row with an empty face index stands for an image without faces; images
//    that have no row at all are unknown to the audit (their no-face share cannot be counted).
// Rows that cannot be read (unknown prompt, unknown label, bad age) are collected and reported together,
// each with its line number.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "audit/labels.h"
#include "core/prompts.h"

namespace fairdiff::audit {

// An audit's prompts are core's PromptSet, read by read_prompts_csv (core/prompts.h).
using fairdiff::PromptSet;

// One generated image and the labels of its principal face.
struct ImageRecord {
  int prompt = -1;     // index into PromptSet
  std::string path;    // as written in the detections file
  int line = 0;        // line in the detections file, for messages
  int gender = -1;     // index into Taxonomy::genders, -1 = "--"
  int race = -1;       // index into Taxonomy::races, -1 = "--"
  std::string age;     // canonical age label or "--"
  int num_faces = -1;  // faces found in the image when the per-face layout says so, else -1
};

struct Run {
  std::string name;
  std::string source;  // the detections file
  std::string layout;  // "study" or "per-face"
  std::vector<ImageRecord> images;
  int rows_read = 0;
  // Rows whose prompt or label came from a --map entry, per entry, for the report's data notes.
  std::vector<std::string> notes;

  std::vector<const ImageRecord*> images_of(int prompt) const;
  bool has_prompt(int prompt) const;
};

struct DetectionOptions {
  Taxonomy taxonomy;
  LabelMap label_map;
  int max_reported_errors = 20;
};

Run read_detections(const std::filesystem::path& path, const std::string& run_name, const PromptSet& prompts,
                    const DetectionOptions& options);
Run parse_detections(const std::string& csv_text, const std::string& source, const std::string& run_name,
                     const PromptSet& prompts, const DetectionOptions& options);

// Splits "NAME=PATH" for --run; FieldError("run") when either side is empty or NAME has characters other than
// letters, digits, '_', '-' and '.'.
std::pair<std::string, std::string> parse_run_argument(const std::string& text);

}  // namespace fairdiff::audit
