#include "mitigate/methods.h"

#include <algorithm>

#include "core/error.h"
#include "mitigate/embedding_projection.h"
#include "mitigate/fair_diffusion.h"

namespace fairdiff::mitigate {

const std::vector<std::string>& generation_methods() {
  static const std::vector<std::string> names = {"balanced_prompting", "projection", "fair_diffusion"};
  return names;
}

bool is_generation_method(const std::string& name) {
  const auto& names = generation_methods();
  return std::find(names.begin(), names.end(), name) != names.end();
}

namespace {

audit::Attribute parse_group_attribute(const std::string& name, const std::string& where) {
  if (name != "gender" && name != "race" && name != "gender_race")
    throw UsageError(where + " is '" + name + "', expected gender, race or gender_race");
  return audit::parse_attribute(name, where);
}

}  // namespace

Intervention generation_method(const std::string& name, const MethodSettings& s) {
  if (name == "balanced_prompting") return balanced_prompting(s.targets, s.seed, s.templates);
  if (name == "projection") {
    ProjectionOptions options;
    options.lambda = s.projection_lambda;
    options.attribute = parse_group_attribute(s.projection_attribute, "the projection's attribute");
    options.taxonomy = s.taxonomy;
    return embedding_projection(s.prompts, options);
  }
  if (name == "fair_diffusion") {
    FairDiffusionOptions options;
    options.attributes = parse_group_attribute(s.fair_diffusion_attribute, "fair_diffusion's attribute");
    options.edit_guidance_scale = s.fair_diffusion_guidance_scale;
    options.edit_warmup_steps = s.fair_diffusion_warmup_steps;
    options.edit_threshold = s.fair_diffusion_threshold;
    options.edit_momentum_scale = s.fair_diffusion_momentum_scale;
    options.edit_mom_beta = s.fair_diffusion_momentum_beta;
    options.validate(s.steps);
    return fair_diffusion(s.targets, s.seed, options);
  }
  std::string names;
  for (const auto& n : generation_methods()) names += (names.empty() ? "" : ", ") + n;
  throw UsageError("'" + name + "' is not a generation-time mitigation (expected " + names + ")");
}

}  // namespace fairdiff::mitigate
