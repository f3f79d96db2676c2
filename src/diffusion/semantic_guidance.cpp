#include "diffusion/semantic_guidance.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "core/error.h"

namespace fairdiff {

namespace {

std::string where(size_t image, size_t concept) {
  return "(image " + std::to_string(image) + ", edit concept " + std::to_string(concept) + ")";
}

std::string number(double value) {
  std::string text = std::to_string(value);
  text.erase(text.find_last_not_of('0') + 1);
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

}  // namespace

int64_t SemanticGuidance::num_edits() const {
  size_t k = 0;
  for (const auto& image : edits) k = std::max(k, image.size());
  return static_cast<int64_t>(k);
}

void SemanticGuidance::validate(size_t images, int64_t steps, double guidance_scale) const {
  if (!(guidance_scale > 1.0)) {
    throw FieldError("guidance_scale",
                     number(guidance_scale) + ": semantic guidance needs classifier-free guidance (a scale > 1)");
  }
  if (edits.size() != images) {
    throw FieldError("semantic_guidance", "has edits for " + std::to_string(edits.size()) + " images, expected " +
                                              std::to_string(images) + " (one entry per image of the batch)");
  }
  const size_t k = static_cast<size_t>(num_edits());
  if (!(momentum_scale >= 0) || !std::isfinite(momentum_scale)) {
    throw FieldError("edit_momentum_scale", number(momentum_scale) + ": expected a finite number >= 0");
  }
  if (!(momentum_beta >= 0 && momentum_beta < 1)) {
    throw FieldError("edit_mom_beta", number(momentum_beta) + ": expected a number in [0, 1)");
  }
  for (size_t b = 0; b < edits.size(); ++b) {
    if (edits[b].size() != k) {
      throw FieldError("semantic_guidance", "image " + std::to_string(b) + " has " + std::to_string(edits[b].size()) +
                                                " edit concepts, another has " + std::to_string(k) +
                                                " (every image of a batch needs the same number)");
    }
    int64_t last_warmup = 0;
    for (const auto& edit : edits[b]) last_warmup = std::max(last_warmup, edit.warmup_steps);
    for (size_t c = 0; c < k; ++c) {
      const SemanticEdit& e = edits[b][c];
      if (e.prompt.empty()) throw FieldError("editing_prompt", "is empty " + where(b, c) + ": expected a concept");
      if (!(e.guidance_scale >= 0) || !std::isfinite(e.guidance_scale)) {
        throw FieldError("edit_guidance_scale",
                         number(e.guidance_scale) + " " + where(b, c) + ": expected a finite number >= 0");
      }
      if (!(e.threshold >= 0 && e.threshold < 1)) {
        throw FieldError("edit_threshold", number(e.threshold) + " " + where(b, c) +
                                               ": expected a quantile in [0, 1) (0.9 keeps the largest 10%)");
      }
      if (e.warmup_steps < 0 || e.warmup_steps >= steps) {
        throw FieldError("edit_warmup_steps", std::to_string(e.warmup_steps) + " " + where(b, c) + ": expected 0.." +
                                                  std::to_string(steps - 1) + " (the run has " + std::to_string(steps) +
                                                  " steps; the edit would never be applied)");
      }
      // The reference renormalises the weights of the warmed-up concepts while the others warm up; a concept that
      // had cooled down by then would leave it dividing by a zero sum (NaN images).
      if (e.cooldown_steps && *e.cooldown_steps <= last_warmup) {
        throw FieldError("edit_cooldown_steps", std::to_string(*e.cooldown_steps) + " " + where(b, c) +
                                                    ": expected more than " + std::to_string(last_warmup) +
                                                    " (the last warm-up of the image's concepts)");
      }
      if (!(e.weight > 0) || !std::isfinite(e.weight)) {
        throw FieldError("edit_weights", number(e.weight) + " " + where(b, c) + ": expected a finite number > 0");
      }
    }
  }
}

Json SemanticGuidance::to_json() const {
  Json images = Json::array();
  for (const auto& image : edits) {
    Json concepts = Json::array();
    for (const auto& e : image) {
      concepts.push_back({{"prompt", e.prompt},
                          {"reverse", e.reverse},
                          {"guidance_scale", e.guidance_scale},
                          {"warmup_steps", e.warmup_steps},
                          {"cooldown_steps", e.cooldown_steps ? Json(*e.cooldown_steps) : Json()},
                          {"threshold", e.threshold},
                          {"weight", e.weight}});
    }
    images.push_back(concepts);
  }
  return Json{{"momentum_scale", momentum_scale}, {"momentum_beta", momentum_beta}, {"edits", images}};
}

SemanticGuider::SemanticGuider(const SemanticGuidance& guidance) : guidance_(guidance) {}

torch::Tensor SemanticGuider::guide(int64_t step, const torch::Tensor& noise_pred, double guidance_scale) {
  const int64_t k = guidance_.num_edits();
  const int64_t b = static_cast<int64_t>(guidance_.edits.size());
  if (noise_pred.size(0) != (2 + k) * b) {
    throw std::invalid_argument("semantic guidance: the UNet output has " + std::to_string(noise_pred.size(0)) +
                                " rows, expected (2 + " + std::to_string(k) + ") x " + std::to_string(b));
  }
  const auto parts = noise_pred.split(b, 0);  // [uncond B, prompt B, concept_1 B, ..., concept_K B]
  const torch::Tensor& uncond = parts[0];
  torch::Tensor guidance = guidance_scale * (parts[1] - uncond);  // [B, Cl, h, w]
  if (k == 0) return uncond + guidance;
  if (!momentum_.defined()) momentum_ = torch::zeros_like(guidance);

  // Host-side per (concept, image) factors, concept-major like the batch: sign x scale, the threshold, the weight
  // in the momentum sum (0 after the cooldown) and the weight while only some concepts are warmed up.
  std::vector<float> factor(k * b), raw_weight(k * b, 0.0f), partial_weight(k * b, 0.0f);
  std::vector<double> threshold(k * b);
  std::vector<uint8_t> all_warm(b, 0), partial(b, 0);
  for (int64_t i = 0; i < b; ++i) {
    const auto& edits = guidance_.edits[i];
    int64_t warm = 0;
    float warm_weight_sum = 0;
    for (int64_t c = 0; c < k; ++c) {
      const SemanticEdit& e = edits[c];
      const size_t at = c * b + i;
      factor[at] = static_cast<float>(e.reverse ? -e.guidance_scale : e.guidance_scale);
      threshold[at] = e.threshold;
      const bool cooled = e.cooldown_steps && step >= *e.cooldown_steps;
      raw_weight[at] = cooled ? 0.0f : static_cast<float>(e.weight);
      if (step >= e.warmup_steps) {
        ++warm;
        warm_weight_sum += raw_weight[at];
      }
    }
    all_warm[i] = warm == k;
    partial[i] = warm > 0 && warm < k;
    if (partial[i]) {
      for (int64_t c = 0; c < k; ++c) {
        if (step >= edits[c].warmup_steps) partial_weight[c * b + i] = raw_weight[c * b + i] / warm_weight_sum;
      }
    }
  }
  const auto options = torch::TensorOptions().dtype(torch::kFloat32);
  auto per_concept = [&](const std::vector<float>& values) {
    return torch::tensor(values, options).view({k, b, 1, 1, 1}).to(noise_pred.device());  // [K, B, 1, 1, 1]
  };

  // e_c = s_c (+-1) (eps_c - eps_u), kept where |e_c| reaches its quantile over each channel's h x w.
  torch::Tensor edit = torch::stack(std::vector<torch::Tensor>(parts.begin() + 2, parts.end()), 0);  // [K, B, Cl, h, w]
  edit = (edit - uncond.unsqueeze(0)) * per_concept(factor);
  const torch::Tensor magnitude = edit.abs();
  // One quantile call per concept and distinct threshold (torch.quantile refuses inputs over 2^24 elements).
  std::vector<torch::Tensor> cuts;  // K x [B, Cl]
  for (int64_t c = 0; c < k; ++c) {
    const torch::Tensor flat = magnitude[c].flatten(2);  // [B, Cl, h w]
    const auto first = threshold.begin() + c * b;
    torch::Tensor cut;
    for (double q : std::set<double>(first, first + b)) {
      std::vector<uint8_t> uses(static_cast<size_t>(b));
      for (int64_t i = 0; i < b; ++i) uses[i] = first[i] == q;
      const torch::Tensor quantile = torch::quantile(flat, q, 2, false);
      cut = !cut.defined()
                ? quantile
                : torch::where(torch::tensor(uses).to(torch::kBool).view({b, 1}).to(edit.device()), quantile, cut);
    }
    cuts.push_back(cut);
  }
  const torch::Tensor cut = torch::stack(cuts, 0);  // [K, B, Cl]
  edit = torch::where(magnitude >= cut.unsqueeze(-1).unsqueeze(-1), edit, torch::zeros_like(edit));

  // Weighted sums over the concepts, elementwise per image (so an image does not depend on its batch).
  auto weighted_sum = [&](const std::vector<float>& weights) {
    const torch::Tensor w = per_concept(weights);
    torch::Tensor sum = edit[0] * w[0];
    for (int64_t c = 1; c < k; ++c) sum = sum + edit[c] * w[c];
    return sum;  // [B, Cl, h, w]
  };
  torch::Tensor full = weighted_sum(raw_weight) + guidance_.momentum_scale * momentum_;
  momentum_ = guidance_.momentum_beta * momentum_ + (1.0 - guidance_.momentum_beta) * full;

  const auto device_mask = [&](const std::vector<uint8_t>& m) {
    return torch::tensor(m).to(torch::kBool).view({b, 1, 1, 1}).to(noise_pred.device());
  };
  const bool any_full = std::any_of(all_warm.begin(), all_warm.end(), [](uint8_t v) { return v != 0; });
  const bool any_partial = std::any_of(partial.begin(), partial.end(), [](uint8_t v) { return v != 0; });
  if (any_full || any_partial) {
    torch::Tensor applied = any_partial ? weighted_sum(partial_weight) : torch::zeros_like(guidance);
    if (any_full) applied = torch::where(device_mask(all_warm), full, applied);
    guidance = guidance + applied;
  }
  return uncond + guidance;
}

}  // namespace fairdiff
