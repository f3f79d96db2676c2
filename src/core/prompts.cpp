#include "core/prompts.h"

#include <cctype>
#include <set>

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
