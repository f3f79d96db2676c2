// Single-file Stable Diffusion 1.x/2.x checkpoints in the original layout (one .safetensors holding
// model.diffusion_model.*, first_stage_model.*, cond_stage_model.*; key names in diffusion/single_file_keys.h):
// the architecture told from the tensors' names and shapes, the weights in diffusers names, built into the same
// modules a diffusers folder gives, and written out as a diffusers folder (`fairdiff model convert FILE`).
//
// How the architecture is told, and what --arch / --config add: diffusion/single_file_arch.h. A single file has no
// tokenizer: the CLIP vocabulary fairdiff ships (models/builtin/tokenizer) is used, with the model's pad token.
//
// PyTorch pickles (.ckpt, .pt, .pth, .bin) are refused: loading one can run code from the file.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "diffusion/single_file_arch.h"
#include "text/clip_tokenizer.h"

namespace fairdiff {

// True when `model` names a file rather than a folder: it is then read as a single-file checkpoint.
bool is_single_file_checkpoint(const std::filesystem::path& model);

// A checkpoint's architecture, read from its header alone (names and shapes). InputError naming the file for a
// pickle (never read) or a malformed or truncated file; see detect_single_file_architecture for the rest.
SingleFileModel inspect_single_file(const std::filesystem::path& file, const SingleFileOptions& options = {});

// The modules of a checkpoint: text encoder and UNet in `dtype`, the VAE in float32 (as load_vae is called by
// load_stable_diffusion), all in eval mode on the CPU. Every missing, unexpected or mis-shaped tensor is reported
// by its name in the file.
struct SingleFileComponents {
  SingleFileModel model;
  ClipTokenizer tokenizer;
  ClipTextModel text_encoder{nullptr};
  UNet2DConditionModel unet{nullptr};
  AutoencoderKL vae{nullptr};
};
SingleFileComponents load_single_file(const std::filesystem::path& file, const SingleFileOptions& options,
                                      torch::Dtype dtype);

// Writes the checkpoint into `dir` in the diffusers layout (model_index.json, unet/, vae/, text_encoder/,
// tokenizer/, scheduler/). Floating-point weights are cast to `weights_dtype` when given, else kept as stored.
// The weights of the components in `skip_weights` are not written (their configs are): for fine-tuning, which
// writes its own.
void write_single_file_as_diffusers(const std::filesystem::path& file, const std::filesystem::path& dir,
                                    const SingleFileOptions& options, std::optional<torch::Dtype> weights_dtype,
                                    const std::set<std::string>& skip_weights = {});
// `fairdiff model convert FILE --out DIR`: the same into a new folder `out`, built in out.partial and renamed at
// the end. Returns what was converted.
SingleFileModel convert_single_file(const std::filesystem::path& file, const std::filesystem::path& out,
                                    const SingleFileOptions& options, std::optional<torch::Dtype> weights_dtype);

}  // namespace fairdiff
