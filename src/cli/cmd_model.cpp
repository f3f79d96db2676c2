// fairdiff model init: a randomly initialised model with a real architecture's configs.
#include <cstdio>

#include "cli/args.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "core/strings.h"
#include "diffusion/model_init.h"

namespace fairdiff::cli {
namespace fs = std::filesystem;
namespace {

// model convert: a copy of a model directory whose safetensors weights are stored in another dtype (e.g. the
// built-in model's fp32 training output as the fp16 files the repository ships), optionally with a shorter text
// context (--max-length); other files are copied.
int run_model_convert(const std::vector<std::string>& argv) {
  fs::path model, out;
  std::string name = "fp16";
  ModelConvertOptions options;
  OptionTable table;
  table.value("model", "DIR", "model directory (diffusers layout)", model)
      .value("out", "DIR", "new model directory (must not exist)", out)
      .choice("weights-dtype", "dtype of the floating-point tensors", name, {"fp32", "fp16", "bf16"})
      .value("max-length", "N",
             "shorten the text context to N tokens (the text encoder's position embeddings and the tokenizer's "
             "model_max_length; 0: keep)",
             options.max_length, 0, 1 << 20);
  Args args("model convert",
            "Copy a model directory, storing its safetensors weights in another dtype (and, with --max-length,\n"
            "a shorter text context).",
            table.specs(), std::vector<std::string>(argv.begin() + 1, argv.end()));
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (model.empty()) throw UsageError("model convert: --model is required");
  if (out.empty()) throw UsageError("model convert: --out is required");
  options.weights_dtype = name == "fp16" ? torch::kFloat16 : name == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  table.with_flag_names([&] { convert_model(model, out, options); });
  std::printf(
      "wrote %s with %s weights%s\n", out.string().c_str(), name.c_str(),
      options.max_length > 0 ? (", text context " + std::to_string(options.max_length) + " tokens").c_str() : "");
  return 0;
}

int run_model(const std::vector<std::string>& argv) {
  if (!argv.empty() && argv[0] == "convert") return run_model_convert(argv);
  if (argv.empty() || argv[0] != "init") {
    if (!argv.empty() && (argv[0] == "--help" || argv[0] == "-h")) {
      std::printf(
          "usage: fairdiff model init --arch ARCH --tokenizer-from DIR --out DIR [--seed S] [--weights-dtype "
          "fp32|fp16]\n"
          "       fairdiff model convert --model DIR --out DIR [--weights-dtype fp32|fp16|bf16]\n");
      return 0;
    }
    throw UsageError("model: expected the action 'init' or 'convert' (fairdiff model init --help)");
  }
  std::string arch_name, weights_dtype = "fp32";
  fs::path tokenizer_from, out;
  uint64_t seed = 0;
  OptionTable table;
  table.choice("arch", "architecture", arch_name, architecture_names())
      .value("tokenizer-from", "DIR", "a tokenizer folder (vocab.json, merges.txt) or a model directory with one",
             tokenizer_from)
      .value("out", "DIR", "new model directory (must not exist or be empty)", out)
      .value("seed", "S", "initialisation seed", seed, 0, (1LL << 53))
      .choice("weights-dtype", "how the weights are stored", weights_dtype, {"fp32", "fp16"});
  Args args("model init", "Write a randomly initialised Stable Diffusion model in the diffusers layout.", table.specs(),
            std::vector<std::string>(argv.begin() + 1, argv.end()));
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (arch_name.empty()) throw UsageError("model init: --arch is required (" + join(architecture_names(), ", ") + ")");
  if (tokenizer_from.empty()) throw UsageError("model init: --tokenizer-from is required");
  if (out.empty()) throw UsageError("model init: --out is required");
  const ModelArchitecture arch = architecture(arch_name);
  const torch::Dtype dtype = weights_dtype == "fp16" ? torch::kFloat16 : torch::kFloat32;
  init_random_model(arch, tokenizer_from, out, seed, dtype);
  std::printf("wrote a randomly initialised %s model to %s\n", arch.name.c_str(), out.c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("model",
                    "model init: a randomly initialised model of a real architecture; model convert: weights dtype",
                    run_model);

}  // namespace fairdiff::cli
