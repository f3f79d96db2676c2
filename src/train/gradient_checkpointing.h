// Gradient checkpointing for the UNet: each down, mid and up block runs without keeping its activations and
// is run again during the backward pass (torch.utils.checkpoint's reentrant variant, one segment per block),
// trading about one extra forward pass for most of the activation memory.
#pragma once

#include <torch/torch.h>

#include "diffusion/unet_2d_condition.h"

namespace fairdiff::train {

// The UNet's forward (same result as unet->forward), optionally with one checkpointed segment per block.
// sample [B, Cl, H, W], timesteps [B], context [B, L, E] -> [B, Cl, H, W]
torch::Tensor unet_forward(UNet2DConditionModelImpl& unet, const torch::Tensor& sample, const torch::Tensor& timesteps,
                           const torch::Tensor& context, bool gradient_checkpointing);

}  // namespace fairdiff::train
