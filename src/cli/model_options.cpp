#include "cli/model_options.h"

namespace fairdiff::cli {

void bind_single_file_options(OptionTable& table, SingleFileOptions& options) {
  table
      .choice("arch", "single-file --model: its architecture (default: told from the tensors; sd2-v: SD 2.x 768-v)",
              options.arch, single_file_arch_names(), "model_arch")
      .value("config", "DIR", "single-file --model: a diffusers model folder whose configs describe it",
             options.config_dir, "model_config");
}

}  // namespace fairdiff::cli
