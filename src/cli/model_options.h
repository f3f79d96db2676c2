// Command-line flags shared by the commands that take a --model (generate, finetune, model convert): how a
// single-file checkpoint's architecture is told.
#pragma once

#include "cli/options.h"
#include "diffusion/single_file_arch.h"

namespace fairdiff::cli {

// Binds --arch and --config to `options` (fields model_arch and model_config).
void bind_single_file_options(OptionTable& table, SingleFileOptions& options);

}  // namespace fairdiff::cli
