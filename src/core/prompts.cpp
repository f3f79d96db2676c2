#include "core/prompts.h"

#include <cctype>
#include <set>
#include <stdexcept>

#include "core/csv.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/strings.h"

namespace fairdiff {

int PromptSet::find(const std::string& key) const {
  const std::string wanted = trim(key);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == wanted) return static_cast<int>(i);
  }
  for (size_t i = 0; i < texts.size(); ++i) {
    if (texts[i] == wanted) return static_cast<int>(i);
  }
  return -1;
}

bool is_folder_safe_id(const std::string& id) {
  if (id.empty() || id == "." || id == "..") return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

namespace {
std::string slug(const std::string& text) {
  std::string out;
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      out += static_cast<char>(std::tolower(u));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}
}  // namespace

std::string plan_group_id(const std::string& prompt_id, const std::string& gender, const std::string& race) {
  return prompt_id + "-" + slug(gender) + "-" + slug(race);
}

bool is_plan_csv(const std::filesystem::path& path) {
  require_file(path, "prompts CSV");
  return read_csv(path).column("augmented_prompt") >= 0;
}

PlannedPrompts read_plan_as_prompts(const std::filesystem::path& path) {
  require_file(path, "plan CSV");
  const CsvTable table = read_csv(path);
  const int id_column = table.require_column("prompt_id");
  const int gender_column = table.require_column("gender");
  const int race_column = table.require_column("race");
  const int count_column = table.require_column("n_images");
  const int text_column = table.require_column("augmented_prompt");
  PlannedPrompts planned;
  planned.prompts.source = path.string();
  std::set<std::string> seen;
  for (const auto& row : table.rows) {
    const std::string where = table.source + ":" + std::to_string(row.line);
    const std::string text = trim(row.fields[text_column]);
    const std::string count_text = trim(row.fields[count_column]);
    int64_t count = -1;
    try {
      size_t used = 0;
      count = std::stoll(count_text, &used);
      if (used != count_text.size()) count = -1;
    } catch (const std::exception&) {
      count = -1;
    }
    if (count < 0) throw InputError(where + ": n_images '" + count_text + "' is not a whole number >= 0");
    if (count == 0) continue;
    const std::string id =
        plan_group_id(trim(row.fields[id_column]), trim(row.fields[gender_column]), trim(row.fields[race_column]));
    if (!is_folder_safe_id(id)) throw InputError(where + ": no usable prompt_id, race and gender");
    if (text.empty()) throw InputError(where + ": empty augmented_prompt");
    if (!seen.insert(id).second) throw InputError(where + ": the group " + id + " is listed twice");
    planned.prompts.ids.push_back(id);
    planned.prompts.texts.push_back(text);
    planned.prompts.templates.emplace_back();
    planned.images.push_back(count);
  }
  if (planned.prompts.ids.empty()) throw InputError(table.source + ": the plan asks for no images");
  return planned;
}

PromptSet read_prompts_csv(const std::filesystem::path& path) {
  require_file(path, "prompts CSV");
  const CsvTable table = read_csv(path);
  const int id_column = table.require_column("prompt_id");
  const int text_column = table.require_column("prompt");
  const int template_column = table.column("template");
  PromptSet prompts;
  prompts.source = path.string();
  std::set<std::string> seen;
  for (const auto& row : table.rows) {
    const std::string id = trim(row.fields[id_column]);
    const std::string text = trim(row.fields[text_column]);
    const std::string where = table.source + ":" + std::to_string(row.line);
    if (id.empty()) throw InputError(where + ": empty prompt_id");
    if (!is_folder_safe_id(id)) {
      throw InputError(where + ": prompt_id '" + id + "' must be letters, digits, '_', '-' or '.' (it names a folder)");
    }
    if (text.empty()) throw InputError(where + ": empty prompt for prompt_id '" + id + "'");
    if (!seen.insert(id).second) throw InputError(where + ": prompt_id '" + id + "' appears twice");
    prompts.ids.push_back(id);
    prompts.texts.push_back(text);
    prompts.templates.push_back(template_column >= 0 ? trim(row.fields[template_column]) : std::string());
  }
  if (prompts.ids.empty()) throw InputError(table.source + ": no prompts (expected rows of prompt_id,prompt)");
  return prompts;
}

}  // namespace fairdiff
