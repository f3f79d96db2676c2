// libFuzzer harness: the study configuration (TOML, study/study_config.h), parsed from memory as
// read_study_config parses a file. An accepted config's mitigation grid must have folder-safe, unique cell names.
#include <set>

#include "core/prompts.h"
#include "fuzz_support.h"
#include "study/study_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fairdiff::study::StudyConfig config;
  if (!fairdiff::fuzz::expect_clear_errors(
          "parse_study_config", [&] { config = fairdiff::study::parse_study_config(text, "/fuzz/study.toml"); })) {
    return 0;
  }
  const auto& m = config.mitigation;
  // A grid of millions of cells is valid (and would plan millions of models); naming them is not the point here.
  if (m.methods.size() * m.lr_schedulers.size() * m.num_class_images.size() * m.max_train_steps.size() > 10000) {
    return 0;
  }
  fairdiff::fuzz::expect_no_error("MitigationConfig::grid", [&] {
    std::set<std::string> names;
    for (const auto& cell : config.mitigation.grid()) {
      const std::string name = cell.name();
      if (!fairdiff::is_folder_safe_id(name) || !names.insert(name).second) {
        fairdiff::fuzz::report_finding("MitigationConfig::grid", "cell name '" + name + "' is unusable or repeated");
      }
    }
  });
  return 0;
}
