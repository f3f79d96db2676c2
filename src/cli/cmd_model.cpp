// fairdiff model init: a randomly initialised model with a real architecture's configs.
#include <cstdio>

#include "cli/args.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "diffusion/model_init.h"

namespace fairdiff::cli {
namespace {

int run_model(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0] != "init") {
    if (!argv.empty() && (argv[0] == "--help" || argv[0] == "-h")) {
      std::printf(
          "usage: fairdiff model init --arch ARCH --tokenizer-from DIR --out DIR [--seed S] [--weights-dtype "
          "fp32|fp16]\n");
      return 0;
    }
    throw UsageError("model: expected the action 'init' (fairdiff model init --help)");
  }
  Args args("model init", "Write a randomly initialised Stable Diffusion model in the diffusers layout.",
            {{"arch", "ARCH", "sd21-base | sd15 | tiny-sd2 | tiny-sd1"},
             {"tokenizer-from", "DIR", "a tokenizer folder (vocab.json, merges.txt) or a model directory with one"},
             {"out", "DIR", "new model directory (must not exist or be empty)"},
             {"seed", "S", "initialisation seed (default 0)"},
             {"weights-dtype", "fp32|fp16", "how the weights are stored (default fp32)"}},
            std::vector<std::string>(argv.begin() + 1, argv.end()));
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  ModelArchitecture arch = architecture(args.get_choice("arch", "", architecture_names()));
  std::string tokenizer_from = args.require("tokenizer-from");
  std::string out = args.require("out");
  uint64_t seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, (1LL << 53)));
  torch::Dtype dtype =
      args.get_choice("weights-dtype", "fp32", {"fp32", "fp16"}) == "fp16" ? torch::kFloat16 : torch::kFloat32;
  init_random_model(arch, tokenizer_from, out, seed, dtype);
  std::printf("wrote a randomly initialised %s model to %s\n", arch.name.c_str(), out.c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("model", "model init: a randomly initialised model of a real architecture", run_model);

}  // namespace fairdiff::cli
