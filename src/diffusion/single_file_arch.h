// The architecture of a single-file Stable Diffusion 1.x/2.x checkpoint (diffusion/single_file.h), told from its
// tensors' names and shapes alone: block widths and structure, layers, latent and text widths come from shapes;
// SD 1.x against SD 2.x from the UNet's transformer projection (a 1x1 convolution in 1.x, a linear layer in 2.x)
// and the text encoder (CLIP's cond_stage_model.transformer.* against OpenCLIP's cond_stage_model.model.*).
//
// What the weights do not say is filled in by family: attention heads (SD 1.x UNet: 8 per block; SD 2.x UNet and
// both text encoders: 64 channels per head), activations (quick_gelu / gelu), the pad token ("<|endoftext|>" /
// "!"), the 512-pixel size and the noise-predicting (epsilon) PNDM schedule. SingleFileOptions::arch names the
// variant instead (sd2-v: SD 2.x 768-v, v_prediction, 768 pixels, as the 768-v and 512-base weights have the same
// shapes); config_dir gives every config (diffusers' from_single_file(config=...)), for models of other sizes.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "diffusion/model_init.h"

namespace fairdiff {

using TensorShapes = std::map<std::string, std::vector<int64_t>>;

struct SingleFileOptions {
  std::string arch;                  // "" (from the tensors), sd1, sd2 or sd2-v; its field name is model_arch
  std::filesystem::path config_dir;  // a diffusers model folder whose configs describe the model; model_config
};

std::vector<std::string> single_file_arch_names();  // sd1, sd2, sd2-v

struct SingleFileModel {
  ModelArchitecture arch;  // arch.name: sd1, sd2, sd2-v, or "config <dir>"
  std::string family;      // sd1 or sd2: the layout the tensors have
  Json tokenizer_config;   // tokenizer_config.json for the CLIP vocabulary fairdiff ships

  std::string title() const;  // "Stable Diffusion 1.x", "sd2-v", ...
};

// InputError naming `file` and the tensor when the names are not the original layout, mix architectures or lack a
// tensor the architecture is told from; FieldError (model_arch, model_config) when the options do not fit.
SingleFileModel detect_single_file_architecture(const std::filesystem::path& file, const TensorShapes& shapes,
                                                const SingleFileOptions& options);

// "[320, 320, 1, 1]"
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace fairdiff
