// The distribution a fair generator should produce, per prompt and attribute. Uniform unless the user gives
// a CSV `attribute,group,share` with an optional `prompt_id` column (empty or `*` = every prompt), e.g.
// labour statistics per occupation:
//     prompt_id,attribute,group,share
//     nurse,gender,Female,0.87
//     nurse,gender,Male,0.13
// Shares of one attribute (and prompt) must cover every group and sum to 1. Gender x race groups are
// written "Female black"; without them the gender x race target is the product of the gender and race
// targets.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "audit/detections.h"
#include "audit/labels.h"

namespace fairdiff::audit {

class Target {
 public:
  Target() = default;
  Target(const Taxonomy& taxonomy, int num_prompts);  // uniform

  // Shares over the taxonomy's groups of `attribute` for prompt index `prompt`.
  std::vector<double> shares(Attribute attribute, int prompt) const;
  bool is_uniform() const { return source_.empty(); }
  const std::string& source() const { return source_; }
  // Sets an explicit target (used by the reader and by tests); an empty prompt list means every prompt.
  void set(Attribute attribute, int prompt, std::vector<double> shares);
  void set_source(const std::string& source) { source_ = source; }

 private:
  Taxonomy taxonomy_;
  int num_prompts_ = 0;
  std::string source_;
  std::map<std::pair<Attribute, int>, std::vector<double>> explicit_;  // prompt -1 = every prompt
};

// `allow_zero_shares`: a mix to draw (eval-audit), where a group may be absent; a fairness target may not (its
// KL divergence and chi-square need every share above 0).
Target read_target(const std::filesystem::path& path, const Taxonomy& taxonomy, const PromptSet& prompts,
                   bool allow_zero_shares = false);

}  // namespace fairdiff::audit
