// A Stable Diffusion model directory in the diffusers layout (model_index.json + tokenizer/, text_encoder/,
// unet/, vae/, scheduler/) or a single-file checkpoint in the original layout (diffusion/single_file.h, read in
// memory: nothing is written), and the txt2img pipeline over it: classifier-free guidance with negative
// prompts, batches of prompts, one seed (and CPU-drawn initial noise) per image.
//
// Shape legend: B images, L = 77 tokens, D text channels, Cl latent channels, h/w = H/f, W/f latent size.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diffusion/autoencoder_kl.h"
#include "diffusion/cuda/unet_graphs.h"
#include "diffusion/schedulers/scheduler.h"
#include "diffusion/semantic_guidance.h"
#include "diffusion/single_file.h"
#include "diffusion/unet_2d_condition.h"
#include "text/clip_text_model.h"
#include "text/clip_tokenizer.h"

namespace fairdiff {

struct StableDiffusionModel {
  std::filesystem::path dir;  // the model folder, or the single-file checkpoint
  ClipTokenizer tokenizer;
  ClipTextModel text_encoder{nullptr};
  UNet2DConditionModel unet{nullptr};
  AutoencoderKL vae{nullptr};
  SchedulerConfig scheduler_config;
  torch::Device device{torch::kCPU};
  torch::Dtype dtype = torch::kFloat32;
  torch::Dtype vae_dtype = torch::kFloat32;  // float32 when the VAE asks for upcasting (force_upcast) under fp16
  bool channels_last = false;

  int64_t native_size() const { return unet->config().sample_size * vae->config().latent_scale_factor(); }
};

// Checks the layout before reading any weights: InputError naming the missing folder or file. For a single file
// (a path that is not a folder): its header, the architecture told from it, and `single_file` against it.
void validate_model_directory(const std::filesystem::path& dir, const SingleFileOptions& single_file = {});
// The configs of a model folder (its config.json files), or of a single-file checkpoint (from its header),
// without reading weights.
ModelArchitecture read_model_architecture(const std::filesystem::path& model,
                                          const SingleFileOptions& single_file = {});

struct PipelineLoadOptions {
  // On CUDA: convolution weights and activations channels-last (the fused GroupNorm, residual and token kernels
  // read and write NHWC, so no layout conversion is left). `generate` turns it on for CUDA (channels_last_pays:
  // faster at every batch size on the H200, bench/RESULTS.md); off for callers that do not ask.
  bool channels_last = false;
  // The VAE's dtype; unset: float32 when the compute dtype is fp16 and the VAE config says force_upcast
  // (as the reference does, to avoid fp16 overflow in the decoder), else the compute dtype.
  std::optional<torch::Dtype> vae_dtype;
  // How to read a single-file checkpoint (ignored for a folder).
  SingleFileOptions single_file;
};

// Whether channels-last activations are the faster layout for `images_per_batch` images on `device`: on CUDA, at
// every batch size since the fused kernels read NHWC (H200, PNDM 20 steps, guided, one call: 5.37 against 4.14
// images/s at batch 1, 9.03 against 8.67 at batch 32; bench/RESULTS.md).
bool channels_last_pays(const torch::Device& device, int64_t images_per_batch);

StableDiffusionModel load_stable_diffusion(const std::filesystem::path& dir, torch::Device device, torch::Dtype dtype,
                                           const PipelineLoadOptions& options = {});

struct GenerationRequest {
  std::vector<std::string> prompts;  // one per image
  std::string negative_prompt;       // the unconditional branch ("" by default)
  std::vector<uint64_t> seeds;       // one per image
  int64_t steps = 50;
  double guidance_scale = 7.5;
  std::string scheduler = "pndm";
  int64_t width = 0;  // 0: the model's native size
  int64_t height = 0;
  // Set by a training-free mitigation (diffusion/intervention.h), else empty: applied to the prompts' text
  // states [B, L, D] before denoising (e.g. a calibrated projection of the embeddings); the unconditional
  // branch is left as it is.
  std::function<torch::Tensor(const torch::Tensor&)> transform_text_states;
  // Set by a training-free mitigation (Fair Diffusion), else empty or without edits: semantic guidance (SEGA) with
  // each image's edit concepts; the UNet batch becomes [uncond B, cond B, concept_1 B, ..., concept_K B]. Needs
  // guidance_scale > 1. The concepts' text states are not passed through transform_text_states.
  std::shared_ptr<const SemanticGuidance> semantic_guidance;
};

// Called after every scheduler step with the step index and the latents [B, Cl, h, w].
using StepCallback = std::function<void(size_t step_index, const torch::Tensor& latents)>;

class StableDiffusionPipeline {
 public:
  explicit StableDiffusionPipeline(StableDiffusionModel& model);

  // Text states [B, L, D] of the prompts, in the compute dtype on the model's device.
  torch::Tensor encode_prompts(const std::vector<std::string>& prompts);
  // Initial noise [B, Cl, h, w] drawn on the CPU from torch generators seeded with each image's seed, exactly
  // as torch.randn((1, Cl, h, w), generator=torch.Generator("cpu").manual_seed(seed)).
  torch::Tensor initial_noise(const std::vector<uint64_t>& seeds, int64_t height, int64_t width) const;
  // Runs the denoising loop and decodes: images [B, H, W, 3] float32 in [0, 1] on the CPU.
  torch::Tensor generate(const GenerationRequest& request, const StepCallback& on_step = nullptr);
  // The denoising loop alone, from given initial latents (unscaled noise).
  torch::Tensor denoise(const torch::Tensor& text_states, const torch::Tensor& noise, const GenerationRequest& request,
                        const StepCallback& on_step = nullptr);
  torch::Tensor decode(const torch::Tensor& latents);

 private:
  StableDiffusionModel& model_;
  std::shared_ptr<UNetGraphs> graphs_;  // the UNet's CUDA graphs, kept across calls (cuda/unet_graphs.h)
};

// Validates a request against the model (sizes divisible by the latent factor, counts positive, ...).
void validate_request(const GenerationRequest& request, const StableDiffusionModel& model);

}  // namespace fairdiff
