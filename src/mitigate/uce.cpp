#include "mitigate/uce.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "audit/prompt_rewriter.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/name_conversion.h"
#include "core/strings.h"
#include "diffusion/single_file.h"
#include "diffusion/stable_diffusion.h"
#include "train/model_output.h"

namespace fairdiff::mitigate::uce {
namespace fs = std::filesystem;
namespace {

constexpr const char* kReference =
    "rohitgandikota/unified-concept-editing@35e91e2 train-scripts/train_debias.py edit_model";
constexpr const char* kUnetWeights = "diffusion_pytorch_model";

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string quoted(const std::string& text) {
  return "\"" + text + "\"";
}

std::string shape_string(torch::IntArrayRef sizes) {
  std::ostringstream out;
  out << sizes;  // "[320, 1024]"
  return out.str();
}

std::string concept_field(size_t index, const std::string& member) {
  return "concepts[" + std::to_string(index) + "]" + (member.empty() ? "" : "." + member);
}

void require_scale(const char* field, double value) {
  if (!std::isfinite(value) || value < 0)
    throw FieldError(field, "is " + std::to_string(value) + ": expected a finite number >= 0");
}

std::vector<double> resolved_weights(const DebiasConcept& item, const UceOptions& options) {
  if (!item.weights.empty()) return item.weights;
  return std::vector<double>(item.attribute_prompts.size(), options.equal_weight);
}

bool all_zero(const std::vector<double>& weights) {
  return std::all_of(weights.begin(), weights.end(), [](double w) { return w == 0; });
}

std::vector<std::string> preserved_prompts(const UceOptions& options) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& prompt) {
    if (std::find(out.begin(), out.end(), prompt) == out.end()) out.push_back(prompt);
  };
  std::set<std::string> edited;
  for (const auto& item : options.concepts) edited.insert(to_lower(item.prompt));
  if (options.preserve_prompts.empty()) add("");
  for (const auto& prompt : options.preserve_prompts)
    if (!edited.count(to_lower(prompt))) add(prompt);
  for (const auto& item : options.concepts)
    if (all_zero(resolved_weights(item, options))) add(item.prompt);
  return out;
}

// Every prompt of the options with the field that holds it, for errors.
std::vector<std::pair<std::string, std::string>> prompt_fields(const UceOptions& options) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < options.concepts.size(); ++i) {
    out.emplace_back(concept_field(i, "prompt"), options.concepts[i].prompt);
    const auto& attributes = options.concepts[i].attribute_prompts;
    for (size_t j = 0; j < attributes.size(); ++j)
      out.emplace_back(concept_field(i, "attribute_prompts[" + std::to_string(j) + "]"), attributes[j]);
  }
  for (size_t i = 0; i < options.preserve_prompts.size(); ++i)
    out.emplace_back("preserve_prompts[" + std::to_string(i) + "]", options.preserve_prompts[i]);
  return out;
}

void validate_prompt_lengths(const ClipTokenizer& tokenizer, const UceOptions& options) {
  for (const auto& [field, prompt] : prompt_fields(options)) {
    const size_t tokens = tokenizer.tokenize(prompt).size() + 2;  // with BOS and EOS
    if (tokens > static_cast<size_t>(tokenizer.max_length())) {
      throw FieldError(field, quoted(prompt) + " has " + std::to_string(tokens) +
                                  " tokens with BOS and EOS: expected at most the tokenizer's " +
                                  std::to_string(tokenizer.max_length()) + " (the edit needs the whole prompt)");
    }
  }
}

void require_diffusers_folder(const fs::path& base_dir) {
  if (is_single_file_checkpoint(base_dir)) {
    throw FieldInputError("base_dir", base_dir.string() +
                                          " is a single-file checkpoint: UCE edits a model folder in the diffusers "
                                          "layout (fairdiff model convert FILE --out DIR makes one)");
  }
  validate_model_directory(base_dir);
}

fs::path unet_weights_file(const fs::path& base_dir) {
  return find_component_weights(base_dir / "unet", kUnetWeights);
}

// The UNet's cross-attention key/value projections (both, whatever with_to_k says), checked.
TensorMap read_projections(const fs::path& base_dir, int64_t text_hidden_size) {
  const fs::path file = unet_weights_file(base_dir);
  TensorMap all = read_safetensors(file).tensors;
  TensorMap out;
  for (auto& [key, tensor] : all) {
    if (!is_edited_projection(key, true)) continue;
    const std::string bias = key.substr(0, key.size() - std::string("weight").size()) + "bias";
    if (all.count(bias))
      throw InputError(file.string() + ": " + bias + " exists; UCE's closed form edits projections without bias");
    if (tensor.dim() != 2 || tensor.size(1) != text_hidden_size) {
      throw InputError(file.string() + ": " + key + " has shape " + shape_string(tensor.sizes()) + ", expected [out, " +
                       std::to_string(text_hidden_size) + "] (the text encoder's hidden size)");
    }
    out[key] = tensor.to(torch::kFloat64);
  }
  if (out.empty())
    throw InputError(file.string() + " has no cross-attention projections (attn2.to_k/to_v weights) to edit");
  return out;
}

struct ConceptSlices {
  torch::Tensor concept_keys;             // [n, D]
  std::vector<torch::Tensor> attributes;  // each [n, D]
  std::vector<double> weights;
};

const PromptStates& states_of(const PromptStateMap& states, const std::string& prompt) {
  const auto it = states.find(prompt);
  if (it == states.end()) throw std::invalid_argument("uce: the prompt " + quoted(prompt) + " was not encoded");
  return it->second;
}

// Aligns the concept and its attributes at their last word token: slice k of each is its k-th token from there.
ConceptSlices concept_slices(const DebiasConcept& item, const PromptStateMap& states, const UceOptions& options) {
  const PromptStates& own = states_of(states, item.prompt);
  std::vector<const PromptStates*> attributes;
  int64_t farthest = own.last_word;
  for (const auto& prompt : item.attribute_prompts) {
    attributes.push_back(&states_of(states, prompt));
    farthest = std::max(farthest, attributes.back()->last_word);
  }
  auto slice = [farthest](const PromptStates& p) {
    const int64_t length = p.states.size(0);
    return p.states.slice(0, p.last_word, length - (farthest - p.last_word)).to(torch::kFloat64);  // [n, D]
  };
  ConceptSlices out{slice(own), {}, resolved_weights(item, options)};
  for (const PromptStates* p : attributes) out.attributes.push_back(slice(*p));
  return out;
}

Json settings_json(const fs::path& base_dir, const UceEdit& edit, const UceOptions& options) {
  Json concepts = Json::array();
  for (size_t i = 0; i < options.concepts.size(); ++i) {
    const auto& item = options.concepts[i];
    concepts.push_back(
        {{"prompt", item.prompt},
         {"attribute_prompts", item.attribute_prompts},
         {"weights", i < edit.concept_weights.size() ? edit.concept_weights[i] : resolved_weights(item, options)}});
  }
  std::vector<std::string> edited;
  for (const auto& entry : edit.weights) edited.push_back(entry.first);
  Json settings = {{"method", "uce"},
                   {"reference", kReference},
                   {"base_model", base_dir.string()},
                   {"concepts", concepts},
                   {"preserve_prompts", edit.preserved},
                   {"lambda", options.lambda},
                   {"edit_scale", options.edit_scale},
                   {"preserve_scale", options.preserve_scale},
                   {"with_to_k", options.with_to_k},
                   {"iterations", edit.iterations},
                   {"edited_weights", edited}};
  if (!edit.measured.empty()) settings["measured_shares"] = edit.measured;
  return settings;
}

fs::path normal_output_path(const fs::path& out_dir) {
  fs::path out = out_dir.lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" -> "dir"
  return out;
}

void require_new_output(const fs::path& out) {
  if (out.empty()) throw FieldError("out", "is empty: expected a folder to write the edited model to");
  if (!is_new_or_empty_directory(out)) {
    throw FieldError("out", out.string() + " exists and is not an empty folder: UCE writes a new model folder");
  }
}

// What edit_model and iterate_edit share: the checks, the prompts' states and the base projections.
struct EditInputs {
  PromptStateMap states;
  TensorMap projections;
};

EditInputs read_edit_inputs(const fs::path& base_dir, const UceOptions& options) {
  validate_options(options);
  require_diffusers_folder(base_dir);
  const ClipTokenizer tokenizer = ClipTokenizer::from_directory(base_dir / "tokenizer");
  validate_prompt_lengths(tokenizer, options);
  ClipTextModel text_encoder = load_clip_text_model(base_dir / "text_encoder", options.text_dtype);
  EditInputs inputs;
  inputs.states = encode_prompts(tokenizer, text_encoder, prompts_to_encode(options), options.text_dtype);
  inputs.projections = read_projections(base_dir, text_encoder->config().hidden_size);
  return inputs;
}

}  // namespace

DebiasConcept concept_with_groups(const std::string& prompt, audit::Attribute attribute,
                                  const audit::Taxonomy& taxonomy) {
  std::vector<std::string> phrases;
  if (attribute == audit::Attribute::gender) {
    for (const auto& g : taxonomy.genders) phrases.push_back(audit::group_phrase("", g));
  } else if (attribute == audit::Attribute::race) {
    for (const auto& r : taxonomy.races) phrases.push_back(audit::group_phrase(r, ""));
  } else if (attribute == audit::Attribute::gender_race) {
    for (const auto& g : taxonomy.genders)
      for (const auto& r : taxonomy.races) phrases.push_back(audit::group_phrase(r, g));
  } else {
    throw FieldError("attribute", audit::attribute_name(attribute) + ": UCE debiases gender, race or gender_race");
  }
  DebiasConcept out;
  out.prompt = prompt;
  for (const auto& phrase : phrases) out.attribute_prompts.push_back(audit::rewrite_prompt(prompt, phrase));
  return out;
}

std::vector<double> weights_from_shares(const std::vector<double>& measured, const std::vector<double>& desired,
                                        double step, double tolerance) {
  if (measured.empty()) throw std::invalid_argument("weights_from_shares: no measured shares");
  const std::vector<double> target =
      desired.empty() ? std::vector<double>(measured.size(), 1.0 / static_cast<double>(measured.size())) : desired;
  if (target.size() != measured.size())
    throw std::invalid_argument("weights_from_shares: " + std::to_string(measured.size()) + " measured shares, " +
                                std::to_string(target.size()) + " desired");
  double gap = 0;
  for (size_t j = 0; j < measured.size(); ++j) gap = std::max(gap, std::abs(target[j] - measured[j]));
  std::vector<double> weights(measured.size(), 0.0);
  if (gap > tolerance)
    for (size_t j = 0; j < measured.size(); ++j) weights[j] = step * (target[j] - measured[j]);
  return weights;
}

void validate_options(const UceOptions& options) {
  if (options.concepts.empty())
    throw FieldError("concepts",
                     "is empty: expected at least one concept prompt to edit (e.g. \"a photo of a doctor\")");
  for (size_t i = 0; i < options.concepts.size(); ++i) {
    const auto& item = options.concepts[i];
    if (trim(item.prompt).empty())
      throw FieldError(concept_field(i, "prompt"), "is empty: expected the prompt of the concept to edit");
    if (item.attribute_prompts.size() < 2) {
      throw FieldError(concept_field(i, "attribute_prompts"), "has " + std::to_string(item.attribute_prompts.size()) +
                                                                  " prompt(s) for " + quoted(item.prompt) +
                                                                  ": expected at least two (one per group to balance)");
    }
    for (size_t j = 0; j < item.attribute_prompts.size(); ++j) {
      if (trim(item.attribute_prompts[j]).empty())
        throw FieldError(concept_field(i, "attribute_prompts[" + std::to_string(j) + "]"), "is empty");
    }
    if (!item.weights.empty() && item.weights.size() != item.attribute_prompts.size()) {
      throw FieldError(concept_field(i, "weights"), "has " + std::to_string(item.weights.size()) + " weights for " +
                                                        std::to_string(item.attribute_prompts.size()) +
                                                        " attribute prompts: expected one per attribute prompt");
    }
    for (double w : item.weights)
      if (!std::isfinite(w)) throw FieldError(concept_field(i, "weights"), "holds a non-finite weight");
  }
  require_scale("lambda", options.lambda);
  require_scale("edit_scale", options.edit_scale);
  require_scale("preserve_scale", options.preserve_scale);
  if (!std::isfinite(options.equal_weight))
    throw FieldError("equal_weight", "is " + std::to_string(options.equal_weight) + ": expected a finite number");
  if (options.text_dtype != torch::kFloat64 && options.text_dtype != torch::kFloat32)
    throw FieldError("text_dtype", "must be float64 or float32");
}

std::vector<std::string> prompts_to_encode(const UceOptions& options) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& prompt) {
    if (seen.insert(prompt).second) out.push_back(prompt);
  };
  for (const auto& item : options.concepts) {
    add(item.prompt);
    for (const auto& prompt : item.attribute_prompts) add(prompt);
  }
  for (const auto& prompt : preserved_prompts(options)) add(prompt);
  return out;
}

PromptStateMap encode_prompts(const ClipTokenizer& tokenizer, ClipTextModel& text_encoder,
                              const std::vector<std::string>& prompts, torch::Dtype dtype) {
  torch::NoGradGuard no_grad;
  text_encoder->to(dtype);
  const int64_t length = tokenizer.max_length();
  PromptStateMap out;
  constexpr size_t kBatch = 16;
  for (size_t first = 0; first < prompts.size(); first += kBatch) {
    const size_t last = std::min(prompts.size(), first + kBatch);
    std::vector<int64_t> ids;
    for (size_t i = first; i < last; ++i) {
      const auto one = tokenizer.encode(prompts[i]);
      ids.insert(ids.end(), one.begin(), one.end());
    }
    const int64_t b = static_cast<int64_t>(last - first);
    const torch::Tensor states =
        text_encoder->forward(torch::tensor(ids, torch::kInt64).view({b, length}));  // [B, L, D]
    for (size_t i = first; i < last; ++i) {
      const int64_t tokens = static_cast<int64_t>(tokenizer.tokenize(prompts[i]).size()) + 2;  // with BOS and EOS
      if (tokens > length)
        throw InputError("uce: " + quoted(prompts[i]) + " has more tokens than the tokenizer's " +
                         std::to_string(length));
      // The reference: attention_mask.sum() - 2, the last token before EOS (BOS itself for "").
      out[prompts[i]] = PromptStates{states[static_cast<int64_t>(i - first)].clone(), tokens - 2};
    }
  }
  return out;
}

bool is_edited_projection(const std::string& key, bool with_to_k) {
  return ends_with(key, ".attn2.to_v.weight") || (with_to_k && ends_with(key, ".attn2.to_k.weight"));
}

torch::Tensor debiased_values(const torch::Tensor& weight, const torch::Tensor& concept_keys,
                              const std::vector<torch::Tensor>& attribute_keys, const std::vector<double>& weights) {
  if (attribute_keys.size() != weights.size())
    throw std::invalid_argument("debiased_values: one weight per attribute is required");
  const torch::Tensor w_t = weight.to(torch::kFloat64).t();         // [D, out]
  torch::Tensor target = concept_keys.to(torch::kFloat64).mm(w_t);  // [n, out]
  for (size_t j = 0; j < attribute_keys.size(); ++j) {
    torch::Tensor direction = attribute_keys[j].to(torch::kFloat64).mm(w_t);  // [n, out]
    direction = direction / direction.norm();
    // The norm of the target accumulated so far, not of the concept's own outputs: the reference adds in place
    // into the tensor whose norm it takes.
    target = target + (weights[j] * target.norm()) * direction;
  }
  return target;
}

torch::Tensor closed_form(const torch::Tensor& weight, const std::vector<EditTerm>& edits,
                          const std::vector<torch::Tensor>& preserve_keys, const ClosedFormScales& scales) {
  const torch::Tensor w = weight.to(torch::kFloat64);  // [out, D]
  const int64_t d = w.size(1);
  torch::Tensor mat1 = scales.lambda * w;                               // [out, D]
  torch::Tensor mat2 = scales.lambda * torch::eye(d, torch::kFloat64);  // [D, D]
  for (const auto& edit : edits) {
    const torch::Tensor c = edit.keys.to(torch::kFloat64);
    mat1 = mat1 + scales.edit_scale * edit.values.to(torch::kFloat64).t().mm(c);
    mat2 = mat2 + scales.edit_scale * c.t().mm(c);
  }
  for (const auto& keys : preserve_keys) {
    const torch::Tensor c = keys.to(torch::kFloat64);
    mat1 = mat1 + scales.preserve_scale * c.mm(w.t()).t().mm(c);
    mat2 = mat2 + scales.preserve_scale * c.t().mm(c);
  }
  // W' = mat1 mat2^-1, i.e. W'^T = mat2^-T mat1^T.
  torch::Tensor solved;
  try {
    solved = torch::linalg_solve(mat2.t(), mat1.t());
  } catch (const c10::Error&) {
    throw FieldError("lambda", "is " + std::to_string(scales.lambda) +
                                   ": the edit's system is singular; use lambda > 0 or more preserved prompts");
  }
  if (!torch::isfinite(solved).all().item<bool>())
    throw FieldError("lambda", "is " + std::to_string(scales.lambda) + ": the edit's system is singular");
  return solved.t().contiguous();
}

TensorMap edit_weights(const TensorMap& projections, const PromptStateMap& states, const UceOptions& options) {
  validate_options(options);
  torch::NoGradGuard no_grad;
  std::vector<ConceptSlices> concepts;
  for (const auto& item : options.concepts) concepts.push_back(concept_slices(item, states, options));
  std::vector<torch::Tensor> preserve_keys;
  for (const auto& prompt : preserved_prompts(options))
    preserve_keys.push_back(states_of(states, prompt).states.to(torch::kFloat64));  // [L, D]
  const ClosedFormScales scales{options.lambda, options.edit_scale, options.preserve_scale};
  TensorMap out;
  for (const auto& [key, weight] : projections) {
    if (!is_edited_projection(key, options.with_to_k)) continue;
    const torch::Tensor w = weight.to(torch::kFloat64);
    std::vector<EditTerm> edits;
    for (const auto& c : concepts)
      edits.push_back({c.concept_keys, debiased_values(w, c.concept_keys, c.attributes, c.weights)});
    out[key] = closed_form(w, edits, preserve_keys, scales);
  }
  return out;
}

UceEdit edit_model(const fs::path& base_dir, const UceOptions& options) {
  const EditInputs inputs = read_edit_inputs(base_dir, options);
  UceEdit edit;
  edit.weights = edit_weights(inputs.projections, inputs.states, options);
  for (const auto& item : options.concepts) edit.concept_weights.push_back(resolved_weights(item, options));
  edit.preserved = preserved_prompts(options);
  return edit;
}

UceEdit iterate_edit(const fs::path& base_dir, const UceOptions& options, const IterationOptions& iteration,
                     const MeasureShares& measure) {
  if (!measure) throw std::invalid_argument("iterate_edit: no measure function");
  if (iteration.max_iterations < 1)
    throw FieldError("max_iterations", "is " + std::to_string(iteration.max_iterations) + ": expected >= 1");
  const size_t n = options.concepts.size();
  if (!iteration.desired.empty() && iteration.desired.size() != n)
    throw FieldError("desired", "has shares for " + std::to_string(iteration.desired.size()) + " concepts, expected " +
                                    std::to_string(n));
  UceOptions current = options;
  for (auto& item : current.concepts) item.weights.assign(item.attribute_prompts.size(), 0.0);
  const EditInputs inputs = read_edit_inputs(base_dir, current);
  UceEdit edit;
  for (const auto& [key, weight] : inputs.projections)
    if (is_edited_projection(key, options.with_to_k)) edit.weights[key] = weight;
  edit.iterations = 0;
  edit.measured.assign(n, {});
  std::vector<bool> balanced(n, false);
  for (int i = 0; i < iteration.max_iterations; ++i) {
    double worst = 0;
    for (size_t c = 0; c < n; ++c) {
      const auto& item = current.concepts[c];
      const std::vector<double> desired = iteration.desired.empty() ? std::vector<double>{} : iteration.desired[c];
      if (!balanced[c]) {  // a concept found balanced is not measured again (the reference's bypass)
        edit.measured[c] = measure(edit.weights, c);
        if (edit.measured[c].size() != item.attribute_prompts.size())
          throw std::invalid_argument("iterate_edit: the measure function returned " +
                                      std::to_string(edit.measured[c].size()) + " shares for " +
                                      std::to_string(item.attribute_prompts.size()) + " attribute prompts");
      }
      current.concepts[c].weights = weights_from_shares(edit.measured[c], desired, iteration.step, iteration.tolerance);
      const std::vector<double> target =
          desired.empty() ? std::vector<double>(edit.measured[c].size(), 1.0 / edit.measured[c].size()) : desired;
      double gap = 0;
      for (size_t j = 0; j < target.size(); ++j) gap = std::max(gap, std::abs(target[j] - edit.measured[c][j]));
      balanced[c] = gap < iteration.tolerance;
      worst = std::max(worst, gap);
    }
    if (worst < iteration.tolerance) break;
    // Each edit starts from the weights the last one left (the reference's reset between iterations is commented out).
    edit.weights = edit_weights(edit.weights, inputs.states, current);
    edit.iterations += 1;
    edit.concept_weights.clear();
    for (const auto& item : current.concepts) edit.concept_weights.push_back(item.weights);
    edit.preserved = preserved_prompts(current);
  }
  return edit;
}

UceEdit write_edited_model(const fs::path& base_dir, const fs::path& out_dir, const UceOptions& options) {
  validate_options(options);
  require_new_output(normal_output_path(out_dir));
  UceEdit edit = edit_model(base_dir, options);
  write_edited_model(base_dir, out_dir, edit, options);
  return edit;
}

void write_edited_model(const fs::path& base_dir, const fs::path& out_dir, const UceEdit& edit,
                        const UceOptions& options) {
  const fs::path out = normal_output_path(out_dir);
  require_new_output(out);
  require_diffusers_folder(base_dir);
  const fs::path staging = out.parent_path() / (out.filename().string() + ".partial");
  fs::remove_all(staging);
  train::link_base_model(base_dir, staging, {"unet"});
  const fs::path base_file = unet_weights_file(base_dir);
  TensorMap unet = read_safetensors(base_file).tensors;
  for (const auto& [key, weight] : edit.weights) {
    const auto it = unet.find(key);
    if (it == unet.end()) throw InputError(base_file.string() + " has no " + key + " for the edited weight");
    if (!it->second.sizes().equals(weight.sizes())) {
      throw InputError(base_file.string() + ": " + key + " has shape " + shape_string(it->second.sizes()) +
                       ", the edit " + shape_string(weight.sizes()));
    }
    it->second = weight.to(it->second.scalar_type());  // the base's dtype: every other tensor stays as it was
  }
  write_safetensors(staging / "unet" / (std::string(kUnetWeights) + ".safetensors"), unet, {{"format", "pt"}});
  // Written last: a folder with uce_settings.json is complete (and only the rename below makes it visible).
  write_json_file(staging / kSettingsName, settings_json(base_dir, edit, options));
  if (fs::is_directory(out) && fs::is_empty(out)) fs::remove(out);
  if (fs::exists(out))
    throw FieldError("out", out.string() + " appeared while editing; the edited model is in " + staging.string());
  fs::rename(staging, out);
}

}  // namespace fairdiff::mitigate::uce
