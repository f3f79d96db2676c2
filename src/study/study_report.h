// The report of a study, from its run store: the audit of every run (report/html_report.h) with, for a
// mitigation study, sections of its own: the grid (lr_scheduler x num_class_images x steps -> change of the
// average normalized Shen gender x race bias with its 95% interval), the groups the plan targeted (their share
// before and after, with Newcombe intervals), each run's provenance (model, settings, seeds, face profile, loss
// curve) and same-seed image grids, the base model beside each fine-tuned one.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "study/run_store.h"

namespace fairdiff::study {

struct StudyReportInputs {
  std::filesystem::path study_dir;
  std::vector<std::string> runs;  // the first is the baseline
  std::filesystem::path prompts;  // prompt_id,prompt CSV
  int bootstrap = 1000;
  uint64_t bootstrap_seed = 20240917;
  std::filesystem::path confusion;  // optional
  int paired_images = 4;
  std::string command_line;
};

struct StudyMetric {
  std::string run;
  std::string key;
  double value = 0, low = 0, high = 0;
};

struct StudyReportResult {
  std::filesystem::path html;
  std::vector<StudyMetric> metrics;  // per run: shen_gender_race_normalized; per fine-tuned run: change_...
};

StudyReportResult write_study_report(RunStore& store, const StudyReportInputs& inputs,
                                     const std::filesystem::path& out_dir);

// "0.412 [0.351, 0.470]" from {value, low, high}; the value alone when the interval is undefined.
std::string format_interval(const std::vector<double>& value_low_high);

}  // namespace fairdiff::study
