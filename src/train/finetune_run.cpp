// run_finetune: the `fairdiff finetune` run around DreamBoothTrainer.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "core/device.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/strings.h"
#include "diffusion/single_file.h"
#include "train/class_images.h"
#include "train/dreambooth_trainer.h"
#include "train/model_output.h"

namespace fairdiff::train {
namespace fs = std::filesystem;
namespace {

// Test hook: behave as if Ctrl-C arrived once this many optimizer steps are done (0: never).
int64_t interrupt_after_step() {
  const char* env = std::getenv("FAIRDIFF_FINETUNE_INTERRUPT_AFTER_STEP");
  long long value = 0;
  if (!env || !parse_int64(env, value) || value < 1) return 0;
  return value;
}

std::string format_detail(const LossRecord& r) {
  char buffer[96];
  std::snprintf(buffer, sizeof(buffer), "loss %.4f lr %.3g", r.loss, r.lr);
  return buffer;
}

PipelineLoadOptions load_options(const FinetuneConfig& config) {
  PipelineLoadOptions options;
  options.single_file = config.single_file;
  return options;
}

void write_output(const FinetuneConfig& config, const DreamBoothTrainer& trainer, const TrainingState& state,
                  const FinetuneResult& result, const DataParallel& parallel) {
  const fs::path staging = config.work_dir() / "output.partial";
  fs::remove_all(staging);
  ensure_directory(staging, "output staging folder");
  const auto weights = trainer.trained_weights();
  if (config.use_lora) {
    std::map<std::string, std::string> metadata{{"format", "pt"},
                                                {"fairdiff.lora_rank", std::to_string(config.lora.rank)},
                                                {"fairdiff.lora_alpha", std::to_string(config.lora.alpha)},
                                                {"fairdiff.alpha_folded_into_up", "true"},
                                                {"fairdiff.base_model", config.model_dir.string()}};
    write_safetensors(staging / kLoraWeightsName, weights.at("lora"), metadata);
  } else {
    std::set<std::string> trained;
    for (const auto& [component, tensors] : weights) trained.insert(component);
    if (is_single_file_checkpoint(config.model_dir)) {
      // A single-file base has no folder to link: its other components are written out in the diffusers layout.
      write_single_file_as_diffusers(config.model_dir, staging, config.single_file, std::nullopt, trained);
    } else {
      link_base_model(config.model_dir, staging, trained);
    }
    for (const auto& [component, tensors] : weights) write_component_weights(staging, component, tensors);
  }
  write_file_atomic(staging / "loss_curve.csv", loss_curve_csv(state.curve));
  Json settings = config.to_json();
  settings["resolution"] = training_resolution(config);
  settings["result"] = {{"steps", state.step},
                        {"final_loss", result.final_loss},
                        {"resumed_from_step", result.resumed_from},
                        {"class_images_generated", result.class_images_generated},
                        {"output", config.use_lora ? "lora" : "full_model"}};
  // The world size does not change the result (train_batch_size is the global batch); recorded as provenance.
  settings["data_parallel"] = {{"world_size", parallel.world_size()}, {"backend", parallel.backend()}};
  // Written last: a folder with finetune_settings.json is complete (and only the rename makes it visible).
  write_json_file(staging / "finetune_settings.json", settings);
  publish_output(staging, config.out);
}

}  // namespace

FinetuneResult run_finetune(const FinetuneConfig& input, DataParallel* given_parallel) {
  FinetuneConfig config = input;
  // Resolved before anything is recorded: finetune_settings.json and the checkpoints say what ran.
  config.device = resolve_device_name(config.device);
  DataParallel from_environment;
  if (!given_parallel)
    from_environment =
        DataParallel::from_environment(parse_device(config.device).type() == torch::kCUDA ? "cuda" : "cpu");
  DataParallel& parallel = given_parallel ? *given_parallel : from_environment;
  // One GPU per rank: "cuda" means this rank's (LOCAL_RANK), as with torchrun.
  if (parallel.distributed() && config.device == "cuda")
    config.device = "cuda:" + std::to_string(parallel.cuda_index());
  if (parallel.distributed() && config.train_batch_size < parallel.world_size()) {
    throw FieldError("train_batch_size",
                     std::to_string(config.train_batch_size) + " is below the world size " +
                         std::to_string(parallel.world_size()) +
                         ": it is the global batch, split over the ranks; raise it or use fewer ranks");
  }
  config.mixed_precision = resolve_mixed_precision(config.mixed_precision, config.device);
  validate_finetune_flags(config);
  validate_finetune_inputs(config);
  config.resolution = training_resolution(config);
  const torch::Device device = parse_device(config.device);
  const torch::Dtype dtype = mixed_precision_dtype(config.mixed_precision);
  require_dtype_supported(device, dtype);
  if (dtype == torch::kFloat16 && !device.is_cuda()) {
    throw UnsupportedError("mixed precision fp16 needs a CUDA device (use bf16 or no on " + config.device + ")");
  }

  FinetuneResult result;
  std::optional<fs::path> checkpoint;
  if (config.resume) {
    checkpoint = latest_checkpoint(config.work_dir());
    if (!checkpoint)
      std::fprintf(stderr, "finetune: --resume: no checkpoint in %s, starting from step 0\n",
                   config.work_dir().string().c_str());
  }
  ensure_directory(config.work_dir(), "work folder");
  const bool main_rank = parallel.is_main();
  auto instance = load_instance_examples(config.instance_data, config.instance_prompt, config.resolution);

  // Class images of every concept (generated where a folder has fewer than num_class_images), concatenated.
  std::vector<TrainingExample> class_examples;
  std::optional<StableDiffusionModel> generator;
  for (const auto& concept_ : config.concepts()) {
    check_class_folder_prompt(concept_.data, concept_.prompt);
    if (count_class_images(concept_.data) < config.num_class_images) {
      if (!generator) generator = load_stable_diffusion(config.model_dir, device, dtype, load_options(config));
      ClassImageRequest request{concept_.data,
                                concept_.prompt,
                                config.num_class_images,
                                config.seed,
                                config.class_inference_steps,
                                config.class_guidance_scale,
                                config.sample_batch_size,
                                parallel.rank(),
                                parallel.world_size()};
      result.class_images_generated += generate_missing_class_images(*generator, request);
    }
    parallel.barrier();  // every rank's blocks are written before any rank reads the folder (on every rank)
    auto examples = load_class_examples(concept_.data, concept_.prompt, config.resolution, config.num_class_images);
    for (auto& example : examples) class_examples.push_back(std::move(example));
  }
  generator.reset();
  if (parallel.distributed()) {
    torch::Tensor generated = torch::tensor({static_cast<double>(result.class_images_generated)}, torch::kFloat64);
    parallel.all_reduce_sum(generated);
    result.class_images_generated = static_cast<int64_t>(generated.item<double>());
  }

  StableDiffusionModel model = load_stable_diffusion(config.model_dir, device, torch::kFloat32, load_options(config));
  DreamBoothTrainer trainer(config, model, std::move(instance), std::move(class_examples), &parallel);
  if (checkpoint) {
    trainer.state() = load_checkpoint(*checkpoint, config, trainer.optimizer());
    result.resumed_from = trainer.state().step;
    if (main_rank)
      std::fprintf(stderr, "finetune: resuming from %s (step %lld of %lld)\n", checkpoint->string().c_str(),
                   static_cast<long long>(result.resumed_from), static_cast<long long>(config.max_train_steps));
  }
  if (main_rank) write_json_file(config.work_dir() / "settings.json", config.to_json());
  if (parallel.distributed() && main_rank) {
    std::fprintf(stderr, "finetune: data-parallel over %d ranks (%s), global batch %lld\n", parallel.world_size(),
                 parallel.backend().c_str(), static_cast<long long>(config.train_batch_size));
  }

  const int64_t stop_after = interrupt_after_step();
  const auto start = std::chrono::steady_clock::now();
  // Rank 0 shows the progress; the others' would repeat it.
  std::optional<Progress> progress;
  if (main_rank) progress.emplace("finetune", config.max_train_steps, result.resumed_from, "step");
  TrainingState& state = trainer.state();
  const auto save = [&] {
    if (main_rank) save_checkpoint(config, trainer.optimizer(), state);
    parallel.barrier();  // no rank goes on (or stops) before the checkpoint is complete
  };
  while (state.step < config.max_train_steps) {
    const LossRecord& record = trainer.train_step();
    ++result.steps_run;
    if (progress) progress->advance(1, format_detail(record));
    bool saved = false;
    if (config.checkpointing_steps > 0 && state.step % config.checkpointing_steps == 0 &&
        state.step < config.max_train_steps) {
      save();
      saved = true;
    }
    if (stop_after > 0 && state.step == stop_after) set_interrupt_requested(true);
    // Ctrl-C reaches the ranks at different moments: they agree to stop after the same step.
    const bool stop = parallel.any(interrupt_requested());
    if (stop && state.step < config.max_train_steps) {
      if (!saved) save();
      if (progress) progress->finish();
      if (main_rank)
        std::fprintf(stderr, "finetune: checkpoint of step %lld saved in %s; rerun with --resume to continue\n",
                     static_cast<long long>(state.step), config.work_dir().string().c_str());
      set_interrupt_requested(true);
      throw InterruptedError();
    }
  }
  if (progress) progress->finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.final_loss = state.curve.empty() ? 0.0 : state.curve.back().loss;
  if (main_rank) {
    write_output(config, trainer, state, result, parallel);
    fs::remove_all(config.work_dir());
  }
  parallel.barrier();  // every rank returns once the output is published
  result.out = config.out;
  return result;
}

}  // namespace fairdiff::train
