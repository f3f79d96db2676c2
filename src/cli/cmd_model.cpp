// fairdiff model init: a randomly initialised model with a real architecture's configs; fairdiff model convert: a
// model directory in another dtype, or a single-file checkpoint in the diffusers layout.
#include <cstdio>

#include "cli/args.h"
#include "cli/model_options.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/hub_cache.h"
#include "core/hub_download.h"
#include "core/interrupt.h"
#include "core/safetensors.h"
#include "core/strings.h"
#include "diffusion/model_init.h"
#include "diffusion/single_file.h"

namespace fairdiff::cli {
namespace fs = std::filesystem;
namespace {

// model convert: a copy of a model directory whose safetensors weights are stored in another dtype (e.g. the
// built-in model's fp32 training output as the fp16 files the repository ships), optionally with a shorter text
// context (--max-length); other files are copied. A single-file checkpoint (original layout) is written out in the
// diffusers layout instead.
int run_model_convert(const std::vector<std::string>& argv) {
  fs::path model, out;
  std::string name = "fp16";
  ModelConvertOptions options;
  SingleFileOptions single_file;
  OptionTable table;
  table.value("model", "PATH", "model directory (diffusers layout) or single-file checkpoint (also as MODEL)", model)
      .value("out", "DIR", "new model directory (must not exist)", out)
      .choice("weights-dtype", "dtype of the floating-point tensors (default fp16; a single file keeps its own)", name,
              {"fp32", "fp16", "bf16"})
      .value("max-length", "N",
             "shorten the text context to N tokens (the text encoder's position embeddings and the tokenizer's "
             "model_max_length; 0: keep)",
             options.max_length, 0, 1 << 20);
  bind_single_file_options(table, single_file);
  Args args("model convert",
            "Copy a model directory, storing its safetensors weights in another dtype (and, with --max-length,\n"
            "a shorter text context); or write a single-file SD 1.x/2.x checkpoint (.safetensors, original layout)\n"
            "as a model directory in the diffusers layout.",
            table.specs(), std::vector<std::string>(argv.begin() + 1, argv.end()), "[MODEL]");
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (args.positionals().size() > 1) throw UsageError("model convert: give one MODEL");
  if (!args.positionals().empty()) {
    if (!model.empty()) throw UsageError("model convert: give the model as MODEL or as --model, not both");
    model = args.positionals()[0];
  }
  if (model.empty()) throw UsageError("model convert: --model is required");
  if (out.empty()) throw UsageError("model convert: --out is required");
  model = resolve_model_path(model.string());  // a Hub id: its snapshot in the Hugging Face cache
  const auto dtype = [](const std::string& n) {
    return n == "fp16" ? torch::kFloat16 : n == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  };
  if (is_single_file_checkpoint(model)) {
    if (args.has("max-length")) {
      throw UsageError("model convert: --max-length applies to a model directory; convert " + model.string() +
                       " first, then shorten the copy");
    }
    if (args.has("arch") && args.has("config")) throw UsageError("model convert: give --arch or --config, not both");
    const std::optional<torch::Dtype> weights_dtype =
        args.has("weights-dtype") ? std::optional<torch::Dtype>(dtype(name)) : std::nullopt;
    const SingleFileModel converted =
        table.with_flag_names([&] { return convert_single_file(model, out, single_file, weights_dtype); });
    std::printf("wrote %s: %s in the diffusers layout%s\n", out.string().c_str(), converted.title().c_str(),
                weights_dtype ? (", " + name + " weights").c_str() : "");
    return 0;
  }
  if (args.has("arch") || args.has("config")) {
    throw UsageError("model convert: --arch and --config describe a single-file checkpoint; " + model.string() +
                     " is a folder");
  }
  options.weights_dtype = dtype(name);
  table.with_flag_names([&] { convert_model(model, out, options); });
  std::printf(
      "wrote %s with %s weights%s\n", out.string().c_str(), name.c_str(),
      options.max_length > 0 ? (", text context " + std::to_string(options.max_length) + " tokens").c_str() : "");
  return 0;
}

// model pull: a model from the Hugging Face Hub into the huggingface_hub cache (core/hub_download.h), so that
// `--model ORG/NAME` works wherever a model is taken; a model diffusers already downloaded is not fetched again.
int run_model_pull(const std::vector<std::string>& argv) {
  std::string revision, variant;
  OptionTable table;
  table.value("revision", "R", "branch, tag or commit hash (default main; also written ORG/NAME@R)", revision)
      .choice("variant", "component weights to fetch: fp16 takes <base>.fp16.safetensors where it is published",
              variant, {"fp16"});
  Args args("model pull",
            "Download a Stable Diffusion model in the diffusers layout from the Hugging Face Hub: only what fairdiff\n"
            "loads (configs, tokenizer, *.safetensors; never .bin/.ckpt), into the Hugging Face cache (HF_HUB_CACHE,\n"
            "else $HF_HOME/hub, else ~/.cache/huggingface/hub) that diffusers uses too. Resumes an interrupted\n"
            "download, checks each weights file's SHA-256. HF_TOKEN: a token for gated or private models;\n"
            "HF_ENDPOINT: a mirror; HF_HUB_OFFLINE=1: use the cache only. Then: --model ORG/NAME.",
            table.specs(), std::vector<std::string>(argv.begin() + 1, argv.end()), "ORG/NAME[@REVISION]");
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (args.positionals().size() != 1) {
    throw UsageError("model pull: give one Hub id: fairdiff model pull ORG/NAME[@REVISION] [--revision R]");
  }
  const std::string& ref = args.positionals()[0];
  std::optional<HubModelId> id = parse_hub_model_id(ref);
  if (!id) {
    throw UsageError("model pull: '" + ref +
                     "' is not a Hub id ORG/NAME[@REVISION] (letters, digits, '-', '_' and '.', e.g. "
                     "stabilityai/stable-diffusion-2-1-base)");
  }
  if (args.has("revision")) {
    if (id->revision_given)
      throw UsageError("model pull: give the revision as ORG/NAME@R or as --revision R, not both");
    id = parse_hub_model_id(id->repo + "@" + revision);
    if (!id) throw UsageError("model pull: --revision '" + revision + "' is not a branch, tag or commit hash");
  }
  HubPullOptions options = hub_pull_options_from_environment();
  options.variant = variant;
  install_interrupt_handler();
  const HubPullResult result = pull_hub_model(*id, options);
  for (const std::string& note : result.notes) std::printf("note: %s\n", note.c_str());
  if (result.offline) {
    std::printf("HF_HUB_OFFLINE is set: %s is in the cache at commit %s (%s); nothing was downloaded\n",
                id->str().c_str(), result.commit.c_str(), result.snapshot.string().c_str());
  } else {
    std::printf("pulled %s at commit %s: %zu files, %lld downloaded (%.2f MB), the others already in the cache -> %s\n",
                id->str().c_str(), result.commit.c_str(), result.files.size(),
                static_cast<long long>(result.files_downloaded), static_cast<double>(result.bytes_downloaded) / 1e6,
                result.snapshot.string().c_str());
  }
  std::printf("use it as --model %s\n", id->str().c_str());
  return 0;
}

int run_model(const std::vector<std::string>& argv) {
  if (!argv.empty() && argv[0] == "convert") return run_model_convert(argv);
  if (!argv.empty() && argv[0] == "pull") return run_model_pull(argv);
  if (argv.empty() || argv[0] != "init") {
    if (!argv.empty() && (argv[0] == "--help" || argv[0] == "-h")) {
      std::printf(
          "usage: fairdiff model init --arch ARCH --tokenizer-from DIR --out DIR [--seed S] [--weights-dtype "
          "fp32|fp16]\n"
          "       fairdiff model convert --model DIR --out DIR [--weights-dtype fp32|fp16|bf16] [--max-length N]\n"
          "       fairdiff model convert FILE.safetensors --out DIR [--arch sd1|sd2|sd2-v | --config DIR]\n"
          "       fairdiff model pull ORG/NAME[@REVISION] [--revision R] [--variant fp16]\n");
      return 0;
    }
    throw UsageError("model: expected the action 'init', 'convert' or 'pull' (fairdiff model --help)");
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
  tokenizer_from = resolve_model_path(tokenizer_from.string());  // a Hub id: its snapshot in the Hugging Face cache
  const ModelArchitecture arch = architecture(arch_name);
  const torch::Dtype dtype = weights_dtype == "fp16" ? torch::kFloat16 : torch::kFloat32;
  init_random_model(arch, tokenizer_from, out, seed, dtype);
  std::printf("wrote a randomly initialised %s model to %s\n", arch.name.c_str(), out.c_str());
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND(
    "model",
    "model init: a randomly initialised model of a real architecture; model convert: weights dtype, or a "
    "single-file checkpoint to the diffusers layout; model pull: a model from the Hugging Face Hub",
    run_model);

}  // namespace fairdiff::cli
