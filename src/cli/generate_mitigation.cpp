#include "cli/generate_mitigation.h"

#include "audit/target.h"
#include "core/error.h"
#include "core/prompts.h"

namespace fairdiff::cli {

void bind_mitigation_options(OptionTable& table, MitigationFlags& flags) {
  std::vector<std::string> methods = {"none"};
  for (const auto& m : mitigate::generation_methods()) methods.push_back(m);
  mitigate::MethodSettings& s = flags.settings;
  const std::vector<std::string> attributes = {"gender", "race", "gender_race"};
  table
      .choice("mitigation",
              "training-free mitigation applied while generating (docs/mitigations.md): balanced_prompting "
              "rewrites each image's prompt with a group drawn from the target; projection calibrates the prompt "
              "embeddings (Chuang et al. 2023); fair_diffusion steers each image toward a drawn group with semantic "
              "guidance (Friedrich et al. 2023)",
              flags.method, methods)
      .value("target", "CSV",
             "the distribution balanced_prompting and fair_diffusion draw each image's group from "
             "(prompt_id,attribute,group,share; default: uniform over gender x race)",
             flags.target)
      .value("mitigation-seed", "S", "seed of the per-image group draws (default: --seed)", flags.seed, 0, 1LL << 53)
      .value("projection-lambda", "L", "projection: strength of the calibration (the authors' default 500)",
             s.projection_lambda, 0.0, 1e9)
      .choice("projection-attribute", "projection: the prompt pairs it is calibrated on", s.projection_attribute,
              attributes)
      .choice("fair-attribute", "fair_diffusion: what each image is steered by", s.fair_diffusion_attribute, attributes)
      .value("edit-guidance-scale", "G", "fair_diffusion: edit guidance scale (published: 4)",
             s.fair_diffusion_guidance_scale, 0.0, 100.0, "edit_guidance_scale")
      .value("edit-warmup-steps", "N", "fair_diffusion: steps before the edit applies (published: 5)",
             s.fair_diffusion_warmup_steps, 0, 1000, "edit_warmup_steps")
      .value("edit-threshold", "Q", "fair_diffusion: quantile of the edit kept per channel (published: 0.95)",
             s.fair_diffusion_threshold, 0.0, 0.9999, "edit_threshold")
      .value("edit-momentum-scale", "M", "fair_diffusion: momentum scale (published: 0.5)",
             s.fair_diffusion_momentum_scale, 0.0, 100.0, "edit_momentum_scale")
      .value("edit-momentum-beta", "B", "fair_diffusion: momentum beta (published: 0.6)",
             s.fair_diffusion_momentum_beta, 0.0, 0.9999, "edit_mom_beta");
}

Intervention make_mitigation(const MitigationFlags& flags, const Args& args, const std::vector<PromptItem>& prompts,
                             const std::vector<std::string>& templates, uint64_t run_seed, int64_t run_steps) {
  const std::vector<std::pair<std::string, std::string>> owned = {
      {"projection-lambda", "projection"},
      {"projection-attribute", "projection"},
      {"fair-attribute", "fair_diffusion"},
      {"edit-guidance-scale", "fair_diffusion"},
      {"edit-warmup-steps", "fair_diffusion"},
      {"edit-threshold", "fair_diffusion"},
      {"edit-momentum-scale", "fair_diffusion"},
      {"edit-momentum-beta", "fair_diffusion"},
      {"target", "balanced_prompting or fair_diffusion"},
      {"mitigation-seed", "balanced_prompting or fair_diffusion"}};
  for (const auto& [flag, method] : owned) {
    if (args.has(flag) && method.find(flags.method) == std::string::npos) {
      throw UsageError("generate: --" + flag + " applies to --mitigation " + method +
                       (flags.method == "none" ? " (no --mitigation was given)" : ", not " + flags.method));
    }
  }
  if (flags.method == "none") return {};
  mitigate::MethodSettings s = flags.settings;
  s.seed = args.has("mitigation-seed") ? flags.seed : run_seed;
  s.steps = run_steps;
  PromptSet set;
  set.source = "the run's prompts";
  for (size_t i = 0; i < prompts.size(); ++i) {
    set.ids.push_back(prompts[i].prompt_id);
    set.texts.push_back(prompts[i].prompt);
    const std::string& t = i < templates.size() ? templates[i] : std::string();
    set.templates.push_back(t);
    s.prompts.push_back(t.empty() ? prompts[i].prompt : t);
    if (!t.empty()) s.templates[prompts[i].prompt_id] = t;
  }
  s.targets.all = mitigate::GroupDistribution::uniform(s.taxonomy);
  if (!flags.target.empty()) {
    const audit::Target target = audit::read_target(flags.target, s.taxonomy, set);
    for (int p = 0; p < set.size(); ++p) {
      s.targets.per_prompt.emplace(set.ids[static_cast<size_t>(p)],
                                   mitigate::GroupDistribution::from_target(s.taxonomy, target, p));
    }
    s.targets.source = flags.target.string();
  }
  return mitigate::generation_method(flags.method, s);
}

}  // namespace fairdiff::cli
