// The original single-file layout of Stable Diffusion 1.x/2.x checkpoints (CompVis / Stability AI "LDM" names,
// one .safetensors with every component) and its conversion to diffusers names: the one place that knows both
// naming schemes of these checkpoints (core/name_conversion.h has the schemes that need no architecture).
//
//   model.diffusion_model.*          UNet: input_blocks.I.J / middle_block.J / output_blocks.I.J, where I counts
//                                    resnets, transformers and samplers in order (so the block structure of the
//                                    config decides where each index goes); ResBlocks name their layers by
//                                    position (in_layers.0 = norm1, in_layers.2 = conv1, ...)
//   first_stage_model.*              VAE: encoder.down.B.block.M, decoder.up.B with B counted from the latent side
//                                    (reversed against diffusers), mid.attn_1.q/k/v/proj_out as 1x1 convolutions
//   cond_stage_model.transformer.*   SD 1.x: transformers' CLIPTextModel, names as diffusers'
//   cond_stage_model.model.*         SD 2.x: OpenCLIP: transformer.resblocks.I with the fused attn.in_proj_weight
//                                    [3 D, D] (q, k, v stacked); SD 2 conditions on the penultimate layer, so the
//                                    last resblock is unused and diffusers' text encoder has one layer fewer
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "diffusion/autoencoder_kl.h"
#include "diffusion/unet_2d_condition.h"
#include "text/clip_text_model.h"

namespace fairdiff {

inline constexpr char kLdmUnetPrefix[] = "model.diffusion_model.";
inline constexpr char kLdmVaePrefix[] = "first_stage_model.";
inline constexpr char kLdmClipPrefix[] = "cond_stage_model.transformer.";
inline constexpr char kLdmOpenClipPrefix[] = "cond_stage_model.model.";

// One component of a checkpoint in diffusers names.
struct ConvertedComponent {
  TensorMap weights;                          // diffusers names
  std::map<std::string, std::string> source;  // diffusers name -> the checkpoint key it came from
  std::vector<std::string> unplaced;          // checkpoint keys under the component's prefix with no place in it
};

// Each takes the whole checkpoint and converts the keys under its prefix; tensors are shared, not copied.
ConvertedComponent convert_ldm_unet(const TensorMap& checkpoint, const UNet2DConditionConfig& config);
ConvertedComponent convert_ldm_vae(const TensorMap& checkpoint, const AutoencoderKLConfig& config);
// SD 1.x. The position_ids buffer is dropped.
ConvertedComponent convert_ldm_clip_text(const TensorMap& checkpoint);
// SD 2.x: `config.num_hidden_layers` layers are kept; resblock number num_hidden_layers (the last one of the
// checkpoint) and the CLIP-only text_projection / logit_scale are dropped.
ConvertedComponent convert_ldm_open_clip_text(const TensorMap& checkpoint, const ClipTextConfig& config);

// Keys of original checkpoints that belong to no inference component: the training schedule's buffers (betas,
// alphas_cumprod, posterior_* ...) and the EMA bookkeeping (model_ema.*). Skipped without a word.
bool is_ldm_training_key(const std::string& key);

}  // namespace fairdiff
