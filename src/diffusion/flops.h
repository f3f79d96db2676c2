// Analytic floating-point operation counts (multiply-add = 2 FLOPs) of the UNet and the VAE decoder, for
// reporting achieved TFLOP/s. Convolutions, linear layers and attention matmuls; norms and activations
// are ignored (a few percent).
#pragma once

#include "diffusion/autoencoder_kl.h"
#include "diffusion/unet_2d_condition.h"

namespace fairdiff {

// One UNet evaluation of one sample with a latent of h x w and `text_tokens` context tokens.
double unet_flops(const UNet2DConditionConfig& config, int64_t h, int64_t w, int64_t text_tokens = 77);
// One VAE decode of one latent of h x w.
double vae_decode_flops(const AutoencoderKLConfig& config, int64_t h, int64_t w);

}  // namespace fairdiff
