// Semantic guidance (SEGA, Brack et al. 2023), computed exactly as diffusers' SemanticStableDiffusionPipeline
// computes it: besides the unconditional and the prompt's noise estimates, the UNet predicts the noise for each edit
// concept's text; every concept moves the guidance by its own masked, scaled difference to the unconditional
// estimate, and a momentum term carries the edits across steps. Fair Diffusion (mitigate/fair_diffusion.h) steers
// each image toward a group with it.
//
// Per step i and image, with eps_u, eps_p and eps_c the unconditional, prompt and concept-c estimates:
//   g     = s_g (eps_p - eps_u)                                     (classifier-free guidance)
//   e_c   = s_c (+-1) (eps_c - eps_u), zeroed where |e_c| is below its per-channel quantile lambda_c over h x w
//   E     = sum_c w_c e_c + s_m m;  m <- beta m + (1 - beta) E       (the momentum builds up from step 0)
//   eps   = eps_u + g + E                once every concept is past its warm-up
//   eps   = eps_u + g + sum_{c warm} (w_c / sum_{warm} w) e_c   while only some are (E unapplied)
// A concept past its cooldown contributes nothing (e_c = 0, w_c = 0).
//
// Shape legend: B images, K edit concepts per image, Cl latent channels, h/w latent size.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"

namespace fairdiff {

// One edit concept of one image. Defaults are diffusers' (SemanticStableDiffusionPipeline.__call__).
struct SemanticEdit {
  std::string prompt;         // the concept's text ("female person")
  bool reverse = false;       // steer away from the concept instead of toward it (reverse_editing_direction)
  double guidance_scale = 5;  // edit_guidance_scale, >= 0
  int64_t warmup_steps = 10;  // edit_warmup_steps: applied from this step index on (momentum builds up before)
  // edit_cooldown_steps: not applied from this step index on; none: applied to the end.
  std::optional<int64_t> cooldown_steps;
  double threshold = 0.9;  // edit_threshold: the quantile of |e_c| below which e_c is zeroed, in [0, 1)
  double weight = 1;       // edit_weights: the concept's weight against the others, > 0
};

struct SemanticGuidance {
  std::vector<std::vector<SemanticEdit>> edits;  // [B][K]: each image's concepts, the same K for every image
  double momentum_scale = 0.1;                   // edit_momentum_scale, >= 0 (0: no momentum)
  double momentum_beta = 0.4;                    // edit_mom_beta, in [0, 1)

  // K: the most concepts any image has (validate() requires the same number for all); 0: no semantic guidance.
  int64_t num_edits() const;
  // FieldError naming the field (edit_guidance_scale, edit_threshold, ...) and the image and concept: one entry
  // per image, the same K for each, scales >= 0, thresholds in [0, 1), 0 <= warm-up < steps, a cooldown after every
  // concept of its image has warmed up (else the reference divides by a zero weight sum), weights > 0, a momentum
  // scale >= 0 and beta in [0, 1), non-empty concept prompts; and classifier-free guidance (a scale > 1), without
  // which the reference ignores the edits.
  void validate(size_t images, int64_t steps, double guidance_scale) const;
  // Everything that changes pixels, for a run's settings.
  Json to_json() const;
};

// Applies semantic guidance over one denoising loop: holds the momentum [B, Cl, h, w] between steps.
class SemanticGuider {
 public:
  explicit SemanticGuider(const SemanticGuidance& guidance);  // `guidance` must outlive the guider

  // The guided noise estimate [B, Cl, h, w] of step `step` from the UNet's output [(2 + K) B, Cl, h, w], ordered
  // [uncond B, prompt B, concept_1 B, ..., concept_K B], float32.
  torch::Tensor guide(int64_t step, const torch::Tensor& noise_pred, double guidance_scale);

 private:
  const SemanticGuidance& guidance_;
  torch::Tensor momentum_;  // [B, Cl, h, w]; undefined before the first step
};

}  // namespace fairdiff
