// The prompts CSV (`prompt_id,prompt[,template]`, e.g. data/seed/prompts_info.csv): the one reader that
// generate, plan, report and the study use.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fairdiff {

struct PromptSet {
  std::string source;
  std::vector<std::string> ids;        // folder-safe (images/<prompt_id>/ is a folder), unique
  std::vector<std::string> texts;      // never empty
  std::vector<std::string> templates;  // optional `template` column for the rewriter ("" when absent)

  // Index of the prompt whose id or text equals `key` (trimmed), or -1.
  int find(const std::string& key) const;
  int size() const { return static_cast<int>(ids.size()); }
};

// Reads a `prompt_id,prompt[,template]` CSV. InputError naming the file (and line) when it is missing, lacks a
// column, has no rows, or a row has an id that is empty, not folder-safe (letters, digits, '_', '-', '.'; not
// "." or "..") or used twice, or an empty prompt.
PromptSet read_prompts_csv(const std::filesystem::path& path);

// Letters, digits, '_', '-' and '.', not empty, not "." or "..": usable as a folder name.
bool is_folder_safe_id(const std::string& id);
// The id of a planned group's prompt, the same in `generate --prompts plan.csv` and the study:
// "<prompt_id>-<gender>-<race>", lower-cased, other characters as '-' ("ceo-female-middle-eastern").
std::string plan_group_id(const std::string& prompt_id, const std::string& gender, const std::string& race);

// A plan CSV (written by `fairdiff plan` and the study: prompt_id,prompt,gender,race,share,n_images,
// augmented_prompt) read as prompts to generate, so plan's output feeds generate: one prompt per row, its id
// plan_group_id(), its text the augmented prompt, with the row's n_images.
struct PlannedPrompts {
  PromptSet prompts;
  std::vector<int64_t> images;  // per prompt
};
// True when the CSV's header has an augmented_prompt column.
bool is_plan_csv(const std::filesystem::path& path);
// InputError naming the file and line for a missing column, an empty augmented prompt, n_images < 0 or a
// group listed twice. Rows with n_images 0 are left out.
PlannedPrompts read_plan_as_prompts(const std::filesystem::path& path);

}  // namespace fairdiff
