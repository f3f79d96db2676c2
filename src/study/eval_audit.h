// A known-truth audit (`fairdiff eval-audit`): labeled photos drawn per prompt to a gender x race mix (by default
// the mix the study measured for SD 2.1-base), analyzed with a face profile and audited like generated images;
// every share the audit reports (gender, race, gender x race, per prompt) is then compared with the drawn photos'
// true labels: the mean absolute error and how often the 95% interval covers the truth, for the classifier's raw
// labels (Wilson intervals) and for the classifier-error-corrected shares (bootstrap intervals). It is how a user
// checks a profile, and its confusion matrices, before trusting an audit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "audit/audit_result.h"
#include "audit/builtin_dataset.h"
#include "core/json.h"
#include "faces/evaluation.h"

namespace fairdiff::study {

// One share an audit reported, beside the truth.
struct TruthShare {
  std::string prompt_id;
  audit::Attribute attribute = audit::Attribute::gender;
  std::string group;
  double truth = 0;  // share of the group among the prompt's drawn photos
  double raw = 0;    // share among the photos whose label was read (Wilson interval)
  audit::Interval raw_ci;
  std::optional<double> corrected;  // with a confusion matrix (percentile bootstrap interval)
  audit::Interval corrected_ci;
};

// Per attribute, over every (prompt, group) share.
struct ShareErrors {
  audit::Attribute attribute = audit::Attribute::gender;
  int64_t shares = 0;
  double mae_raw = 0, max_raw = 0, coverage_raw = 0;
  std::optional<double> mae_corrected, max_corrected, coverage_corrected;
};

struct EvalAuditResult {
  std::vector<std::string> prompt_ids;
  std::vector<int64_t> images;      // photos drawn per prompt
  std::vector<int64_t> determined;  // of those, photos with a face read (gender known)
  std::vector<TruthShare> shares;
  std::vector<ShareErrors> errors;  // gender, race, gender x race
  std::string confusion;            // the correction's source, "" without
  int64_t calibration_photos = 0;   // photos set aside for the confusion matrices (options.calibrate_fraction)
  Json to_json() const;
  // prompt_id,attribute,group,truth,raw,raw_low,raw_high,corrected,corrected_low,corrected_high
  std::string shares_csv() const;
  // The table eval-audit prints: per attribute, MAE and coverage, raw and corrected.
  std::string summary() const;
};

// Compares the audit's first run with the true gender x race cell counts of each prompt's photos
// ([prompt][cell], Taxonomy::gender_race_index).
EvalAuditResult score_against_truth(const audit::AuditResult& audit,
                                    const std::vector<std::vector<int64_t>>& true_cells);

// The labeled set's photos in the audit's taxonomy (gender Male/Female; races mapped to the taxonomy's, e.g.
// FairFace's east and southeast asian to asian). Photos whose race has no class there (UTKFace's "others") are
// left out and counted in `left_out`.
std::vector<audit::LabeledPhoto> photos_in_taxonomy(const LabeledSet& set, const audit::Taxonomy& taxonomy,
                                                    int64_t& left_out);

struct EvalAuditOptions {
  int64_t images_per_prompt = 90;  // at most; fewer where a cell's photos run out (draw_known_truth)
  uint64_t seed = 0;               // the draw
  audit::BootstrapSettings bootstrap;
  bool show_progress = true;
  // > 0: this fraction of the photos (per gender x race cell) is set aside to measure the classifier's confusion
  // matrices, written to out_dir/confusion.json, and the audit of the rest is corrected with them: a held-out check
  // of a matrix made from photos like the user's (their file then serves `report --confusion`).
  double calibrate_fraction = 0;
};

// Draws (draw_known_truth), analyzes every drawn photo once with `analyzer`, writes `out_dir`/detections.csv (the
// study's layout, prompt column = prompt id) and audits it with `confusion` (nullptr: raw only; ignored with
// options.calibrate_fraction, which measures its own), then scores.
// Photos that cannot be read are reported and left out before drawing.
EvalAuditResult run_eval_audit(FaceAnalyzer& analyzer, const LabeledSet& set, const PromptSet& prompts,
                               const std::vector<std::vector<int64_t>>& cell_weights,
                               const audit::ConfusionSet* confusion, const EvalAuditOptions& options,
                               const std::filesystem::path& out_dir, audit::AuditResult* audit_out = nullptr,
                               std::vector<audit::Run>* runs_out = nullptr);

}  // namespace fairdiff::study
