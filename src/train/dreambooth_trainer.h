// The DreamBooth fine-tuning loop (full UNet, optionally the text encoder, or LoRA adapters) and the
// `fairdiff finetune` run around it: class-image generation, checkpoints, resume, output.
//
// Randomness: every micro-batch draws its latent sample, noise and timesteps from a CPU generator seeded with
// (seed, micro-batch index), and every epoch's data order from (seed, epoch); so a resumed run draws exactly
// what an uninterrupted one does, and the same command gives the same numbers on the same device.
//
// Shape legend: B micro-batch rows (instance rows, then as many class rows with prior preservation),
// Cl latent channels, h/w latent size, L text tokens, E text channels.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "diffusion/stable_diffusion.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/dreambooth_loss.h"
#include "train/finetune_config.h"
#include "train/flat_adamw.h"
#include "train/lora.h"
#include "train/training_data.h"

namespace fairdiff::train {

// "no" | "fp16" | "bf16" -> the compute dtype.
torch::Dtype mixed_precision_dtype(const std::string& mixed_precision);

class DreamBoothTrainer {
 public:
  // `model` must be loaded in fp32 (the masters come from it); the frozen parts are cast to the compute dtype
  // here. `class_examples` is empty without prior preservation. With `parallel` (data_parallel.h), this rank
  // trains on its slice of each micro-batch and the gradients are summed over the ranks; it must outlive the
  // trainer.
  DreamBoothTrainer(const FinetuneConfig& config, StableDiffusionModel& model, std::vector<TrainingExample> instance,
                    std::vector<TrainingExample> class_examples, DataParallel* parallel = nullptr);
  ~DreamBoothTrainer();

  // One optimizer step (gradient_accumulation_steps micro-batches); appends to and returns the loss record.
  const LossRecord& train_step();
  TrainingState& state() { return state_; }
  FlatAdamW& optimizer() { return *optimizer_; }
  // Micro-batches replayed from the captured CUDA graph so far (0 where steps run eagerly).
  int64_t replayed_micro_batches() const;
  // Micro-batches per epoch and the dataset indices of micro-batch `micro` (the global batch, all ranks').
  int64_t batches_per_epoch() const;
  std::vector<int64_t> batch_indices(int64_t micro) const;
  // The trained weights (fp32) by component: "unet", "text_encoder" for full fine-tuning; the LoRA file's
  // tensors under "lora".
  std::map<std::string, TensorMap> trained_weights() const;

 private:
  torch::Tensor text_states(const std::vector<std::string>& prompts);  // [B, L, E]
  // The VAE posterior's mean and std of images [3, R, R] in one call: [B, Cl, h, w] each, fp32.
  void encode_pixels(const std::vector<torch::Tensor>& images, torch::Tensor& mean, torch::Tensor& std);
  void cache_latents();                       // every example, before the first step
  std::vector<int64_t> latent_shape() const;  // [Cl, h, w] of a training image's latents
  // One micro-batch's forward, loss, backward (gradient scaled by `gradient_factor`) and gradient accumulation:
  // eagerly, or replayed from a CUDA graph (graphed_micro_batch).
  DreamBoothLoss micro_batch(const DreamBoothUNetInputs& inputs, double gradient_factor);
  DreamBoothLoss eager_micro_batch(const DreamBoothUNetInputs& inputs, double gradient_factor);
  bool micro_batch_graphs() const;  // whether this configuration's micro-batches are captured
  int64_t replayed_ = 0;

  // The captured micro-batch (CUDA, graphs on; see micro_batch_graphs): its static inputs and losses, and the
  // shapes and factor it was captured for (other micro-batches, such as an epoch's short last one, run eagerly).
  struct MicroBatchGraph;
  std::unique_ptr<MicroBatchGraph> graph_;

  FinetuneConfig config_;
  StableDiffusionModel& model_;
  std::vector<TrainingExample> instance_;
  std::vector<TrainingExample> class_;
  torch::Dtype dtype_;
  std::unique_ptr<Scheduler> noise_scheduler_;
  std::unique_ptr<LoraAdapters> lora_;
  std::unique_ptr<FlatAdamW> optimizer_;
  std::map<std::string, torch::Tensor> text_cache_;  // prompt -> [L, E]
  bool latents_cached_ = false;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> instance_latents_, class_latents_;  // mean, std [Cl, h, w]
  TrainingState state_;
  DataParallel single_process_;
  DataParallel& parallel_;
};

struct FinetuneResult {
  std::filesystem::path out;
  int64_t resumed_from = 0;  // optimizer steps a checkpoint had already done
  int64_t steps_run = 0;     // in this process
  double seconds = 0;
  double final_loss = 0;
  int64_t class_images_generated = 0;
};

// The whole run: validation, class images, training with checkpoints (and --resume), the output. Throws
// InterruptedError after saving a checkpoint when interrupted (Ctrl-C, or the test hook
// FAIRDIFF_FINETUNE_INTERRUPT_AFTER_STEP=k, which interrupts once k optimizer steps are done).
// Data-parallel when `parallel` is given, or when torchrun's environment names several ranks
// (DataParallel::from_environment): every rank calls it with the same config; rank 0 writes the files, the
// class images are generated by all ranks (each its blocks) and every rank stops at the same step.
FinetuneResult run_finetune(const FinetuneConfig& config, DataParallel* parallel = nullptr);

}  // namespace fairdiff::train
