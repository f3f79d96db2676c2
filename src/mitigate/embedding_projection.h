// Text-embedding projection (Chuang et al. 2023, "Debiasing Vision-Language Models via Biased Prompts"), as its
// authors apply it to Stable Diffusion (github chingyaoc/debias_vl, generative/main.py): a calibration matrix
// P = (lambda M + I)^-1 computed in closed form from positive pairs of prompts that differ only in the group they
// name ("A photo of a male doctor." / "A photo of a female doctor."), with M the mean over pairs of
// (z_i - z_j)(z_i - z_j)^T and z a prompt's unit-length end-of-text state; every token state of the prompt being
// generated is then multiplied by P^T (the unconditional branch is left as it is). P shrinks the directions in which
// the paired prompts differ, so the prompt no longer leans toward one group. lambda = 500 is the authors' default.
// Like their generative code, this is the calibration alone (the paper's discriminative variant first projects out
// the spurious directions; its Stable Diffusion code does not).
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "audit/labels.h"
#include "diffusion/intervention.h"

namespace fairdiff {
struct StableDiffusionModel;
}

namespace fairdiff::mitigate {

// Candidate prompts and their positive pairs (indices into prompts).
struct PromptPairs {
  std::vector<std::string> prompts;
  std::vector<std::pair<int, int>> pairs;
};

// Each of `prompts` rewritten once per group of `attribute` (gender, race or gender_race; the planner's wording,
// audit/prompt_rewriter.h); every two rewrites of the same prompt form a pair (gender: 1 pair per prompt, race: 15,
// gender x race: 66).
PromptPairs group_pairs(const std::vector<std::string>& prompts, audit::Attribute attribute,
                        const audit::Taxonomy& taxonomy);

// The calibration matrix P [D, D], float64 on the CPU. The end-of-text state is taken where the reference takes
// it: at the position of the prompt's highest token id (the first, on ties). InputError when there are no pairs
// or lambda < 0.
torch::Tensor calibration_matrix(StableDiffusionModel& model, const PromptPairs& pairs, double lambda);

struct ProjectionOptions {
  double lambda = 500;  // the authors' default (--lam)
  audit::Attribute attribute = audit::Attribute::gender;
  audit::Taxonomy taxonomy;
};

// The intervention: `prepare` computes P from the model's text encoder over group_pairs(calibration_prompts) (a
// run's own prompts, by default), `apply` projects each batch's prompt states.
Intervention embedding_projection(const std::vector<std::string>& calibration_prompts,
                                  const ProjectionOptions& options);

}  // namespace fairdiff::mitigate
