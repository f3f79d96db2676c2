#include "core/labels.h"

#include <cctype>

#include "core/strings.h"

namespace fairdiff {

std::string normalize_label(const std::string& text) {
  const std::string trimmed = trim(text);
  if (trimmed == "--") return trimmed;
  std::string out;
  for (char c : trimmed) {
    char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == '_' || lower == '-' || std::isspace(static_cast<unsigned char>(lower))) lower = ' ';
    if (lower == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += lower;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string normalize_race(const std::string& label) {
  const std::string s = normalize_label(label);
  if (s == "others") return "other";
  if (s == "latino" || s == "hispanic" || s == "latino/hispanic") return "latino hispanic";
  return s;
}

std::string normalize_gender(const std::string& label) {
  const std::string s = normalize_label(label);
  if (s == "male" || s == "m" || s == "man" || s == "men") return "male";
  if (s == "female" || s == "f" || s == "woman" || s == "women") return "female";
  return "";
}

}  // namespace fairdiff
