// Subcommand registry: each src/cli/cmd_*.cpp registers itself, so adding a subcommand touches one file.
#pragma once

#include <string>
#include <vector>

namespace fairdiff::cli {

// Runs with the arguments after the subcommand's name; returns the exit code (errors are thrown).
using SubcommandFn = int (*)(const std::vector<std::string>& args);

struct Subcommand {
  std::string name;
  std::string summary;
  SubcommandFn run;
};

bool register_subcommand(const Subcommand& subcommand);
const std::vector<Subcommand>& subcommands();

// The actions of `fairdiff bench <name>` (generate, finetune, analyze), registered the same way by the file
// that implements each (FAIRDIFF_BENCH), so a build without the faces module simply has no `bench analyze`.
bool register_bench(const Subcommand& bench);
const std::vector<Subcommand>& benches();

}  // namespace fairdiff::cli

#define FAIRDIFF_SUBCOMMAND(name, summary, fn) \
  static const bool fairdiff_registered_##fn = ::fairdiff::cli::register_subcommand({name, summary, fn})

#define FAIRDIFF_BENCH(name, summary, fn) \
  static const bool fairdiff_bench_registered_##fn = ::fairdiff::cli::register_bench({name, summary, fn})
