#include "mitigate/embedding_projection.h"

#include <memory>

#include "audit/prompt_rewriter.h"
#include "core/error.h"
#include "diffusion/stable_diffusion.h"

namespace fairdiff::mitigate {

PromptPairs group_pairs(const std::vector<std::string>& prompts, audit::Attribute attribute,
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
    throw UsageError("the embedding projection pairs prompts by gender, race or gender_race, not " +
                     audit::attribute_name(attribute));
  }
  PromptPairs out;
  for (const auto& prompt : prompts) {
    const int first = static_cast<int>(out.prompts.size());
    for (const auto& phrase : phrases) out.prompts.push_back(audit::rewrite_prompt(prompt, phrase));
    const int n = static_cast<int>(phrases.size());
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j) out.pairs.emplace_back(first + i, first + j);
  }
  return out;
}

torch::Tensor calibration_matrix(StableDiffusionModel& model, const PromptPairs& pairs, double lambda) {
  if (pairs.pairs.empty()) throw InputError("the embedding projection needs at least one pair of prompts");
  if (!(lambda >= 0))
    throw InputError("the embedding projection's lambda is " + std::to_string(lambda) + ", expected >= 0");
  torch::NoGradGuard no_grad;
  StableDiffusionPipeline pipeline(model);
  std::vector<torch::Tensor> ends;
  for (const auto& prompt : pairs.prompts) {
    const std::vector<int64_t> ids = model.tokenizer.encode(prompt);
    int64_t end = 0;
    for (int64_t k = 1; k < static_cast<int64_t>(ids.size()); ++k)
      if (ids[static_cast<size_t>(k)] > ids[static_cast<size_t>(end)]) end = k;
    const torch::Tensor states = pipeline.encode_prompts({prompt});  // [1, L, D]
    ends.push_back(states[0][end].to(torch::kFloat32).cpu());
  }
  torch::Tensor z = torch::stack(ends);  // [N, D]
  z = torch::nn::functional::normalize(z, torch::nn::functional::NormalizeFuncOptions().dim(-1));
  z = z.to(torch::kFloat64);
  const int64_t d = z.size(1);
  torch::Tensor m = torch::zeros({d, d}, torch::kFloat64);
  for (const auto& [i, j] : pairs.pairs) {
    const torch::Tensor diff = (z[i] - z[j]).unsqueeze(1);  // [D, 1]
    m += diff.matmul(diff.t());
  }
  m /= static_cast<double>(pairs.pairs.size());
  return torch::linalg_inv(lambda * m + torch::eye(d, torch::kFloat64));
}

Intervention embedding_projection(const std::vector<std::string>& calibration_prompts,
                                  const ProjectionOptions& options) {
  if (!(options.lambda >= 0))
    throw UsageError("the embedding projection's lambda is " + std::to_string(options.lambda) + ", expected >= 0");
  const PromptPairs pairs = group_pairs(calibration_prompts, options.attribute, options.taxonomy);
  Intervention out;
  out.method = "projection";
  out.settings = Json{{"method", out.method},
                      {"lambda", options.lambda},
                      {"attribute", audit::attribute_name(options.attribute)},
                      {"calibration_prompts", calibration_prompts}};
  // P is made once the model is there; every batch uses it (float32, on the model's device).
  auto projection = std::make_shared<torch::Tensor>();
  const double lambda = options.lambda;
  out.prepare = [projection, pairs, lambda](StableDiffusionModel& model) {
    *projection = calibration_matrix(model, pairs, lambda).t().to(torch::kFloat32).to(model.device);
  };
  out.apply = [projection](GenerationRequest& request, const std::vector<ImageSlot>& slots) {
    if (!projection->defined()) throw std::logic_error("embedding projection applied before prepare");
    const torch::Tensor p_t = *projection;
    request.transform_text_states = [p_t](const torch::Tensor& states) {
      return torch::matmul(states.to(torch::kFloat32), p_t);
    };
    return std::vector<std::string>(slots.size());
  };
  return out;
}

}  // namespace fairdiff::mitigate
