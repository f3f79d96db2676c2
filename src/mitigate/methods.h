// The training-free methods that act while generating, by name, as `generate --mitigation` and a study's grid take
// them: balanced_prompting, projection and fair_diffusion (uce edits the model instead: mitigate/uce.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "audit/labels.h"
#include "diffusion/intervention.h"
#include "mitigate/balanced_prompting.h"

namespace fairdiff::mitigate {

// The names, in the order help texts list them.
const std::vector<std::string>& generation_methods();
bool is_generation_method(const std::string& name);

struct MethodSettings {
  audit::Taxonomy taxonomy;
  GroupTargets targets;              // what balanced_prompting and fair_diffusion draw each image's group from
  uint64_t seed = 0;                 // keys the per-image draws
  int64_t steps = 0;                 // the run's denoising steps (fair_diffusion's warm-up must be fewer); 0: unchecked
  std::vector<std::string> prompts;  // the run's prompts (projection calibrates on them; templates where given)
  std::map<std::string, std::string> templates;  // prompt_id -> rewriting template ({group}), where given
  double projection_lambda = 500;
  std::string projection_attribute = "gender";
  std::string fair_diffusion_attribute = "gender";
  double fair_diffusion_guidance_scale = 4;
  int64_t fair_diffusion_warmup_steps = 5;
  double fair_diffusion_threshold = 0.95;
  double fair_diffusion_momentum_scale = 0.5;
  double fair_diffusion_momentum_beta = 0.6;
};

// UsageError naming the method when it is not one of generation_methods().
Intervention generation_method(const std::string& name, const MethodSettings& settings);

}  // namespace fairdiff::mitigate
