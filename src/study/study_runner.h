// The study as stages, the only place that knows their order:
//   audit    = generate:base -> analyze:base -> report:base
//   mitigate = the base audit (reused when done) -> plan -> [generate:augment -> class-images, when a method
//              fine-tunes] -> for every grid cell: finetune:<cell> (dreambooth, lora) or edit:<cell> (uce) or
//              nothing (balanced_prompting, projection, fair_diffusion: applied while generating) ->
//              generate:<cell> -> analyze:<cell> -> report:study
// Every stage is recorded in the run store (run_store.h) and skipped when done with the same settings; work
// inside a stage is keyed by (run, prompt, index), done in fixed batches and committed a batch at a time, so a
// killed study (Ctrl-C or kill -9) rerun with the same command redoes nothing finished and gives the same
// images, store contents and report numbers as an uninterrupted run on the same device and dtype.
//
// Study folder:
//   study.sqlite                                the run store
//   runs/<run>/images/<prompt_id>/<index>.png   base, augment, class and one run per grid cell
//   runs/<run>/detections.csv, faces.csv        the study's CSV layout and the per-face CSV (exports)
//   plan.csv                                    under-represented groups and rewritten prompts
//   augment/instance.csv                        file,caption of the augmentation images (fine-tuning input)
//   models/<cell>/                              fine-tuned or edited model (diffusers layout) or LoRA weights
//   report/                                     report.html, metrics.json, tables/
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/shard.h"
#include "diffusion/intervention.h"
#include "study/run_store.h"
#include "study/study_config.h"

namespace fairdiff::study {

// One stage as planned: its name, what it does and how much work (units: images, steps).
struct PlannedStage {
  std::string name;
  std::string description;
  int64_t work = 0;  // -1 when it depends on an earlier stage's outcome (augmentation images before the plan)
  std::string unit;
  bool done = false;
  double seconds = 0;  // recorded time when done
};

struct StudySummary {
  std::filesystem::path report_html;
  std::vector<std::string> lines;  // one line per run: images and the headline metric
};

class StudyRunner {
 public:
  StudyRunner(StudyConfig config, std::filesystem::path study_dir);

  // The stages `audit` (mitigate = false) or `mitigate` would run, with their amount of work and whether done.
  std::vector<PlannedStage> planned_stages(bool mitigate);
  StudySummary run_audit();
  StudySummary run_mitigate();

  // Sharding (core/shard.h) of the base audit's per-image work, for large audits on a cluster: a runner made for
  // shard K of N works in its own folder, shard_folder(DIR, shard) (its own run store), and run_shard() generates
  // its fixed batches of the base run (batch b when b % N == K) and analyzes them, then stops. An unsharded runner
  // on DIR absorbs every finished shard folder's images and analyses (same settings, else InputError naming the
  // folder) before it generates what is left: shards, then `audit` or `mitigate` on DIR, equal the unsharded run.
  void set_shard(const Shard& shard) { shard_ = shard; }
  StudySummary run_shard();
  static std::filesystem::path shard_folder(const std::filesystem::path& study_dir, const Shard& shard);

  const StudyConfig& config() const { return config_; }
  RunStore& store() { return store_; }

 private:
  void check_inputs();
  void audit_run(const std::string& run, const std::filesystem::path& model_dir, const std::filesystem::path& lora_file,
                 int64_t images_per_prompt, const Intervention& intervention = {});
  void generate_stage(const std::string& run, const std::vector<StudyPrompt>& prompts,
                      const std::filesystem::path& model_dir, const std::filesystem::path& lora_file,
                      uint64_t seed_base, const Intervention& intervention = {});
  void analyze_stage(const std::string& run);
  Json analyze_settings(const std::string& run);
  void absorb_shards(const std::string& run);
  void export_run(const std::string& run);
  void plan_stage();
  void augment_stage();
  void class_images_stage();
  void finetune_stage(const GridCell& cell);
  void edit_stage(const GridCell& cell);                  // uce: the closed-form edit, written to models/<cell>
  Intervention intervention(const GridCell& cell) const;  // a generation-time method's intervention
  StudySummary report_stage(const std::string& stage, const std::vector<std::string>& runs);

  std::vector<StudyPrompt> base_prompts(int64_t images_per_prompt) const;
  std::vector<StudyPrompt> class_prompts() const;
  std::string device() const;
  std::string generation_dtype() const;
  std::string mixed_precision() const;

  StudyConfig config_;
  std::filesystem::path dir_;
  RunStore store_;
  Shard shard_;
  std::vector<std::pair<std::string, std::string>> prompts_;  // id, text of the study's prompts
  std::filesystem::path report_confusion_;                    // what the reports correct with (check_inputs)
};

// `fairdiff status DIR`: every recorded stage with its state, time and amount of work, and an estimate of the
// time left for the stages of `config` not yet done (from the speed of the finished ones). Plain text.
std::string study_status(const std::filesystem::path& study_dir);

}  // namespace fairdiff::study
