// The under-representation planner: which gender x race groups of each prompt need more images, how many,
// and the rewritten prompt that asks for them.
//  - study rule (the study's notebook): every gender x race cell whose share of the prompt's images (all
//    images, "--" included in the denominator, so no-face images count) is below 0.4 gets N images (10).
//  - target rule: a cell is under-represented when the upper end of its Wilson 95% interval (share over
//    images with both labels) is below its target share; the set U of such cells gets
//        X = (T_U n - C_U) / (1 - T_U) images in all,  x_g = ceil(t_g (n + X) - c_g) of cell g,
//    which brings each of them to its target share if the other cells stay as they are
//    (T_U = sum of their targets, C_U = sum of their counts, n = images with both labels).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "audit/detections.h"
#include "audit/target.h"

namespace fairdiff::audit {

enum class PlanRule { study, target };

struct PlanSettings {
  PlanRule rule = PlanRule::study;
  int images_per_group = 10;     // study rule
  double share_threshold = 0.4;  // study rule
};

struct PlanRow {
  int prompt_index = -1;
  std::string prompt_id;
  std::string prompt;
  std::string gender;
  std::string race;
  double share = 0;
  long long n_images = 0;
  std::string augmented_prompt;
  // Target rule only: the target share and the Wilson upper bound that fell below it.
  double target = -1;
  double share_upper = -1;
};

struct Plan {
  std::vector<PlanRow> rows;
  std::vector<std::string> notes;  // e.g. prompts the detections lack
};

Plan make_plan(const PromptSet& prompts, const Run& run, const Taxonomy& taxonomy, const Target& target,
               const PlanSettings& settings);

// Shortest decimal text that reads back as `value`, written like Python's repr of a float ("0.0", "0.07",
// "0.2"), so plan shares match the study's CSV text.
std::string format_share(double value);

// CSV text with the columns prompt_id,prompt,gender,race,share,n_images,augmented_prompt.
std::string plan_csv(const Plan& plan);

}  // namespace fairdiff::audit
