// The run store: one SQLite file per study directory (DIR/study.sqlite, WAL) that records, as they are produced,
// the stages (status, settings and their hash, timings), each run's prompts, every image (prompt, index, seed,
// file, sha256), every analysis (faces with boxes, scores and class probabilities; the image's labels and the
// face profile), the plan, the fine-tuned models (settings, loss curve) and the headline metrics. Each batch of
// work is one transaction, so a killed process leaves the store at a batch boundary and a rerun goes on from
// there. The study's CSV layouts are exports of it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "study/sqlite.h"

namespace fairdiff::study {

struct StageRecord {
  std::string name;
  std::string status;  // running | done
  std::string settings_hash;
  Json settings;
  int64_t work_total = 0;
  double seconds = 0;       // wall time of the runs that finished it (summed over resumes)
  std::string started_at;   // UTC, ISO 8601
  std::string finished_at;  // empty while running
  Json detail;
};

struct StudyPrompt {
  std::string prompt_id;       // folder-safe
  std::string prompt;          // the text given to the model
  int64_t n_images = 0;        // images to generate
  std::string base_prompt_id;  // the occupation it belongs to (itself for a base prompt)
  std::string caption;         // the instance caption of its images when used for fine-tuning
};

struct ImageRow {
  std::string run;
  std::string prompt_id;
  int64_t index = 0;
  uint64_t seed = 0;
  std::string file;  // relative to the study directory
  std::string sha256;
};

struct AnalysisRow {
  std::string run;
  std::string prompt_id;
  int64_t index = 0;
  int64_t n_faces = 0;
  std::string gender = "--", age = "--", race = "--";
  Json analysis;  // every face: box, score, landmarks, predictions (see face_store.h)
};

struct ModelRow {
  std::string cell;
  std::string path;  // relative to the study directory
  Json settings;
  std::string loss_curve_csv;
  double final_loss = 0;
  double seconds = 0;
};

// The top-level keys whose values differ between two settings objects, comma-separated ("settings" when none
// can be named).
std::string differing_keys(const Json& a, const Json& b);

class RunStore {
 public:
  // Opens DIR/study.sqlite, creating it and its tables when missing. InputError for a folder that cannot be
  // written (named) or a file that is not a fairdiff run store.
  explicit RunStore(const std::filesystem::path& study_dir);
  static std::filesystem::path file_in(const std::filesystem::path& study_dir);
  Database& db() { return *db_; }

  // --- stages
  std::optional<StageRecord> stage(const std::string& name);
  std::vector<StageRecord> stages();
  bool stage_done(const std::string& name);
  // Records the stage as running with `settings` (or keeps the record of an earlier, unfinished try). A stage
  // already recorded with other settings is an InputError naming the stage and the keys that differ: the
  // study directory holds work made with them, which is never mixed with or overwritten by other settings.
  void begin_stage(const std::string& name, const Json& settings, int64_t work_total);
  // Marks the stage done (inside the caller's transaction when one is open), adding `seconds` to its time.
  void finish_stage(const std::string& name, const Json& detail, double seconds);

  // --- runs and their prompts
  void put_run(const std::string& run, const Json& info);
  Json run_info(const std::string& run);
  void put_prompts(const std::string& run, const std::vector<StudyPrompt>& prompts);
  std::vector<StudyPrompt> prompts(const std::string& run);

  // --- images (one transaction per call)
  void add_images(const std::vector<ImageRow>& rows);
  std::vector<ImageRow> images(const std::string& run);
  std::set<std::pair<std::string, int64_t>> image_keys(const std::string& run);

  // --- analyses (one transaction per call)
  void add_analyses(const std::vector<AnalysisRow>& rows);
  std::vector<AnalysisRow> analyses(const std::string& run);
  std::set<std::pair<std::string, int64_t>> analysis_keys(const std::string& run);

  // --- the plan (written with its stage's completion, in one transaction)
  void put_plan(const std::vector<std::map<std::string, std::string>>& rows, const std::string& csv);
  std::vector<std::map<std::string, std::string>> plan();

  // --- fine-tuned models and metrics
  void put_model(const ModelRow& row);
  std::optional<ModelRow> model(const std::string& cell);
  void put_metric(const std::string& run, const std::string& key, double value, double low, double high);
  std::map<std::string, std::map<std::string, std::vector<double>>> metrics();

  // A text dump of every table without timings (for comparing two studies, and for tests).
  std::string dump_without_timings();

 private:
  std::unique_ptr<Database> db_;
};

// Current UTC time as ISO 8601 ("2026-12-01T10:36:05Z").
std::string utc_now();
// The first 16 hex digits of the SHA-256 of the settings' canonical JSON text.
std::string settings_hash(const Json& settings);

}  // namespace fairdiff::study
