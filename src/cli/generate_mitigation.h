// generate's training-free mitigation flags (--mitigation METHOD and its parameters; the full build only: the
// methods live in mitigate/, which needs the audit module's wording and targets).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/options.h"
#include "diffusion/generation_job.h"
#include "mitigate/methods.h"

namespace fairdiff::cli {

struct MitigationFlags {
  std::string method = "none";
  std::filesystem::path target;  // attribute,group,share[,prompt_id] CSV (audit/target.h); default uniform
  uint64_t seed = 0;             // default: the run's seed
  mitigate::MethodSettings settings;
};

void bind_mitigation_options(OptionTable& table, MitigationFlags& flags);

// The intervention for the run's prompts (none when --mitigation is none); UsageError for a parameter flag given
// without the method it belongs to. `templates` holds each prompt's rewriting template where its CSV has one.
Intervention make_mitigation(const MitigationFlags& flags, const Args& args, const std::vector<PromptItem>& prompts,
                             const std::vector<std::string>& templates, uint64_t run_seed, int64_t run_steps);

}  // namespace fairdiff::cli
