// fairdiff plan: the under-represented gender x race groups of each prompt and the rewritten prompts that
// ask for them (the study's rule, or a target rule sized to close the gap).
#include <cstdio>
#include <filesystem>

#include "audit/detections.h"
#include "audit/planner.h"
#include "audit/target.h"
#include "cli/args.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/prompts.h"

namespace fairdiff::cli {

namespace {

namespace fs = std::filesystem;

int run_plan(const std::vector<std::string>& argv) {
  audit::PlanSettings settings;
  fs::path prompts_path, detections_path, target_path, out;
  std::string rule = "study", races;
  OptionTable table;
  table
      .value("prompts", "CSV", "prompt_id,prompt[,template] CSV; a template may hold a {group} placeholder",
             prompts_path)
      .value("detections", "CSV", "the run's detections (study layout or per-face CSV)", detections_path)
      .choice("rule", "planning rule", rule, {"study", "target"})
      .value("images-per-group", "N", "images per under-represented cell, study rule", settings.images_per_group, 1,
             100000)
      .value("threshold", "SHARE", "study rule: cells below this share of all images", settings.share_threshold, 0.0,
             1.0, "share_threshold")
      .value("target", "CSV", "target rule: target shares attribute,group,share[,prompt_id] (default uniform)",
             target_path)
      .unbound({{"map", "COL:FROM=TO", "map an input label or prompt (e.g. race:race=--)", true}})
      .value("races", "LIST", "race taxonomy, comma-separated (default: the study's six)", races)
      .value("out", "CSV", "where to write the plan", out);
  Args args("plan",
            "Finds each prompt's under-represented gender x race groups in a run's detections and writes a plan:\n"
            "prompt_id,prompt,gender,race,share,n_images,augmented_prompt. Rule 'study': every cell under 40% of\n"
            "the prompt's images gets N images. Rule 'target': cells whose Wilson upper bound is below the target\n"
            "share, with as many images as close the gap.",
            table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  settings.rule = rule == "study" ? audit::PlanRule::study : audit::PlanRule::target;
  if (settings.rule == audit::PlanRule::target && (args.has("images-per-group") || args.has("threshold"))) {
    throw UsageError(
        "plan: --images-per-group and --threshold belong to --rule study; the target rule sizes each "
        "group to close its gap");
  }
  if (settings.rule == audit::PlanRule::study && args.has("target")) {
    throw UsageError("plan: --target belongs to --rule target");
  }
  audit::DetectionOptions options;
  table.with_flag_names([&] {
    if (!races.empty()) options.taxonomy.races = audit::parse_race_list(races);
    for (const auto& entry : args.get_all("map")) options.label_map.add(entry);
  });
  if (prompts_path.empty()) throw UsageError("plan: --prompts is required");
  if (detections_path.empty()) throw UsageError("plan: --detections is required");
  if (out.empty()) throw UsageError("plan: --out is required");
  require_file(prompts_path, "--prompts");
  require_file(detections_path, "--detections");
  if (!target_path.empty()) require_file(target_path, "--target");
  if (out.has_parent_path() && !fs::is_directory(out.parent_path())) {
    throw UsageError("plan: the directory of --out " + out.string() + " does not exist");
  }

  const PromptSet prompts = read_prompts_csv(prompts_path);
  const audit::Run run = audit::read_detections(detections_path, "plan", prompts, options);
  audit::Target target(options.taxonomy, prompts.size());
  if (!target_path.empty()) target = audit::read_target(target_path, options.taxonomy, prompts);
  const audit::Plan plan = audit::make_plan(prompts, run, options.taxonomy, target, settings);
  write_file_atomic(out, audit::plan_csv(plan));

  long long images = 0;
  for (const auto& row : plan.rows) images += row.n_images;
  for (const auto& note : plan.notes) std::fprintf(stderr, "plan: %s\n", note.c_str());
  std::printf("wrote %s: %zu under-represented groups, %lld images to generate (rule %s)\n", out.string().c_str(),
              plan.rows.size(), images, rule.c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("plan", "under-represented groups per prompt and rewritten prompts to generate them", run_plan);

}  // namespace fairdiff::cli
