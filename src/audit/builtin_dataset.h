// The caption recipe of the built-in model: training rows (photo, caption) whose gender x race mix per prompt
// is a given distribution (the study's measurement of SD 2.1-base), plus captions that name a group in the
// planner's wording ("A photo of a black female CEO of an important company") and neutral ones ("A photo of a
// person"). The injected distribution is the ground truth an audit of the trained model is compared with.
//
// Deterministic: the rows depend only on the inputs and the seed (own Fisher-Yates over a 64-bit splitmix
// stream, no std::shuffle, whose results differ between standard libraries).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "audit/detections.h"
#include "audit/labels.h"

namespace fairdiff::audit {

// A labeled training photo; gender and race index the taxonomy (both >= 0).
struct LabeledPhoto {
  std::string file;
  int gender = -1;
  int race = -1;
};

struct CaptionRecipe {
  uint64_t seed = 0;
  int64_t rows_per_prompt = 1500;      // rows captioned with the prompt itself, in the target mix
  int64_t group_rows_per_cell = 40;    // per prompt and gender x race cell: rows whose caption names the group
  int64_t neutral_rows = 3000;         // rows captioned `neutral_prompt`, spread evenly over the cells
  int64_t max_photos_per_cell = 1500;  // distinct photos drawn per cell; rows reuse them
  std::string neutral_prompt = "A photo of a person";
};

struct CaptionRow {
  std::string file;
  std::string caption;
  std::string kind;       // "prompt", "group" or "neutral"
  std::string prompt_id;  // "" for neutral rows
  int gender = -1;
  int race = -1;
};

// The injected distribution of one prompt's own caption: one row per gender x race cell.
struct TruthRow {
  std::string prompt_id;
  std::string prompt;
  int gender = -1;
  int race = -1;
  int64_t rows = 0;             // training rows of this cell with the prompt's caption
  double injected_share = 0.0;  // rows / rows_per_prompt
  int64_t study_faces = 0;      // faces of this cell in the measured distribution
  double study_share = 0.0;     // study_faces / faces of the prompt
};

struct BuiltinDataset {
  std::vector<CaptionRow> rows;
  std::vector<TruthRow> truth;
  std::vector<std::string> photos;  // distinct photos the rows use, sorted
};

// Faces per prompt and gender x race cell (gender-major, Taxonomy::gender_race_index) of a detections run;
// images without a face or with an unknown gender or race are left out. [prompt][cell].
std::vector<std::vector<int64_t>> measured_cell_counts(const Run& run, const PromptSet& prompts,
                                                       const Taxonomy& taxonomy);

// Labeled photos drawn per prompt to a gender x race mix, for a known-truth audit (`fairdiff eval-audit`). For
// prompt p: the largest count n <= max_per_prompt whose apportion(cell_weights[p], n) fits every cell's pool of
// photos, so that no photo appears twice in a prompt (its classifier error would then count twice); each cell's
// photos are the first of its pool in an order seeded by `seed` and the prompt. [prompt] -> indices into
// `photos`, cell by cell. A prompt whose weights are all zero gets none. InputError when a prompt wants a cell
// that has no photo at all (nothing can be drawn to that mix).
std::vector<std::vector<size_t>> draw_known_truth(const std::vector<LabeledPhoto>& photos,
                                                  const std::vector<std::vector<int64_t>>& cell_weights,
                                                  int64_t max_per_prompt, uint64_t seed, const Taxonomy& taxonomy,
                                                  const PromptSet& prompts);

// Splits labeled photos into a calibration part (a confusion matrix is measured on it) and the rest (the audit's
// pool), per gender x race cell: round(fraction x the cell's photos) go to calibration, chosen in an order seeded
// by `seed`. Indices into `photos`, each part in the photos' order.
void split_for_calibration(const std::vector<LabeledPhoto>& photos, double fraction, uint64_t seed,
                           const Taxonomy& taxonomy, std::vector<size_t>& calibration, std::vector<size_t>& rest);

// Splits `total` in proportion to `weights` (largest remainder, ties to the lower index): the parts sum to
// `total` and each differs from the exact share by less than 1. std::invalid_argument for negative weights or
// an all-zero weight vector with total > 0.
std::vector<int64_t> apportion(const std::vector<int64_t>& weights, int64_t total);

// Builds the rows. InputError when a prompt has no measured faces, when a cell the recipe needs has no photo,
// or when the counts do not match the prompts; UsageError for negative recipe sizes.
BuiltinDataset build_builtin_dataset(const PromptSet& prompts, const std::vector<std::vector<int64_t>>& cell_counts,
                                     const std::vector<LabeledPhoto>& photos, const Taxonomy& taxonomy,
                                     const CaptionRecipe& recipe);

// file,caption,kind,prompt_id,gender,race (the first two are what `fairdiff finetune` reads).
std::string caption_rows_csv(const BuiltinDataset& dataset, const Taxonomy& taxonomy);
// prompt_id,prompt,gender,race,rows,injected_share,study_faces,study_share.
std::string truth_csv(const BuiltinDataset& dataset, const Taxonomy& taxonomy);

}  // namespace fairdiff::audit
