// fairdiff: one binary, one subcommand per file in src/cli. main() catches every error once and maps its
// kind to the exit code (see core/error.h).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/subcommand.h"
#include "core/device.h"
#include "core/error.h"
#include "core/interrupt.h"

namespace {

void print_help() {
  std::printf("fairdiff: measure and mitigate demographic bias in text-to-image diffusion models\n\n");
  std::printf("usage: fairdiff <command> [options]   (fairdiff <command> --help for its options)\n\ncommands:\n");
  for (const auto& sub : fairdiff::cli::subcommands()) {
    std::printf("  %-18s %s\n", sub.name.c_str(), sub.summary.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help();
    return args.empty() ? static_cast<int>(fairdiff::ExitCode::usage) : 0;
  }
  const std::string name = args[0];
  for (const auto& sub : fairdiff::cli::subcommands()) {
    if (sub.name != name) continue;
    fairdiff::install_interrupt_handler();
    try {
      fairdiff::configure_cpu_threads();
      return sub.run(std::vector<std::string>(args.begin() + 1, args.end()));
    } catch (const fairdiff::Error& e) {
      std::fprintf(stderr, "fairdiff %s: error: %s\n", name.c_str(), e.what());
      return static_cast<int>(e.code());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fairdiff %s: error: %s\n", name.c_str(), e.what());
      return static_cast<int>(fairdiff::ExitCode::failure);
    }
  }
  std::fprintf(stderr, "fairdiff: unknown command '%s' (run fairdiff --help for the list)\n", name.c_str());
  return static_cast<int>(fairdiff::ExitCode::usage);
}
