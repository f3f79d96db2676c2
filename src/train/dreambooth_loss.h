// The DreamBooth training objective (diffusers examples/dreambooth/train_dreambooth.py): noise the latents at
// the given timesteps with the DDPM forward process, predict the noise (or the velocity, for v-prediction
// models) and take the mean squared error; with prior preservation the batch is [instance rows, class rows]
// and the class rows' loss is added with weight prior_loss_weight.
//
// Shape legend: B batch (instance rows first, then class rows), Cl latent channels, h/w latent size,
// L text tokens, E text channels.
#pragma once

#include <torch/torch.h>

#include "diffusion/schedulers/scheduler.h"
#include "diffusion/unet_2d_condition.h"

namespace fairdiff::train {

struct DreamBoothBatch {
  torch::Tensor latents;     // [B, Cl, h, w] already multiplied by the VAE's scaling_factor
  torch::Tensor noise;       // [B, Cl, h, w]
  torch::Tensor timesteps;   // [B] int64
  torch::Tensor context;     // [B, L, E] text states
  int64_t num_instance = 0;  // rows [0, num_instance) are instance images; the rest (if any) class images
};

struct DreamBoothLoss {
  torch::Tensor total;     // 0-d fp32: instance + prior_loss_weight * prior
  torch::Tensor instance;  // 0-d fp32
  torch::Tensor prior;     // 0-d fp32; undefined without class rows
};

struct DreamBoothLossOptions {
  double prior_loss_weight = 1.0;
  bool gradient_checkpointing = false;
};

// What the UNet sees and is compared with, computed from a batch without autograd-relevant state (the noise
// schedule's lookups copy from host memory, so a captured training step takes these as its static inputs).
struct DreamBoothUNetInputs {
  torch::Tensor noisy;      // [B, Cl, h, w] fp32 (channels-last on CUDA)
  torch::Tensor timesteps;  // [B] int64
  torch::Tensor context;    // [B, L, E]
  torch::Tensor target;     // [B, Cl, h, w] fp32
  int64_t num_instance = 0;
};
DreamBoothUNetInputs dreambooth_unet_inputs(const Scheduler& noise_scheduler, const DreamBoothBatch& batch,
                                            bool channels_last);

// The model's prediction and the losses, the forward pass in the UNet's dtype (losses in fp32).
DreamBoothLoss dreambooth_loss(UNet2DConditionModelImpl& unet, const DreamBoothUNetInputs& inputs,
                               const DreamBoothLossOptions& options);
// dreambooth_unet_inputs, then the loss.
DreamBoothLoss dreambooth_loss(UNet2DConditionModelImpl& unet, const Scheduler& noise_scheduler,
                               const DreamBoothBatch& batch, const DreamBoothLossOptions& options);

// The regression target for the scheduler's prediction type; UsageError for types training does not support.
torch::Tensor training_target(const Scheduler& noise_scheduler, const DreamBoothBatch& batch);

}  // namespace fairdiff::train
