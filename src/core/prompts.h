// The prompts CSV (`prompt_id,prompt[,template]`, e.g. data/seed/prompts_info.csv): the one reader that
// generate, plan, report and the study use.
#pragma once

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

}  // namespace fairdiff
