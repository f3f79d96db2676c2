// A training-free mitigation as the generation loop sees it: something that, once the model is loaded, prepares
// itself (e.g. computes a projection from the text encoder) and then adjusts every batch's request: each image's
// prompt (balanced prompting), the prompts' text states (an embedding projection) or the guidance (semantic
// guidance toward a group). The methods themselves live in mitigate/ (the full build); `generate` and the study's
// generation stages take one through this interface, so the engine knows none of them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/json.h"

namespace fairdiff {

struct StableDiffusionModel;
struct GenerationRequest;

// One image of a batch, as the intervention sees it.
struct ImageSlot {
  std::string prompt_id;
  std::string prompt;  // the prompt as given (before any rewriting)
  int64_t index = 0;   // the image's index within its prompt
  uint64_t seed = 0;   // its noise seed
};

struct Intervention {
  std::string method;  // "" when there is none
  // Everything that changes pixels, recorded with the run's settings (a rerun with other settings is refused).
  Json settings = Json::object();
  // Called once after the model is loaded (and any LoRA applied); may be empty.
  std::function<void(StableDiffusionModel&)> prepare;
  // Adjusts `request` (whose prompts and seeds are the batch's, in the order of `slots`) and returns, per image,
  // the group it was steered toward ("Female black"; "" when the method does not pick one per image).
  std::function<std::vector<std::string>(GenerationRequest&, const std::vector<ImageSlot>&)> apply;

  bool empty() const { return method.empty(); }
};

}  // namespace fairdiff
