// The study's own runs, shipped in data/seed: SD 2.1-base and the six DreamBooth models (learning-rate schedule
// x class images), as `fairdiff report` reads them when no --run is given.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "audit/labels.h"

namespace fairdiff::audit {

struct StudyRun {
  std::string name;                  // sd21, linear_300, ...
  std::filesystem::path detections;  // the run's detection CSV (study layout)
};

struct StudyData {
  std::filesystem::path dir;      // data/seed
  std::filesystem::path prompts;  // data/seed/prompts_info.csv
  std::vector<StudyRun> runs;     // baseline first
};

// The mapping the study's CSVs need, unless `map` already maps that label: they hold the literal race label
// "race" where DeepFace returned no race, read as "--" (race:race=--).
void add_study_label_map(LabelMap& map);

// The study's runs with their paths relative to data/seed.
const std::vector<StudyRun>& study_runs();

// The study's data in `seed_dir` (data/seed).
StudyData study_data(const std::filesystem::path& seed_dir);

// The study's data in the data/seed folder that core/assets.h's find_asset_dir finds; InputError naming where it
// looked when it is not there.
StudyData find_study_data();

}  // namespace fairdiff::audit
