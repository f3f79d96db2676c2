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

}  // namespace fairdiff::cli

#define FAIRDIFF_SUBCOMMAND(name, summary, fn) \
  static const bool fairdiff_registered_##fn = ::fairdiff::cli::register_subcommand({name, summary, fn})
