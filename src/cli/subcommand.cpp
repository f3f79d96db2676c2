#include "cli/subcommand.h"

#include <algorithm>

namespace fairdiff::cli {
namespace {

std::vector<Subcommand>& registry() {
  static std::vector<Subcommand> all;
  return all;
}

}  // namespace

bool register_subcommand(const Subcommand& subcommand) {
  auto& all = registry();
  all.push_back(subcommand);
  std::sort(all.begin(), all.end(), [](const Subcommand& a, const Subcommand& b) { return a.name < b.name; });
  return true;
}

const std::vector<Subcommand>& subcommands() {
  return registry();
}

}  // namespace fairdiff::cli
