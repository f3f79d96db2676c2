// fairdiff audit | mitigate | status | study init: the study as commands over a study folder and its run store
// (see study/study_runner.h).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli/args.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/assets.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/shard.h"
#include "study/study_runner.h"

namespace fairdiff::cli {
namespace {
namespace fs = std::filesystem;

struct StudyCommandOptions {
  fs::path config;
  fs::path dir;  // empty: the config file's folder
  bool dry_run = false;
  std::string shard;
};

fs::path study_dir_of(const StudyCommandOptions& o, const study::StudyConfig& config) {
  if (!o.dir.empty()) return o.dir;
  return config.file.parent_path().empty() ? fs::path(".") : config.file.parent_path();
}

void print_stages(const std::vector<study::PlannedStage>& stages) {
  for (const auto& s : stages) {
    const std::string amount =
        s.work < 0 ? "? " + s.unit + " (known after the plan)" : std::to_string(s.work) + " " + s.unit;
    std::printf("  %-44s %-32s %s%s\n", s.name.c_str(), amount.c_str(), s.description.c_str(),
                s.done ? "  [done]" : "");
  }
}

int run_study_command(const std::vector<std::string>& argv, bool mitigate) {
  const std::string name = mitigate ? "mitigate" : "audit";
  StudyCommandOptions o;
  OptionTable table;
  table
      .value("config", "FILE", "the study's configuration (TOML; `fairdiff study init` writes a starting point)",
             o.config)
      .value("dir", "DIR", "the study folder: images, run store, models, report (default: the config file's folder)",
             o.dir)
      .flag("dry-run", "list every stage with its amount of work and whether it is done, then stop", o.dry_run)
      .value("shard", "K/N",
             "generate and analyze only shard K of N (from 0) of the base audit's images, in DIR/shards/K-of-N;\n"
             "the same command without a shard then takes the finished shards' work and goes on (default: from\n"
             "SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX, as generate --shard; FAIRDIFF_NO_SHARD=1 turns that off)",
             o.shard);
  Args args(name,
            mitigate ? "The whole study: audit the base model (reused when done), plan the under-represented groups,\n"
                       "generate them with rewritten prompts, fine-tune the model over the grid, audit every\n"
                       "fine-tuned model, and write one comparison report. Resumes where it stopped."
                     : "Audit one model: generate the study's images, detect and classify faces, and report the\n"
                       "gender / race / age distributions and bias metrics. Resumes where it stopped.",
            table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (o.config.empty()) throw UsageError(name + ": --config FILE is required (`fairdiff study init` writes one)");
  const study::StudyConfig config = study::read_study_config(o.config);
  std::string shard_source;
  const Shard shard = resolve_shard(o.shard, shard_source);
  if (shard.sharded() && shard_source != "--shard")
    std::fprintf(stderr, "%s: shard %s of the base audit (from %s)\n", name.c_str(), shard.str().c_str(),
                 shard_source.c_str());
  const fs::path dir =
      shard.sharded() ? study::StudyRunner::shard_folder(study_dir_of(o, config), shard) : study_dir_of(o, config);
  if (o.dry_run) {
    std::error_code ec;
    const bool exists = fs::is_regular_file(study::RunStore::file_in(dir), ec);
    std::printf("%s: study folder %s%s; stages:\n", name.c_str(), dir.string().c_str(),
                exists ? "" : " (new: nothing done yet)");
    if (exists) {
      study::StudyRunner runner(config, dir);
      print_stages(runner.planned_stages(mitigate));
    } else {
      // Plan without creating the folder: a runner on a throw-away store.
      const fs::path scratch = fs::temp_directory_path() / ("fairdiff-dry-run-" + std::to_string(::getpid()));
      {
        study::StudyRunner runner(config, scratch);
        print_stages(runner.planned_stages(mitigate));
      }
      fs::remove_all(scratch, ec);
    }
    return 0;
  }
  study::StudyRunner runner(config, dir);
  runner.set_shard(shard);
  if (shard.sharded()) {
    for (const auto& line : runner.run_shard().lines) std::printf("%s\n", line.c_str());
    return 0;
  }
  const study::StudySummary summary = mitigate ? runner.run_mitigate() : runner.run_audit();
  for (const auto& line : summary.lines) std::printf("%s\n", line.c_str());
  std::printf("report: %s\n", summary.report_html.string().c_str());
  return 0;
}

int run_audit(const std::vector<std::string>& argv) {
  return run_study_command(argv, false);
}
int run_mitigate(const std::vector<std::string>& argv) {
  return run_study_command(argv, true);
}

int run_status(const std::vector<std::string>& argv) {
  Args args("status", "What a study folder holds: every stage, done or left, with the time left.", {}, argv, "DIR");
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  if (args.positionals().size() != 1) throw UsageError("status: give one study folder: fairdiff status DIR");
  std::printf("%s", study::study_status(args.positionals()[0]).c_str());
  return 0;
}

int run_study(const std::vector<std::string>& argv) {
  fs::path out = "study.toml";
  std::string model = "builtin";
  bool force = false;
  OptionTable table;
  table.value("out", "FILE", "where to write the configuration; prompts.csv goes beside it", out)
      .value("model", "MODEL",
             "the model to audit: a folder, a Hub id ORG/NAME in the Hugging Face cache, or builtin (the model "
             "shipped with fairdiff)",
             model)
      .flag("force", "overwrite an existing configuration", force);
  Args args("study init",
            "Writes a study configuration to start from: the seed study's (10 occupations x 100 images, the\n"
            "DreamBooth grid), commented, with its prompts beside it.",
            table.specs(), argv, "init");
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (args.positionals() != std::vector<std::string>{"init"})
    throw UsageError("study: the only action is `fairdiff study init [--out FILE] [--model DIR]`");
  const fs::path prompts = out.parent_path() / "prompts.csv";
  if (!force && (fs::exists(out) || fs::exists(prompts))) {
    throw UsageError("study init: " + (fs::exists(out) ? out : prompts).string() +
                     " already exists (pass --force to overwrite it)");
  }
  const fs::path seed_prompts = find_asset_dir("data/seed", "prompts_info.csv") / "prompts_info.csv";
  require_file(seed_prompts, "the seed study's prompts");
  if (!out.parent_path().empty()) ensure_directory(out.parent_path(), "--out folder");
  write_file_atomic(prompts, read_file(seed_prompts));
  write_file_atomic(out, study::seed_study_toml(model, "prompts.csv"));
  std::printf("wrote %s and %s; run: fairdiff mitigate --config %s (or audit; add --dry-run to see the stages)\n",
              out.string().c_str(), prompts.string().c_str(), out.string().c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("audit", "generate -> analyze -> report for one model, from a study config (resumable)", run_audit);
FAIRDIFF_SUBCOMMAND("mitigate", "the whole study: audit, plan, augment, fine-tune a grid, audit again, compare",
                    run_mitigate);
FAIRDIFF_SUBCOMMAND("status", "what a study folder has done and what is left, with an ETA", run_status);
FAIRDIFF_SUBCOMMAND("study", "study init: write the seed study's configuration as a starting point", run_study);

}  // namespace fairdiff::cli
