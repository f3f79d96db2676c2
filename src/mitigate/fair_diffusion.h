// Fair Diffusion (Friedrich et al. 2023, "Fair Diffusion: Instructing Text-to-Image Generation Models on
// Fairness", github ml-research/Fair-Diffusion): semantic guidance (diffusion/semantic_guidance.h) toward a group
// drawn for each image. For gender the authors edit every image with two concepts, the other gender's removed and
// the drawn one's added: editing_prompt ["male person", "female person"], reverse_editing_direction [True, False]
// for an image drawn female (generate_images.py, mode "edit"). The draw comes from the target distribution, keyed by
// the run's seed, the prompt and the image's index (group_sampler.h), like balanced prompting's: an image gets the
// same group alone or in any batch, and the same group under both methods.
//
// Race, which the authors do not edit, is steered the same way: toward "<race> person" at the edit scale and away
// from each other race of the taxonomy at the edit scale split evenly between them (race_away = others), so that,
// as for gender, the removal weighs as much as the addition; race_away = none keeps the addition alone. SEGA adds
// the concepts' guidance unnormalised once all are warmed up, so without the split five removals would push five
// times as hard as the addition. gender_race edits both: the gender concepts, then the race concepts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "audit/labels.h"
#include "diffusion/intervention.h"
#include "diffusion/semantic_guidance.h"
#include "mitigate/balanced_prompting.h"
#include "mitigate/group_sampler.h"

namespace fairdiff::mitigate {

enum class RaceAway { others, none };

// "others", "none".
std::string race_away_name(RaceAway away);
// Inverse of race_away_name; FieldError("race_away") otherwise.
RaceAway parse_race_away(const std::string& name);

// Defaults: the published edit settings of the authors' reproduction script (generate_images.py, mode "edit", whose
// images give the paper's results): edit_guidance_scale 4, edit_warmup_steps 5, edit_threshold 0.95,
// edit_momentum_scale 0.5, edit_mom_beta 0.6, weights 1 (unset), at classifier-free guidance 7 and 50 steps (the
// run's own settings here). The README's example differs in warm-up (10) and momentum scale (0.3).
struct FairDiffusionOptions {
  audit::Attribute attributes = audit::Attribute::gender;  // gender, race or gender_race
  double edit_guidance_scale = 4;
  int64_t edit_warmup_steps = 5;
  double edit_threshold = 0.95;
  double edit_momentum_scale = 0.5;
  double edit_mom_beta = 0.6;
  double edit_weight = 1;
  std::string concept_noun = "person";  // the concept is "<group word> <noun>": "female person", "black person"
  RaceAway race_away = RaceAway::others;

  // FieldError naming the field: attributes other than gender / race / gender_race, scales < 0, a threshold
  // outside [0, 1), a negative warm-up (or, given the run's `steps`, one of `steps` or more: the edits would never
  // be applied), beta outside [0, 1), a weight <= 0. Meant to run before a model is loaded.
  void validate(int64_t steps = 0) const;
  // Every parameter, for the run's settings.
  Json to_json() const;
};

// The concepts that steer an image toward `group`, given the genders and races of the distribution it was drawn
// from (in its order): for each edited attribute the removals (reversed) first, then the addition, as the authors
// order them.
std::vector<SemanticEdit> fair_diffusion_edits(const Group& group, const std::vector<std::string>& genders,
                                               const std::vector<std::string>& races,
                                               const FairDiffusionOptions& options);

// The intervention: `apply` draws each image's group from `targets` (keyed by `seed`: the run's seed; a study uses
// its mitigation seed), fills the request's semantic guidance and returns the label of what it steered toward:
// "Female" (gender), "black" (race), "Female black" (gender_race). Validates `options` first.
Intervention fair_diffusion(const GroupTargets& targets, uint64_t seed, const FairDiffusionOptions& options);

}  // namespace fairdiff::mitigate
