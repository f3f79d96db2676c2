#include "audit/study_runs.h"

#include "core/assets.h"
#include "core/error.h"

namespace fairdiff::audit {

namespace fs = std::filesystem;

const std::vector<StudyRun>& study_runs() {
  static const std::vector<StudyRun> runs = {
      {"sd21", "study_results/prompts_results.csv"},
      {"linear_300", "study_results/dreambooth/dream_detect_linear.csv"},
      {"poly_300", "study_results/dreambooth/dream_detect_poly.csv"},
      {"constant_300", "study_results/dreambooth/dream_detect_constant.csv"},
      {"linear_20", "study_results/dreambooth/dream_detect_linear_2.csv"},
      {"poly_20", "study_results/dreambooth/dream_detect_poly_2.csv"},
      {"constant_20", "study_results/dreambooth/dream_detect_constant_2.csv"},
  };
  return runs;
}

StudyData study_data(const fs::path& seed_dir) {
  StudyData data;
  data.dir = seed_dir;
  data.prompts = seed_dir / "prompts_info.csv";
  for (const auto& run : study_runs()) data.runs.push_back({run.name, seed_dir / run.detections});
  return data;
}

void add_study_label_map(LabelMap& map) {
  if (map.apply("race", "race") == "race") map.add("race:race=--");
}

StudyData find_study_data() {
  const fs::path dir = find_asset_dir("data/seed", "prompts_info.csv");
  std::error_code ec;
  if (!fs::is_regular_file(dir / "prompts_info.csv", ec)) {
    throw InputError("the study's data (data/seed in the fairdiff source tree) was not found: " +
                     (dir / "prompts_info.csv").string() + " does not exist");
  }
  return study_data(dir);
}

}  // namespace fairdiff::audit
