// Randomly initialised Stable Diffusion models with a real architecture's configs, written in the diffusers
// layout: for benchmarks and tests where real weights cannot be downloaded.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "diffusion/autoencoder_kl.h"
#include "diffusion/schedulers/scheduler.h"
#include "diffusion/unet_2d_condition.h"
#include "text/clip_text_model.h"

namespace fairdiff {

struct ModelArchitecture {
  std::string name;
  UNet2DConditionConfig unet;
  AutoencoderKLConfig vae;
  ClipTextConfig text_encoder;
  SchedulerConfig scheduler;
  std::string pad_token;  // "!" for SD 2.x, "<|endoftext|>" for SD 1.x
};

// Stable Diffusion's training schedule as PNDM runs it (scaled_linear 0.00085..0.012, steps_offset 1, epsilon):
// the scheduler_config.json of SD 1.x and 2.x-base.
SchedulerConfig stable_diffusion_scheduler_config();

std::vector<std::string> architecture_names();  // sd21-base, sd15, tiny-sd2, tiny-sd1, builtin
ModelArchitecture architecture(const std::string& name);

// Writes model_index.json and every component; the tokenizer's vocab.json and merges.txt are copied from
// `tokenizer_from` (a tokenizer folder, or a model directory that has one). `weights_dtype` is how the
// weights are stored (float32 or float16).
void init_random_model(const ModelArchitecture& arch, const std::filesystem::path& tokenizer_from,
                       const std::filesystem::path& out, uint64_t seed, torch::Dtype weights_dtype = torch::kFloat32);

// A copy of a model directory (`model convert`): floating-point safetensors weights stored as `weights_dtype`;
// with `max_length` > 0, the text context shortened to that many tokens: the text encoder's position embeddings
// keep their first `max_length` rows and the configs say so (text_encoder max_position_embeddings, tokenizer
// model_max_length). CLIP's attention is causal, so a prompt that fits gets the same hidden states in those
// positions; the UNet then attends over fewer padding tokens. Built in `out`.partial and renamed at the end.
struct ModelConvertOptions {
  torch::Dtype weights_dtype = torch::kFloat16;
  int64_t max_length = 0;  // 0: keep the model's
};
void convert_model(const std::filesystem::path& model, const std::filesystem::path& out,
                   const ModelConvertOptions& options);

}  // namespace fairdiff
