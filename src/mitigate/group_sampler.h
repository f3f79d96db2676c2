// The group an image is steered toward by a per-image mitigation (balanced prompting, semantic guidance): a draw
// from a distribution over gender x race groups (the study's target, uniform by default) that depends only on the
// run's seed, the prompt and the image's index, so an image gets the same group alone or in any batch, first run
// or resumed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "audit/labels.h"
#include "audit/target.h"

namespace fairdiff::mitigate {

struct Group {
  std::string gender;  // the taxonomy's spelling: "Female"
  std::string race;    // "black"
  double share = 0;    // its probability in the distribution

  // "Female black": the gender x race label of audit/labels.h.
  std::string label() const;
};

class GroupDistribution {
 public:
  // Uniform over the taxonomy's gender x race groups.
  static GroupDistribution uniform(const audit::Taxonomy& taxonomy);
  // Prompt `prompt`'s gender x race shares of `target`.
  static GroupDistribution from_target(const audit::Taxonomy& taxonomy, const audit::Target& target, int prompt);

  const std::vector<Group>& groups() const { return groups_; }
  // The group of image `index` of prompt `prompt_id` in a run seeded `seed`.
  const Group& draw(uint64_t seed, const std::string& prompt_id, int64_t index) const;

 private:
  std::vector<Group> groups_;  // shares sum to 1; zero-share groups are kept (never drawn)
};

// A uniform number in [0, 1) from (seed, prompt_id, index) and a `stream` name (so two methods drawing for the
// same image do not draw the same number): SplitMix64 over the FNV-1a hash of the key.
double image_uniform(uint64_t seed, const std::string& prompt_id, int64_t index, const std::string& stream);

}  // namespace fairdiff::mitigate
