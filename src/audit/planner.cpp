#include "audit/planner.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "audit/distribution.h"
#include "audit/prompt_rewriter.h"
#include "audit/stats.h"
#include "core/csv.h"

namespace fairdiff::audit {

namespace {

std::string augmented(const PromptSet& prompts, int prompt, const std::string& race, const std::string& gender) {
  const std::string& base = !prompts.templates[prompt].empty() ? prompts.templates[prompt] : prompts.texts[prompt];
  return rewrite_prompt(base, group_phrase(race, gender));
}

PlanRow row_for(const PromptSet& prompts, const Taxonomy& taxonomy, int prompt, int cell) {
  PlanRow row;
  row.prompt_index = prompt;
  row.prompt_id = prompts.ids[prompt];
  row.prompt = prompts.texts[prompt];
  const int races = static_cast<int>(taxonomy.races.size());
  row.gender = taxonomy.genders[cell / races];
  row.race = taxonomy.races[cell % races];
  row.augmented_prompt = augmented(prompts, prompt, row.race, row.gender);
  return row;
}

}  // namespace

Plan make_plan(const PromptSet& prompts, const Run& run, const Taxonomy& taxonomy, const Target& target,
               const PlanSettings& settings) {
  Plan plan;
  for (int p = 0; p < prompts.size(); ++p) {
    std::vector<const ImageRecord*> images = run.images_of(p);
    if (images.empty()) {
      plan.notes.push_back("prompt '" + prompts.ids[p] + "' has no images in " + run.source + "; skipped");
      continue;
    }
    GroupDistribution d = make_distribution(images, Attribute::gender_race, taxonomy);
    if (settings.rule == PlanRule::study) {
      if (d.n_determined() == 0) {
        plan.notes.push_back("prompt '" + prompts.ids[p] +
                             "': no face with both gender and race was found in any of its " +
                             std::to_string(images.size()) +
                             " images, so every gender x race cell has share 0 and the study rule plans them all; "
                             "check the images and the face profile before trusting this plan");
      }
      for (int cell = 0; cell < d.num_groups(); ++cell) {
        const double share = d.share_of_all(cell);
        if (share >= settings.share_threshold) continue;
        PlanRow row = row_for(prompts, taxonomy, p, cell);
        row.share = share;
        row.n_images = settings.images_per_group;
        plan.rows.push_back(row);
      }
      continue;
    }
    const long long n = d.n_determined();
    if (n == 0) {
      plan.notes.push_back("prompt '" + prompts.ids[p] + "' has no image with both gender and race; skipped");
      continue;
    }
    const std::vector<double> t = target.shares(Attribute::gender_race, p);
    std::vector<int> under;
    double target_sum = 0;
    double count_sum = 0;
    for (int cell = 0; cell < d.num_groups(); ++cell) {
      if (wilson_interval(d.counts[cell], n).high < t[cell]) {
        under.push_back(cell);
        target_sum += t[cell];
        count_sum += static_cast<double>(d.counts[cell]);
      }
    }
    if (under.empty()) {
      // Below about 1 / t images the Wilson upper bound of an empty cell stays above its target share t.
      double smallest = 1;
      for (double share : t) {
        if (share > 0) smallest = std::min(smallest, share);
      }
      const double needed = 3.8416 * (1 - smallest) / smallest;  // upper bound of 0/n is z^2 / (n + z^2)
      if (static_cast<double>(n) < needed) {
        plan.notes.push_back("prompt '" + prompts.ids[p] + "': with n = " + std::to_string(n) +
                             " labelled images the target rule cannot flag any group (even an empty cell's 95% "
                             "upper bound stays above its target share " +
                             format_share(smallest) +
                             " until n >= " + std::to_string(static_cast<long long>(std::ceil(needed))) +
                             "); generate more images per prompt");
      }
      continue;
    }
    // Cells below target all together hold less than their target, so target_sum < 1 here.
    const double added = (target_sum * static_cast<double>(n) - count_sum) / (1.0 - target_sum);
    for (int cell : under) {
      PlanRow row = row_for(prompts, taxonomy, p, cell);
      row.share = d.share_of_determined(cell);
      row.target = t[cell];
      row.share_upper = wilson_interval(d.counts[cell], n).high;
      row.n_images = static_cast<long long>(
          std::ceil(t[cell] * (static_cast<double>(n) + added) - static_cast<double>(d.counts[cell]) - 1e-9));
      if (row.n_images < 1) row.n_images = 1;
      plan.rows.push_back(row);
    }
  }
  return plan;
}

std::string format_share(double value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string text(buffer, result.ptr);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // Python writes 0.0, 1.0
  return text;
}

std::string plan_csv(const Plan& plan) {
  std::string out = csv_line(
      std::vector<std::string>{"prompt_id", "prompt", "gender", "race", "share", "n_images", "augmented_prompt"});
  for (const auto& row : plan.rows) {
    out += csv_line(std::vector<std::string>{row.prompt_id, row.prompt, row.gender, row.race, format_share(row.share),
                                             std::to_string(row.n_images), row.augmented_prompt});
  }
  return out;
}

}  // namespace fairdiff::audit
