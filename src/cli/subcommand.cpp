#include "cli/subcommand.h"

#include <algorithm>

namespace fairdiff::cli {
namespace {

std::vector<Subcommand>& registry() {
  static std::vector<Subcommand> all;
  return all;
}

std::vector<Subcommand>& bench_registry() {
  static std::vector<Subcommand> all;
  return all;
}

bool add_sorted(std::vector<Subcommand>& all, const Subcommand& subcommand) {
  all.push_back(subcommand);
  std::sort(all.begin(), all.end(), [](const Subcommand& a, const Subcommand& b) { return a.name < b.name; });
  return true;
}

}  // namespace

bool register_subcommand(const Subcommand& subcommand) {
  return add_sorted(registry(), subcommand);
}

const std::vector<Subcommand>& subcommands() {
  return registry();
}

bool register_bench(const Subcommand& bench) {
  return add_sorted(bench_registry(), bench);
}

const std::vector<Subcommand>& benches() {
  return bench_registry();
}

}  // namespace fairdiff::cli
