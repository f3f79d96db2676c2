// Closed-form cross-attention editing for debiasing (UCE: Gandikota et al. 2024, "Unified Concept Editing in
// Diffusion Models"), as its authors' debiasing script computes it (github rohitgandikota/unified-concept-editing,
// train-scripts/train_debias.py, `edit_model`, commit 35e91e2). Every cross-attention key and value projection of
// the UNet (attn2.to_k, attn2.to_v: W [out, D], no bias) is replaced by
//
//   W' = (lambda W + edit_scale sum_i V_i^T C_i + preserve_scale sum_p W C_p^T C_p)
//        (lambda I + edit_scale sum_i C_i^T C_i + preserve_scale sum_p C_p^T C_p)^-1
//
// C_i [n, D] are token states of an edited concept ("a photo of a doctor") and V_i [n, out] their debiased
// targets; C_p [L, D] are all L = 77 token states of a preserved prompt (its outputs W C_p are kept). Token states
// are the text encoder's last hidden state (after the final layer norm) of the prompt padded to 77 tokens.
//
// What the reference does, and this file with it:
// - The tokens of a concept: from its last word token (index = prompt tokens with BOS and EOS - 2) to the end, the
//   end shortened so that the concept and all its attribute prompts give slices of the same length n = 77 - f, f the
//   largest last-word index among them; slice k of every prompt is the k-th token from its last word (the word,
//   EOS, then padding).
// - The target: V = W C (the concept's own outputs) plus, for each attribute prompt a_j in turn ("a photo of a
//   female doctor"), weight_j * |V|_F * U_j, with U_j = W A_j / |W A_j|_F over the aligned slice A_j of a_j. |V| is
//   the norm of the target as accumulated so far (the reference adds in place into the tensor whose norm it takes).
// - Preserved prompts: the given ones, or the empty prompt "" when none are given; and every concept whose weights
//   are all zero (the reference's loop gives zero weights to a concept it measured as balanced, and preserves it
//   from then on), besides being edited toward itself.
// - Defaults: lambda 0.5, edit_scale 1 (its erase_scale), preserve_scale 0.1, to_k edited with to_v (the script's
//   __main__ and edit_model's defaults).
// - The reference's loop: generate images of each concept, classify them with CLIP among the attribute prompts,
//   set weight_j = 0.1 (desired_j - measured_j) where a concept is off its desired shares (uniform) by more than
//   0.05, edit the current weights, repeat up to 30 times. `iterate_edit` runs that loop with a measure function
//   the caller supplies (fairdiff's own generation and face analysis, say); fairdiff ships no CLIP classifier.
//   `weights_from_shares` is one step of its rule, for shares the caller has already measured (an audit).
//
// What differs: the computation is float64 on the CPU. The reference runs in the model's float32 on the GPU; on
// tiny-sd2 its float32 result is up to 6e-4 (relative) from its own float64 run, and fairdiff matches that float64 run
// to 1e-12 (tests/mitigate/uce_test.cpp, reference dumped by tools/mitigations/uce_reference.py). Attribute
// prompts are full prompts (the script's __main__ also passes them so; its `add` option, which appends the concept
// to an attribute word, is not offered); at least two attribute prompts per concept (the reference duplicates a
// single one); duplicated preserved prompts count once; a preserved prompt equal to an edited concept (ignoring
// case) is dropped, as the script's __main__ drops it. The newer trainscripts/uce_sd_debias.py of the same
// repository (one token per prompt, unnormalised attribute outputs) is not what this file reproduces.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "audit/labels.h"
#include "core/safetensors.h"
#include "text/clip_text_model.h"
#include "text/clip_tokenizer.h"

namespace fairdiff::mitigate::uce {

inline constexpr const char* kSettingsName = "uce_settings.json";

struct DebiasConcept {
  std::string prompt;                          // "a photo of a doctor"
  std::vector<std::string> attribute_prompts;  // "a photo of a male doctor", "a photo of a female doctor", ...
  // One per attribute prompt: how far the target moves toward it (negative: away). Empty: each gets
  // UceOptions::equal_weight.
  std::vector<double> weights;
};

struct UceOptions {
  std::vector<DebiasConcept> concepts;
  std::vector<std::string> preserve_prompts;  // empty: the empty prompt "" is preserved (as the reference)
  double lambda = 0.5;                        // the identity term: keeps W' near W (the reference's lamb)
  double edit_scale = 1.0;                    // weight of the edited concepts (its erase_scale)
  double preserve_scale = 0.1;                // weight of the preserved prompts
  bool with_to_k = true;                      // edit attn2.to_k as well as attn2.to_v
  // The weight of every attribute of a concept given no weights: a symmetric push toward all its groups. This is
  // fairdiff's default for a single edit without measurements; the reference always sets weights from measured
  // shares (weights_from_shares).
  double equal_weight = 0.1;
  torch::Dtype text_dtype = torch::kFloat64;  // the text encoder's dtype for the token states (SD 2.x: 2.7 GB)
};

// A concept whose attribute prompts name each group of `attribute` (gender, race or gender_race) in `prompt`, worded
// as the planner rewrites prompts ("a photo of a black female doctor", audit/prompt_rewriter.h); no weights.
DebiasConcept concept_with_groups(const std::string& prompt, audit::Attribute attribute,
                                  const audit::Taxonomy& taxonomy);

// One step of the reference's rule: step * (desired - measured) per attribute, all zero when no share is off by
// more than `tolerance`. `desired` empty: uniform.
std::vector<double> weights_from_shares(const std::vector<double>& measured, const std::vector<double>& desired = {},
                                        double step = 0.1, double tolerance = 0.05);

// Checks everything that needs no model: FieldError naming the field ("concepts", "concepts[1].weights",
// "lambda", ...).
void validate_options(const UceOptions& options);

// A prompt's token states [77, D] (text_dtype, CPU) and the index of its last word token.
struct PromptStates {
  torch::Tensor states;
  int64_t last_word = 0;
};
using PromptStateMap = std::map<std::string, PromptStates>;

// The prompts an edit encodes: every concept, attribute and preserved prompt (after the rules above).
std::vector<std::string> prompts_to_encode(const UceOptions& options);
// Encodes `prompts` with `text_encoder` (converted to `dtype`); InputError naming the prompt when it has more tokens
// than the tokenizer holds (edit_model checks that first, naming the option).
PromptStateMap encode_prompts(const ClipTokenizer& tokenizer, ClipTextModel& text_encoder,
                              const std::vector<std::string>& prompts, torch::Dtype dtype);

// "…attn2.to_v.weight" (and "…attn2.to_k.weight" when with_to_k).
bool is_edited_projection(const std::string& key, bool with_to_k);

// The debiased target V [n, out] of a concept's token slice [n, D] under W [out, D], from its attributes' aligned
// slices and weights (see above).
torch::Tensor debiased_values(const torch::Tensor& weight, const torch::Tensor& concept_keys,
                              const std::vector<torch::Tensor>& attribute_keys, const std::vector<double>& weights);

struct EditTerm {
  torch::Tensor keys;    // C [n, D]
  torch::Tensor values;  // V [n, out]
};
struct ClosedFormScales {
  double lambda = 0.5;
  double edit_scale = 1.0;
  double preserve_scale = 0.1;
};
// W' of the formula above, float64. InputError when the system is singular (lambda 0 and too few tokens).
torch::Tensor closed_form(const torch::Tensor& weight, const std::vector<EditTerm>& edits,
                          const std::vector<torch::Tensor>& preserve_keys, const ClosedFormScales& scales);

// Applies the edit to `projections` (attn2 to_k/to_v weights by diffusers key; others are ignored) with the
// prompts' states: the edited weights, float64, by key.
TensorMap edit_weights(const TensorMap& projections, const PromptStateMap& states, const UceOptions& options);

struct UceEdit {
  TensorMap weights;                                 // edited attn2 projections, float64, by diffusers key
  std::vector<std::vector<double>> concept_weights;  // the attribute weights applied (last iteration)
  std::vector<std::string> preserved;                // the preserved prompts of the (last) edit
  int iterations = 1;                                // closed-form edits applied one on top of another
  std::vector<std::vector<double>> measured;         // iterate_edit: the last shares measured per concept
};

// The edited projections of the model folder `base_dir` (diffusers layout): reads the tokenizer, the text encoder
// and the UNet's weights, nothing else. FieldError/InputError before any model is read for bad options or a bad
// folder (a single-file checkpoint: convert it first).
UceEdit edit_model(const std::filesystem::path& base_dir, const UceOptions& options);

// Measures concept `concept_index` under the current projections: its attribute shares, one per attribute prompt.
using MeasureShares = std::function<std::vector<double>(const TensorMap& projections, size_t concept_index)>;
struct IterationOptions {
  int max_iterations = 30;
  double step = 0.1;
  double tolerance = 0.05;
  std::vector<std::vector<double>> desired;  // per concept; empty: uniform
};
// The reference's loop: measure (a concept within tolerance is not measured again), stop when every concept is
// within tolerance, else edit the current projections with weights_from_shares and repeat. options' weights are
// ignored.
UceEdit iterate_edit(const std::filesystem::path& base_dir, const UceOptions& options,
                     const IterationOptions& iteration, const MeasureShares& measure);

// Writes the edited model to `out_dir` in the diffusers layout: unet/diffusion_pytorch_model.safetensors is the
// base's with the edited projections (in the base's dtype), every other file linked or copied from the base, and
// uce_settings.json. Built in `out_dir`.partial and renamed at the end. FieldError("out") when `out_dir` exists
// and is not an empty folder.
UceEdit write_edited_model(const std::filesystem::path& base_dir, const std::filesystem::path& out_dir,
                           const UceOptions& options);
void write_edited_model(const std::filesystem::path& base_dir, const std::filesystem::path& out_dir,
                        const UceEdit& edit, const UceOptions& options);

}  // namespace fairdiff::mitigate::uce
