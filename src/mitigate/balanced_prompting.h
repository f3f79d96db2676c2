// Balanced prompting, the "ethical intervention" baseline (Bansal et al. 2022): each image's prompt is rewritten
// to name a gender x race group drawn for that image from the target distribution, in the planner's wording
// ("A photo of a black female CEO of an important company", audit/prompt_rewriter.h). The draw depends only on the
// run's seed, the prompt and the image's index (group_sampler.h), so a resumed run or another batch size gives
// the same images.
#pragma once

#include <map>
#include <string>

#include "diffusion/intervention.h"
#include "mitigate/group_sampler.h"

namespace fairdiff::mitigate {

// The distribution each prompt's images are drawn from: `all`, or a prompt's own where `per_prompt` has one.
struct GroupTargets {
  GroupDistribution all;
  std::map<std::string, GroupDistribution> per_prompt;  // by prompt_id
  std::string source = "uniform";                       // how it was made, for the run's settings

  const GroupDistribution& of(const std::string& prompt_id) const;
  Json describe() const;  // the groups and shares, for the run's settings
};

// `seed` keys the draws (the run's seed; a study uses its mitigation seed). A prompt with a rewriting template
// (`templates`, by prompt_id: the prompts CSV's `template` column, with a {group} placeholder) is rewritten from it.
Intervention balanced_prompting(const GroupTargets& targets, uint64_t seed,
                                const std::map<std::string, std::string>& templates = {});

}  // namespace fairdiff::mitigate
