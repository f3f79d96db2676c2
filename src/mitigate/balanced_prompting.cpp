#include "mitigate/balanced_prompting.h"

#include "audit/prompt_rewriter.h"
#include "diffusion/stable_diffusion.h"

namespace fairdiff::mitigate {

const GroupDistribution& GroupTargets::of(const std::string& prompt_id) const {
  auto it = per_prompt.find(prompt_id);
  return it == per_prompt.end() ? all : it->second;
}

namespace {

Json distribution_json(const GroupDistribution& d) {
  Json out = Json::object();
  for (const auto& g : d.groups()) out[g.label()] = g.share;
  return out;
}

}  // namespace

Json GroupTargets::describe() const {
  Json out{{"source", source}, {"all", distribution_json(all)}};
  if (!per_prompt.empty()) {
    Json prompts = Json::object();
    for (const auto& [id, d] : per_prompt) prompts[id] = distribution_json(d);
    out["per_prompt"] = prompts;
  }
  return out;
}

Intervention balanced_prompting(const GroupTargets& targets, uint64_t seed,
                                const std::map<std::string, std::string>& templates) {
  Intervention out;
  out.method = "balanced_prompting";
  out.settings = Json{{"method", out.method}, {"seed", seed}, {"target", targets.describe()}};
  if (!templates.empty()) out.settings["templates"] = templates;
  out.apply = [targets, seed, templates](GenerationRequest& request, const std::vector<ImageSlot>& slots) {
    std::vector<std::string> groups;
    for (size_t k = 0; k < slots.size(); ++k) {
      const Group& group = targets.of(slots[k].prompt_id).draw(seed, slots[k].prompt_id, slots[k].index);
      auto t = templates.find(slots[k].prompt_id);
      const std::string& text = t != templates.end() && !t->second.empty() ? t->second : slots[k].prompt;
      request.prompts[k] = audit::rewrite_prompt(text, audit::group_phrase(group.race, group.gender));
      groups.push_back(group.label());
    }
    return groups;
  };
  return out;
}

}  // namespace fairdiff::mitigate
