#include "mitigate/fair_diffusion.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "audit/prompt_rewriter.h"
#include "core/error.h"
#include "diffusion/stable_diffusion.h"

namespace fairdiff::mitigate {

std::string race_away_name(RaceAway away) {
  return away == RaceAway::others ? "others" : "none";
}

RaceAway parse_race_away(const std::string& name) {
  if (name == "others") return RaceAway::others;
  if (name == "none") return RaceAway::none;
  throw FieldError("race_away", "'" + name + "': expected others (away from every other race) or none");
}

namespace {

bool edits_gender(audit::Attribute a) {
  return a == audit::Attribute::gender || a == audit::Attribute::gender_race;
}
bool edits_race(audit::Attribute a) {
  return a == audit::Attribute::race || a == audit::Attribute::gender_race;
}

std::string number(double value) {
  std::string text = std::to_string(value);
  text.erase(text.find_last_not_of('0') + 1);
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

std::string concept_text(const std::string& word, const std::string& noun) {
  return noun.empty() ? word : word + " " + noun;
}

// The distribution's genders or races, in its order, each once.
std::vector<std::string> distinct(const GroupDistribution& d, std::string Group::*field) {
  std::vector<std::string> out;
  for (const auto& g : d.groups()) {
    if (std::find(out.begin(), out.end(), g.*field) == out.end()) out.push_back(g.*field);
  }
  return out;
}

}  // namespace

void FairDiffusionOptions::validate(int64_t steps) const {
  if (!edits_gender(attributes) && !edits_race(attributes)) {
    throw FieldError("attributes", "'" + audit::attribute_name(attributes) + "': expected gender, race or gender_race");
  }
  if (!(edit_guidance_scale >= 0) || !std::isfinite(edit_guidance_scale)) {
    throw FieldError("edit_guidance_scale", number(edit_guidance_scale) + ": expected a finite number >= 0");
  }
  if (edit_warmup_steps < 0) {
    throw FieldError("edit_warmup_steps", std::to_string(edit_warmup_steps) + ": expected a number of steps >= 0");
  }
  if (steps > 0 && edit_warmup_steps >= steps) {
    throw FieldError("edit_warmup_steps", std::to_string(edit_warmup_steps) + ": expected fewer than the run's " +
                                              std::to_string(steps) + " steps (the edits would never be applied)");
  }
  if (!(edit_threshold >= 0 && edit_threshold < 1)) {
    throw FieldError("edit_threshold", number(edit_threshold) + ": expected a quantile in [0, 1)");
  }
  if (!(edit_momentum_scale >= 0) || !std::isfinite(edit_momentum_scale)) {
    throw FieldError("edit_momentum_scale", number(edit_momentum_scale) + ": expected a finite number >= 0");
  }
  if (!(edit_mom_beta >= 0 && edit_mom_beta < 1)) {
    throw FieldError("edit_mom_beta", number(edit_mom_beta) + ": expected a number in [0, 1)");
  }
  if (!(edit_weight > 0) || !std::isfinite(edit_weight)) {
    throw FieldError("edit_weight", number(edit_weight) + ": expected a finite number > 0");
  }
}

Json FairDiffusionOptions::to_json() const {
  return Json{{"attributes", audit::attribute_name(attributes)},
              {"edit_guidance_scale", edit_guidance_scale},
              {"edit_warmup_steps", edit_warmup_steps},
              {"edit_threshold", edit_threshold},
              {"edit_momentum_scale", edit_momentum_scale},
              {"edit_mom_beta", edit_mom_beta},
              {"edit_weight", edit_weight},
              {"concept_noun", concept_noun},
              {"race_away", race_away_name(race_away)}};
}

std::vector<SemanticEdit> fair_diffusion_edits(const Group& group, const std::vector<std::string>& genders,
                                               const std::vector<std::string>& races,
                                               const FairDiffusionOptions& options) {
  std::vector<SemanticEdit> edits;
  auto add = [&](const std::string& word, bool reverse, double scale) {
    SemanticEdit e;
    e.prompt = concept_text(word, options.concept_noun);
    e.reverse = reverse;
    e.guidance_scale = scale;
    e.warmup_steps = options.edit_warmup_steps;
    e.threshold = options.edit_threshold;
    e.weight = options.edit_weight;
    edits.push_back(e);
  };
  // Removals first (reversed), the addition last, split over the removed groups.
  auto steer = [&](const std::vector<std::string>& labels, const std::string& toward, bool away,
                   std::string (*phrase)(const std::string&)) {
    if (away && labels.size() > 1) {
      const double scale = options.edit_guidance_scale / static_cast<double>(labels.size() - 1);
      for (const auto& label : labels) {
        if (label != toward) add(phrase(label), true, scale);
      }
    }
    add(phrase(toward), false, options.edit_guidance_scale);
  };
  if (edits_gender(options.attributes)) steer(genders, group.gender, true, audit::gender_phrase);
  if (edits_race(options.attributes)) {
    steer(races, group.race, options.race_away == RaceAway::others, audit::race_phrase);
  }
  return edits;
}

Intervention fair_diffusion(const GroupTargets& targets, uint64_t seed, const FairDiffusionOptions& options) {
  options.validate();
  Intervention out;
  out.method = "fair_diffusion";
  out.settings = options.to_json();
  out.settings["method"] = out.method;
  out.settings["seed"] = seed;
  out.settings["target"] = targets.describe();
  out.apply = [targets, seed, options](GenerationRequest& request, const std::vector<ImageSlot>& slots) {
    auto guidance = std::make_shared<SemanticGuidance>();
    guidance->momentum_scale = options.edit_momentum_scale;
    guidance->momentum_beta = options.edit_mom_beta;
    std::vector<std::string> steered;
    for (const ImageSlot& slot : slots) {
      const GroupDistribution& d = targets.of(slot.prompt_id);
      const Group& group = d.draw(seed, slot.prompt_id, slot.index);
      guidance->edits.push_back(
          fair_diffusion_edits(group, distinct(d, &Group::gender), distinct(d, &Group::race), options));
      steered.push_back(options.attributes == audit::Attribute::gender ? group.gender
                        : options.attributes == audit::Attribute::race ? group.race
                                                                       : group.label());
    }
    request.semantic_guidance = guidance;
    return steered;
  };
  return out;
}

}  // namespace fairdiff::mitigate
