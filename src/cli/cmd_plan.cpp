// fairdiff plan: the under-represented gender x race groups of each prompt and the rewritten prompts that
// ask for them (the study's rule, or a target rule sized to close the gap).
#include <cstdio>
#include <filesystem>

#include "audit/detections.h"
#include "audit/planner.h"
#include "audit/target.h"
#include "cli/args.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/fs.h"

namespace fairdiff::cli {

namespace {

namespace fs = std::filesystem;

int run_plan(const std::vector<std::string>& argv) {
  Args args("plan",
            "Finds each prompt's under-represented gender x race groups in a run's detections and writes a plan:\n"
            "prompt_id,prompt,gender,race,share,n_images,augmented_prompt. Rule 'study': every cell under 40% of\n"
            "the prompt's images gets N images. Rule 'target': cells whose Wilson upper bound is below the target\n"
            "share, with as many images as close the gap.",
            {{"prompts", "CSV", "prompt_id,prompt[,template] CSV; a template may hold a {group} placeholder"},
             {"detections", "CSV", "the run's detections (study layout or per-face CSV)"},
             {"rule", "study|target", "planning rule (default study)"},
             {"images-per-group", "N", "images per under-represented cell, study rule (default 10)"},
             {"threshold", "SHARE", "study rule: cells below this share of all images (default 0.4)"},
             {"target", "CSV", "target rule: target shares attribute,group,share[,prompt_id] (default uniform)"},
             {"map", "COL:FROM=TO", "map an input label or prompt (e.g. race:race=--)", true},
             {"races", "LIST", "race taxonomy, comma-separated"},
             {"out", "CSV", "where to write the plan"}},
            argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  audit::PlanSettings settings;
  const std::string rule = args.get_choice("rule", "study", {"study", "target"});
  settings.rule = rule == "study" ? audit::PlanRule::study : audit::PlanRule::target;
  if (settings.rule == audit::PlanRule::target && (args.has("images-per-group") || args.has("threshold"))) {
    throw UsageError(
        "plan: --images-per-group and --threshold belong to --rule study; the target rule sizes each "
        "group to close its gap");
  }
  if (settings.rule == audit::PlanRule::study && args.has("target")) {
    throw UsageError("plan: --target belongs to --rule target");
  }
  settings.images_per_group = static_cast<int>(args.get_int("images-per-group", 10, 1, 100000));
  settings.share_threshold = args.get_double("threshold", 0.4, 0.0, 1.0);
  audit::DetectionOptions options;
  if (auto races = args.get("races")) options.taxonomy.races = audit::parse_race_list(*races);
  for (const auto& entry : args.get_all("map")) options.label_map.add(entry);
  const fs::path prompts_path = args.require("prompts");
  const fs::path detections_path = args.require("detections");
  const fs::path out = args.require("out");
  require_file(prompts_path, "--prompts");
  require_file(detections_path, "--detections");
  if (auto target = args.get("target")) require_file(*target, "--target");
  if (out.has_parent_path() && !fs::is_directory(out.parent_path())) {
    throw UsageError("plan: the directory of --out " + out.string() + " does not exist");
  }

  const audit::PromptSet prompts = audit::read_prompts(prompts_path);
  const audit::Run run = audit::read_detections(detections_path, "plan", prompts, options);
  audit::Target target(options.taxonomy, prompts.size());
  if (auto path = args.get("target")) target = audit::read_target(*path, options.taxonomy, prompts);
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
